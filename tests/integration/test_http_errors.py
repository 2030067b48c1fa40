"""Raw-HTTP error contract: Custom Vision codes, statuses, per-entry batch results, no side effects.

Every error body is exactly ``{"code": ..., "message": ...}``. Batch uploads answer 200 when
every entry succeeds and 207 when any fails; a failed entry must leave nothing stored.
"""

from __future__ import annotations

import base64
import io
import struct
import uuid
import zlib
from typing import Any

import httpx
import pytest
from PIL import Image

from functions.domain.limits import MAX_TRAINING_IMAGE_BYTES
from tests.conftest import assert_error, jpeg_bytes, real_photos

# ------------------------------------------------------------------ helpers


def new_project(http: httpx.Client, prefix: str = "errors") -> str:
    response = http.post("/projects", params={"name": f"{prefix}-{uuid.uuid4().hex[:10]}"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def new_tag(http: httpx.Client, project_id: str, name: str, type_: str | None = None) -> str:
    params = {"name": name} if type_ is None else {"name": name, "type": type_}
    response = http.post(f"/projects/{project_id}/tags", params=params)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def image_count(http: httpx.Client, project_id: str) -> int:
    response = http.get(f"/projects/{project_id}/images/count")
    assert response.status_code == 200, response.text
    return int(response.json())


def image_ids(http: httpx.Client, project_id: str) -> list[str]:
    response = http.get(f"/projects/{project_id}/images", params={"take": 256})
    assert response.status_code == 200, response.text
    return [i["id"] for i in response.json()]


def tag_counts(http: httpx.Client, project_id: str) -> dict[str, int]:
    response = http.get(f"/projects/{project_id}/tags")
    assert response.status_code == 200, response.text
    return {t["id"]: t["imageCount"] for t in response.json()}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def upload_files(
    http: httpx.Client, project_id: str, images: list[bytes], **batch: Any
) -> httpx.Response:
    entries = [{"name": f"img{i}.jpg", "contents": b64(d)} for i, d in enumerate(images)]
    return http.post(f"/projects/{project_id}/images/files", json={"images": entries, **batch})


def upload_one(http: httpx.Client, project_id: str, data: bytes | None = None) -> str:
    response = upload_files(http, project_id, [data or jpeg_bytes((uuid.uuid4().int % 256, 9, 9))])
    assert response.status_code == 200, response.text
    entry = response.json()["images"][0]
    assert entry["status"] == "OK", entry
    return str(entry["image"]["id"])


def statuses(response: httpx.Response) -> list[str]:
    return [entry["status"] for entry in response.json()["images"]]


def assert_partial(response: httpx.Response, expected: list[str]) -> list[dict[str, Any]]:
    """A 207 batch summary whose entries carry exactly these statuses."""
    assert response.status_code == 207, (response.status_code, response.text)
    body = response.json()
    assert body["isBatchSuccessful"] is False, body
    assert statuses(response) == expected, body
    for entry in body["images"]:
        if entry["status"] not in ("OK", "OKDuplicate"):
            assert entry["image"] is None, entry
    return list(body["images"])


def corrupt_jpeg() -> bytes:
    """A JPEG SOI/APP0 header followed by garbage."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(
        (i * 37 + 11) % 256 for i in range(4096)
    )


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A 16x16 PNG whose IHDR claims width x height, with a valid IHDR CRC."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 0, 0)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF  # chunk type + 13 data bytes
    data[29:33] = struct.pack(">I", crc)
    return bytes(data)


def padded_jpeg(total: int) -> bytes:
    """A valid JPEG padded with zero bytes after EOI up to exactly `total` bytes."""
    data = jpeg_bytes((30, 60, 90), (64, 64))
    return data + b"\x00" * (total - len(data))


# ------------------------------------------------------------------ image bytes


def test_corrupt_and_truncated_images_are_error_image_format(http: httpx.Client) -> None:
    project = new_project(http)
    photo = real_photos("daisy", 1)[0]
    truncated = photo[: len(photo) // 2]

    response = upload_files(http, project, [corrupt_jpeg(), truncated])
    assert_partial(response, ["ErrorImageFormat", "ErrorImageFormat"])

    raw = http.post(
        f"/projects/{project}/images",
        content=truncated,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_partial(raw, ["ErrorImageFormat"])
    assert image_count(http, project) == 0
    assert image_ids(http, project) == []


def test_tiff_is_an_unsupported_format(http: httpx.Client) -> None:
    project = new_project(http)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 200)).save(buffer, "TIFF")
    tiff = buffer.getvalue()
    assert tiff[:2] in (b"II", b"MM")

    response = upload_files(http, project, [tiff])
    entries = assert_partial(response, ["ErrorImageFormat"])
    assert "TIFF" in (entries[0]["message"] or "")
    assert image_count(http, project) == 0


def test_image_bytes_limit_is_6_mb(http: httpx.Client) -> None:
    project = new_project(http)
    at_limit = padded_jpeg(MAX_TRAINING_IMAGE_BYTES)
    over_limit = padded_jpeg(6 * 1024 * 1024 + 1)
    assert len(at_limit) == 6 * 1024 * 1024 and len(over_limit) == len(at_limit) + 1

    response = upload_files(http, project, [at_limit, over_limit])
    entries = assert_partial(response, ["OK", "ErrorImageSize"])
    assert image_ids(http, project) == [entries[0]["image"]["id"]]
    assert image_count(http, project) == 1


def test_more_than_64_images_in_a_batch_is_rejected_whole(http: httpx.Client) -> None:
    project = new_project(http)
    tag = new_tag(http, project, "any")
    images = [jpeg_bytes((i, 2 * i, 100), (32, 32)) for i in range(65)]

    files = upload_files(http, project, images, tagIds=[tag])
    assert_error(files, 400, "BadRequestImageBatch")

    urls = [{"url": f"http://10.0.0.1/{i}.jpg"} for i in range(65)]
    by_url = http.post(f"/projects/{project}/images/urls", json={"images": urls})
    assert_error(by_url, 400, "BadRequestImageBatch")

    assert image_count(http, project) == 0
    assert tag_counts(http, project) == {tag: 0}


def test_decompression_bomb_is_error_image_size(http: httpx.Client) -> None:
    project = new_project(http)
    bomb = png_bomb()
    assert len(bomb) < 200
    assert bomb[12:16] == b"IHDR" and struct.unpack(">II", bomb[16:24]) == (30_000, 30_000)
    assert zlib.crc32(bomb[12:29]) & 0xFFFFFFFF == struct.unpack(">I", bomb[29:33])[0]

    response = upload_files(http, project, [bomb])
    assert_partial(response, ["ErrorImageSize"])
    assert image_count(http, project) == 0


def test_mixed_batch_stores_only_the_good_entry(http: httpx.Client) -> None:
    project = new_project(http)
    tag = new_tag(http, project, "mixed")
    good = jpeg_bytes((5, 200, 5))

    response = upload_files(http, project, [good, corrupt_jpeg()], tagIds=[tag])
    entries = assert_partial(response, ["OK", "ErrorImageFormat"])
    assert entries[0]["sourceUrl"] == "img0.jpg" and entries[1]["sourceUrl"] == "img1.jpg"
    stored = entries[0]["image"]
    assert stored["width"] == 320 and stored["height"] == 240
    assert [t["tagId"] for t in stored["tags"]] == [tag]

    assert image_count(http, project) == 1
    assert image_ids(http, project) == [stored["id"]]
    assert tag_counts(http, project) == {tag: 1}
    original = httpx.get(stored["originalImageUri"])
    assert original.status_code == 200 and original.content == good


def test_successful_batch_answers_200(http: httpx.Client) -> None:
    """The counterpart of the 207 cases: all entries OK gives 200 and isBatchSuccessful."""
    project = new_project(http)
    response = upload_files(http, project, [jpeg_bytes((1, 1, 1)), jpeg_bytes((250, 1, 1))])
    assert response.status_code == 200, response.text
    assert response.json()["isBatchSuccessful"] is True
    assert statuses(response) == ["OK", "OK"]
    assert image_count(http, project) == 2


# ------------------------------------------------------------------ unknown ids


def test_unknown_project_is_404_not_found_project(http: httpx.Client) -> None:
    missing = str(uuid.uuid4())
    for path in (
        f"/projects/{missing}",
        f"/projects/{missing}/tags",
        f"/projects/{missing}/images",
        f"/projects/{missing}/images/count",
        f"/projects/{missing}/images/tagged",
        f"/projects/{missing}/images/untagged/count",
    ):
        assert_error(http.get(path), 404, "NotFoundProject")
    assert_error(http.patch(f"/projects/{missing}", json={"name": "x"}), 404, "NotFoundProject")
    assert_error(http.delete(f"/projects/{missing}"), 404, "NotFoundProject")
    upload = upload_files(http, missing, [jpeg_bytes()])
    assert_error(upload, 404, "NotFoundProject")
    assert_error(
        http.post(f"/projects/{missing}/tags", params={"name": "t"}), 404, "NotFoundProject"
    )


def test_unknown_tag_is_404_not_found_tag(http: httpx.Client) -> None:
    project = new_project(http)
    other = new_project(http)
    foreign = new_tag(http, other, "elsewhere")
    for missing in (str(uuid.uuid4()), foreign):
        path = f"/projects/{project}/tags/{missing}"
        assert_error(http.get(path), 404, "NotFoundTag")
        assert_error(http.patch(path, json={"name": "renamed"}), 404, "NotFoundTag")
        assert_error(http.delete(path), 404, "NotFoundTag")
    # The other project's tag is untouched by those calls.
    kept = http.get(f"/projects/{other}/tags/{foreign}")
    assert kept.status_code == 200 and kept.json()["name"] == "elsewhere"
    assert http.get(f"/projects/{project}/tags").json() == []


def test_upload_with_unknown_tag_is_error_invalid_tag(http: httpx.Client) -> None:
    project = new_project(http)
    known = new_tag(http, project, "known")
    other = new_project(http)
    foreign = new_tag(http, other, "foreign")
    unknown = str(uuid.uuid4())

    entries = [
        {"name": "a.jpg", "contents": b64(jpeg_bytes((1, 100, 1))), "tagIds": [known, unknown]},
        {"name": "b.jpg", "contents": b64(jpeg_bytes((1, 1, 100))), "tagIds": [foreign]},
    ]
    response = http.post(f"/projects/{project}/images/files", json={"images": entries})
    assert_partial(response, ["ErrorInvalidTag", "ErrorInvalidTag"])

    raw = http.post(
        f"/projects/{project}/images",
        params={"tagIds": unknown},
        content=jpeg_bytes((100, 1, 1)),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_partial(raw, ["ErrorInvalidTag"])

    assert image_count(http, project) == 0
    assert tag_counts(http, project) == {known: 0}
    assert tag_counts(http, other) == {foreign: 0}


def test_tagging_an_image_with_an_unknown_tag_is_404(http: httpx.Client) -> None:
    project = new_project(http)
    tag = new_tag(http, project, "real")
    image = upload_one(http, project)

    response = http.post(
        f"/projects/{project}/images/tags",
        json={
            "tags": [
                {"imageId": image, "tagId": tag},
                {"imageId": image, "tagId": str(uuid.uuid4())},
            ]
        },
    )
    assert_error(response, 404, "NotFoundTag")
    # Nothing was applied, not even the valid pair.
    assert tag_counts(http, project) == {tag: 0}
    listed = http.get(f"/projects/{project}/images/id", params={"imageIds": image}).json()
    assert listed[0]["tags"] == []


# ------------------------------------------------------------------ malformed ids


def test_malformed_guids_are_400_bad_request_invalid_ids(http: httpx.Client) -> None:
    project = new_project(http)
    upload_one(http, project)
    cases = [
        http.get("/projects/not-a-guid"),
        http.get("/projects/not-a-guid/tags"),
        http.get(f"/projects/{project}/tags/not-a-guid"),
        http.get(f"/projects/{project}/images", params={"tagIds": "abc"}),
        http.get(f"/projects/{project}/images/count", params={"tagIds": "abc"}),
        http.get(f"/projects/{project}/images/tagged", params={"tagIds": f"{uuid.uuid4()},abc"}),
        http.get(f"/projects/{project}/images/id", params={"imageIds": "xyz"}),
        http.delete(f"/projects/{project}/images", params={"imageIds": "xyz"}),
    ]
    for response in cases:
        assert_error(response, 400, "BadRequestInvalidIds")
    assert image_count(http, project) == 1


def test_malformed_tag_id_in_upload_body_stores_nothing(http: httpx.Client) -> None:
    project = new_project(http)
    response = upload_files(http, project, [jpeg_bytes()], tagIds=["abc"])
    assert_error(response, 400, "BadRequestInvalidIds")
    assert image_count(http, project) == 0


# ------------------------------------------------------------------ URLs


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://10.0.0.1/x.jpg", "10.0.0.1"),
        ("http://169.254.169.254/latest", "169.254.169.254"),
        ("http://192.168.1.20/cat.png", "192.168.1.20"),
        ("http://[::ffff:10.1.2.3]/x.jpg", "10.1.2.3"),
    ],
)
def test_private_address_urls_are_error_source(http: httpx.Client, url: str, address: str) -> None:
    project = new_project(http)
    tag = new_tag(http, project, "remote")
    response = http.post(
        f"/projects/{project}/images/urls", json={"images": [{"url": url}], "tagIds": [tag]}
    )
    entries = assert_partial(response, ["ErrorSource"])
    assert entries[0]["sourceUrl"] == url
    assert address in (entries[0]["message"] or ""), entries[0]
    assert image_count(http, project) == 0
    assert tag_counts(http, project) == {tag: 0}


# ------------------------------------------------------------------ tags and projects


def test_tag_validation_errors(http: httpx.Client) -> None:
    project = new_project(http)
    first = new_tag(http, project, "Daisy")
    path = f"/projects/{project}/tags"

    assert_error(http.post(path, params={"name": "dAISY"}), 400, "BadRequestTagNameNotUnique")
    assert_error(http.post(path, params={"name": " daisy "}), 400, "BadRequestTagNameNotUnique")
    assert_error(http.post(path, params={"name": ""}), 400, "BadRequestTagName")
    assert_error(http.post(path, params={"name": "   "}), 400, "BadRequestTagName")
    assert_error(http.post(path), 400, "BadRequestTagName")
    assert_error(
        http.post(path, params={"name": "rose", "type": "Bogus"}), 400, "BadRequestTagType"
    )

    second = new_tag(http, project, "Rose")
    renamed = http.patch(f"{path}/{second}", json={"name": "DAISY"})
    assert_error(renamed, 400, "BadRequestTagNameNotUnique")
    assert_error(http.patch(f"{path}/{second}", json={"type": "Bogus"}), 400, "BadRequestTagType")

    tags = {t["id"]: (t["name"], t["type"]) for t in http.get(path).json()}
    assert tags == {first: ("Daisy", "Regular"), second: ("Rose", "Regular")}


def test_project_validation_errors(http: httpx.Client) -> None:
    before = {p["id"] for p in http.get("/projects").json()}
    name = f"invalid-{uuid.uuid4().hex[:10]}"
    cases = [
        ({"name": ""}, "BadRequestProjectName"),
        ({"name": "   "}, "BadRequestProjectName"),
        ({}, "BadRequestProjectName"),
        ({"name": name, "domainId": str(uuid.uuid4())}, "BadRequestProjectUnknownDomain"),
        ({"name": name, "classificationType": "Foo"}, "BadRequestProjectUnknownClassification"),
    ]
    for params, code in cases:
        assert_error(http.post("/projects", params=params), 400, code)
    after = http.get("/projects").json()
    assert {p["id"] for p in after} == before
    assert name not in {p["name"] for p in after}


def test_project_patch_validation_leaves_project_unchanged(http: httpx.Client) -> None:
    project = new_project(http, "patch")
    original = http.get(f"/projects/{project}").json()
    path = f"/projects/{project}"
    assert_error(http.patch(path, json={"name": ""}), 400, "BadRequestProjectName")
    assert_error(
        http.patch(path, json={"name": "x", "settings": {"classificationType": "Foo"}}),
        400,
        "BadRequestProjectUnknownClassification",
    )
    assert_error(
        http.patch(path, json={"settings": {"domainId": str(uuid.uuid4())}}),
        400,
        "BadRequestProjectUnknownDomain",
    )
    assert http.get(path).json() == original


def test_non_json_body_is_400_code_and_message(http: httpx.Client) -> None:
    project = new_project(http, "patch")
    original = http.get(f"/projects/{project}").json()
    path = f"/projects/{project}"
    for content in (b"this is not json", b'{"name": ', b'{"name": 123}'):
        response = http.patch(path, content=content, headers={"Content-Type": "application/json"})
        body = assert_error(response, 400, "BadRequest")
        assert "detail" not in body
    files = http.post(
        f"{path}/images/files",
        content=b"[not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(files, 400, "BadRequest")
    assert http.get(path).json() == original
    assert image_count(http, project) == 0


def test_invalid_base64_contents_is_a_failed_entry(http: httpx.Client) -> None:
    project = new_project(http)
    entries = [
        {"name": "ok.jpg", "contents": b64(jpeg_bytes((9, 90, 190)))},
        {"name": "bad.jpg", "contents": "!!! not base64 !!!"},
    ]
    response = http.post(f"/projects/{project}/images/files", json={"images": entries})
    result = assert_partial(response, ["OK", "ErrorSource"])
    assert result[1]["sourceUrl"] == "bad.jpg"
    assert image_ids(http, project) == [result[0]["image"]["id"]]


# ------------------------------------------------------------------ metadata


def metadata_of(http: httpx.Client, project: str, image: str) -> dict[str, str]:
    response = http.get(f"/projects/{project}/images/id", params={"imageIds": image})
    assert response.status_code == 200, response.text
    (found,) = response.json()
    return dict(found["metadata"])


def test_metadata_key_and_value_lengths(http: httpx.Client) -> None:
    project = new_project(http)
    image = upload_one(http, project)
    path = f"/projects/{project}/images/metadata"
    params = {"imageIds": image}
    assert http.post(path, params=params, json={"colour": "red"}).status_code == 200

    long_key = http.post(path, params=params, json={"k" * 129: "v"})
    assert_error(long_key, 400, "BadRequestImageMetadataKey")
    long_value = http.post(path, params=params, json={"colour": "v" * 257})
    assert_error(long_value, 400, "BadRequestImageMetadataValue")
    assert metadata_of(http, project, image) == {"colour": "red"}

    limits = http.post(path, params=params, json={"k" * 128: "v" * 256})
    assert limits.status_code == 200, limits.text
    assert metadata_of(http, project, image) == {"colour": "red", "k" * 128: "v" * 256}


def test_metadata_limit_and_unknown_image(http: httpx.Client) -> None:
    project = new_project(http)
    image = upload_one(http, project)
    path = f"/projects/{project}/images/metadata"
    seven = {f"key{i}": str(i) for i in range(7)}
    assert http.post(path, params={"imageIds": image}, json=seven).status_code == 200

    four_more = {f"extra{i}": str(i) for i in range(4)}  # 7 + 4 = 11 keys
    response = http.post(path, params={"imageIds": image}, json=four_more)
    assert response.status_code == 207, response.text
    body = response.json()
    assert body["isBatchSuccessful"] is False
    assert [(e["imageId"], e["status"]) for e in body["images"]] == [(image, "ErrorLimitExceed")]
    assert metadata_of(http, project, image) == seven

    missing = str(uuid.uuid4())
    mixed = http.post(path, params={"imageIds": f"{image},{missing}"}, json={"key0": "zero"})
    assert mixed.status_code == 207, mixed.text
    assert [(e["imageId"], e["status"]) for e in mixed.json()["images"]] == [
        (image, "OK"),
        (missing, "ErrorImageNotFound"),
    ]
    assert metadata_of(http, project, image) == {**seven, "key0": "zero"}
    assert image_count(http, project) == 1


def test_upload_with_too_many_metadata_entries_stores_nothing(http: httpx.Client) -> None:
    project = new_project(http)
    metadata = {f"key{i}": "v" for i in range(11)}
    response = upload_files(http, project, [jpeg_bytes((3, 33, 133))], metadata=metadata)
    assert_partial(response, ["ErrorLimitExceed"])
    assert image_count(http, project) == 0

    long_key = upload_files(http, project, [jpeg_bytes((3, 33, 133))], metadata={"k" * 129: "v"})
    assert_error(long_key, 400, "BadRequestImageMetadataKey")
    assert image_count(http, project) == 0


# ------------------------------------------------------------------ queries


def test_paging_and_filter_errors(http: httpx.Client) -> None:
    project = new_project(http)
    upload_one(http, project)
    images = f"/projects/{project}/images"

    assert http.get(images, params={"take": 256}).status_code == 200
    for params in ({"take": 257}, {"take": -1}, {"skip": -1}):
        response = http.get(images, params=params)
        assert response.status_code == 400, (params, response.text)
        assert set(response.json()) == {"code", "message"}
    assert http.get(f"{images}/tagged", params={"take": 257}).status_code == 400

    for expression in ("colour eq", "colour gt 'red'", "colour eq red", "a eq 'b' xor c eq 'd'"):
        for path in (images, f"{images}/count"):
            response = http.get(path, params={"$filter": expression})
            assert response.status_code == 400, (path, expression, response.text)
            assert set(response.json()) == {"code", "message"}
            assert response.json()["code"].startswith("BadRequest")

    not_a_number = http.get(images, params={"take": "many"})
    body = assert_error(not_a_number, 400, "BadRequest")
    assert "detail" not in body
    bad_order = http.get(images, params={"orderBy": "Sideways"})
    assert bad_order.status_code == 400 and set(bad_order.json()) == {"code", "message"}


def test_negative_and_regular_tag_on_same_entry(http: httpx.Client) -> None:
    project = new_project(http)
    negative = new_tag(http, project, "Negative", "Negative")
    regular = new_tag(http, project, "cat")
    response = upload_files(http, project, [jpeg_bytes((77, 77, 7))], tagIds=[negative, regular])
    assert_partial(response, ["ErrorNegativeAndRegularTagOnSameImage"])
    assert image_count(http, project) == 0
    assert tag_counts(http, project) == {negative: 0, regular: 0}

    image = upload_one(http, project)
    tagged = http.post(
        f"/projects/{project}/images/tags", json={"tags": [{"imageId": image, "tagId": negative}]}
    )
    assert tagged.status_code == 200, tagged.text
    mixing = http.post(
        f"/projects/{project}/images/tags", json={"tags": [{"imageId": image, "tagId": regular}]}
    )
    assert_error(mixing, 400, "BadRequestNegativeAndRegularTagOnSameImage")
    assert tag_counts(http, project) == {negative: 1, regular: 0}
