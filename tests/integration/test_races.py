"""Racing clients, released together by one barrier: no acknowledged change is ever lost,
nothing answers 500, and counts, views and stored bytes agree afterwards.

Each race is repeated: on the code before ETag-conditional writes, the two-tag race lost a
tag in 12 of 12 trials, so a handful of rounds is enough to fail it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import TRAINING_KEY, TRAINING_PREFIX, jpeg_bytes
from tests.integration.checks import all_images, assert_consistent

ROUNDS = 8


@pytest.fixture()
def clients(endpoint: str) -> Iterator[Callable[[], httpx.Client]]:
    """A factory of clients, each on its own connection, closed at the end."""
    made: list[httpx.Client] = []

    def make() -> httpx.Client:
        client = httpx.Client(
            base_url=endpoint + TRAINING_PREFIX, headers={"Training-Key": TRAINING_KEY}, timeout=60
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def race(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run the calls at the same moment on their own threads; none may answer 5xx."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        responses = list(pool.map(run, calls))
    for response in responses:
        assert response.status_code < 500, (response.status_code, response.text)
    return responses


def new_project(http: httpx.Client, tags: list[str]) -> tuple[str, dict[str, str]]:
    project = http.post("/projects", params={"name": f"race-{uuid.uuid4().hex[:8]}"})
    assert project.status_code == 200, project.text
    project_id = project.json()["id"]
    tag_ids = {}
    for name in tags:
        response = http.post(f"/projects/{project_id}/tags", params={"name": name})
        assert response.status_code == 200, response.text
        tag_ids[name] = response.json()["id"]
    return project_id, tag_ids


def upload(http: httpx.Client, project_id: str, data: bytes, tag_ids: list[str]) -> str:
    response = http.post(
        f"/projects/{project_id}/images",
        params={"tagIds": ",".join(tag_ids)} if tag_ids else None,
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["images"][0]["image"]["id"])


def photo(seed: int) -> bytes:
    return jpeg_bytes(((seed * 37) % 256, (seed * 91) % 256, (seed * 13 + 50) % 256))


def add_tag(client: httpx.Client, project_id: str, image_id: str, tag_id: str) -> httpx.Response:
    body = {"tags": [{"imageId": image_id, "tagId": tag_id}]}
    return client.post(f"/projects/{project_id}/images/tags", json=body)


def test_two_tag_additions_on_one_image_both_stay(
    http: httpx.Client, clients: Callable[[], httpx.Client]
) -> None:
    project_id, tags = new_project(http, ["a", "b", "c"])
    one, two = clients(), clients()
    images = [upload(http, project_id, photo(i), [tags["a"]]) for i in range(ROUNDS)]
    for image_id in images:
        responses = race(
            lambda i=image_id: add_tag(one, project_id, i, tags["b"]),
            lambda i=image_id: add_tag(two, project_id, i, tags["c"]),
        )
        assert [r.status_code for r in responses] == [200, 200]
    tags_of = assert_consistent(http, project_id)
    assert all(tags_of[i] == set(tags.values()) for i in images)


def test_tag_addition_racing_image_deletion_leaves_it_whole_or_gone(
    http: httpx.Client, clients: Callable[[], httpx.Client]
) -> None:
    project_id, tags = new_project(http, ["a", "b"])
    tagger, deleter = clients(), clients()
    for i in range(ROUNDS):
        image_id = upload(http, project_id, photo(100 + i), [tags["a"]])
        added, deleted = race(
            lambda i=image_id: add_tag(tagger, project_id, i, tags["b"]),
            lambda i=image_id: deleter.delete(
                f"/projects/{project_id}/images", params={"imageIds": i}
            ),
        )
        assert deleted.status_code == 204, deleted.text
        assert added.status_code in (200, 404), added.text
    assert assert_consistent(http, project_id) == {}
    assert http.get(f"/projects/{project_id}/images/count").json() == 0


def test_two_deletions_of_one_tag_both_succeed(
    http: httpx.Client, clients: Callable[[], httpx.Client]
) -> None:
    project_id, _ = new_project(http, [])
    one, two = clients(), clients()
    for i in range(ROUNDS):
        tag_id = http.post(f"/projects/{project_id}/tags", params={"name": f"t{i}"}).json()["id"]
        upload(http, project_id, photo(200 + i), [tag_id])
        responses = race(
            lambda t=tag_id: one.delete(f"/projects/{project_id}/tags/{t}"),
            lambda t=tag_id: two.delete(f"/projects/{project_id}/tags/{t}"),
        )
        assert sorted(r.status_code for r in responses) in ([204, 204], [204, 404])
        assert http.get(f"/projects/{project_id}/tags/{tag_id}").status_code == 404
    tags_of = assert_consistent(http, project_id)
    assert len(tags_of) == ROUNDS and not any(tags_of.values())


def test_tag_addition_racing_tag_deletion_leaves_no_dangling_tag(
    http: httpx.Client, clients: Callable[[], httpx.Client]
) -> None:
    project_id, tags = new_project(http, ["keep"])
    tagger, deleter = clients(), clients()
    images = [upload(http, project_id, photo(300 + i), [tags["keep"]]) for i in range(ROUNDS)]
    for i, image_id in enumerate(images):
        doomed = http.post(f"/projects/{project_id}/tags", params={"name": f"doomed{i}"}).json()
        race(
            lambda i=image_id, d=doomed["id"]: add_tag(tagger, project_id, i, d),
            lambda d=doomed["id"]: deleter.delete(f"/projects/{project_id}/tags/{d}"),
        )
    tags_of = assert_consistent(http, project_id)
    assert all(tags_of[i] == {tags["keep"]} for i in images)


def test_metadata_and_tags_edited_at_once_both_stay(
    http: httpx.Client, clients: Callable[[], httpx.Client]
) -> None:
    project_id, tags = new_project(http, ["a", "b"])
    tagger, annotator = clients(), clients()
    images = [upload(http, project_id, photo(400 + i), [tags["a"]]) for i in range(ROUNDS)]
    for n, image_id in enumerate(images):
        body = {"round": str(n)}
        responses = race(
            lambda i=image_id: add_tag(tagger, project_id, i, tags["b"]),
            lambda i=image_id, b=body: annotator.post(
                f"/projects/{project_id}/images/metadata", params={"imageIds": i}, json=b
            ),
        )
        assert [r.status_code for r in responses] == [200, 200]
    tags_of = assert_consistent(http, project_id)
    by_id = {i["id"]: i for i in all_images(http, project_id)}
    for n, image_id in enumerate(images):
        assert tags_of[image_id] == {tags["a"], tags["b"]}
        assert by_id[image_id]["metadata"] == {"round": str(n)}


def test_overlapping_uploaders_and_taggers_keep_counts_exact(
    http: httpx.Client, clients: Callable[[], httpx.Client]
) -> None:
    project_id, tags = new_project(http, ["x", "y", "z"])
    photos = [photo(500 + i) for i in range(10)]
    uploaders = [clients() for _ in range(6)]
    taggers = [clients() for _ in range(2)]
    seen: set[str] = set()
    lock = threading.Lock()

    def upload_batch(n: int) -> httpx.Response:
        # Each uploader sends 6 of the 10 photos, so every photo reaches 3 or 4 uploaders.
        files = [("file", (f"p{j}.jpg", photos[(n + j) % 10], "image/jpeg")) for j in range(6)]
        tag = list(tags.values())[n % 3]
        response = uploaders[n].post(
            f"/projects/{project_id}/images", params={"tagIds": tag}, files=files
        )
        with lock:
            seen.update(e["image"]["id"] for e in response.json()["images"] if e.get("image"))
        return response

    def tag_what_exists(n: int) -> httpx.Response:
        response = httpx.Response(200)
        for _ in range(10):
            with lock:
                targets = sorted(seen)
            for image_id in targets:
                response = add_tag(taggers[n], project_id, image_id, tags["z"])
                assert response.status_code in (200, 404), response.text
        return response

    calls = [lambda n=n: upload_batch(n) for n in range(6)]
    calls += [lambda n=n: tag_what_exists(n) for n in range(2)]
    responses = race(*calls)
    for response in responses[:6]:
        assert response.status_code in (200, 207), response.status_code  # 207: duplicates
        assert {e["status"] for e in response.json()["images"]} <= {"OK", "OKDuplicate"}
    tags_of = assert_consistent(http, project_id)
    assert len(tags_of) == 10  # every photo stored once
    assert seen == set(tags_of)


def test_two_negative_tags_created_at_once_make_one(
    http: httpx.Client, clients: Callable[[], httpx.Client]
) -> None:
    one, two = clients(), clients()
    for _ in range(ROUNDS):
        project_id, _ = new_project(http, [])
        responses = race(
            lambda p=project_id: one.post(
                f"/projects/{p}/tags", params={"name": "none", "type": "Negative"}
            ),
            lambda p=project_id: two.post(
                f"/projects/{p}/tags", params={"name": "nothing", "type": "Negative"}
            ),
        )
        assert sorted(r.status_code for r in responses) == [200, 400]
        refused = next(r for r in responses if r.status_code == 400)
        assert refused.json()["code"] == "BadRequestMultipleNegativeTag"
        tags = http.get(f"/projects/{project_id}/tags").json()
        assert [t["type"] for t in tags] == ["Negative"]
        # Deleting it frees the claim.
        assert http.delete(f"/projects/{project_id}/tags/{tags[0]['id']}").status_code == 204
        again = http.post(f"/projects/{project_id}/tags", params={"name": "x", "type": "Negative"})
        assert again.status_code == 200, again.text


def test_project_and_tag_edits_at_once_both_stay(
    http: httpx.Client, clients: Callable[[], httpx.Client]
) -> None:
    project_id, tags = new_project(http, ["a"])
    one, two = clients(), clients()
    for i in range(ROUNDS):
        race(
            lambda n=i: one.patch(
                f"/projects/{project_id}", json={"name": f"renamed-{project_id}-{n}"}
            ),
            lambda n=i: two.patch(f"/projects/{project_id}", json={"description": f"d{n}"}),
        )
        project = http.get(f"/projects/{project_id}").json()
        assert (project["name"], project["description"]) == (f"renamed-{project_id}-{i}", f"d{i}")
        race(
            lambda n=i: one.patch(
                f"/projects/{project_id}/tags/{tags['a']}", json={"name": f"a{n}"}
            ),
            lambda n=i: two.patch(
                f"/projects/{project_id}/tags/{tags['a']}", json={"description": f"t{n}"}
            ),
        )
        tag = http.get(f"/projects/{project_id}/tags/{tags['a']}").json()
        assert (tag["name"], tag["description"]) == (f"a{i}", f"t{i}")


def test_one_batch_holding_the_same_photo_twice_stores_it_once(http: httpx.Client) -> None:
    project_id, tags = new_project(http, ["a"])
    same = photo(900)
    files = [("f", (f"{i}.jpg", same if i % 2 else photo(901 + i), "image/jpeg")) for i in range(6)]
    response = http.post(
        f"/projects/{project_id}/images", params={"tagIds": tags["a"]}, files=files
    )
    assert response.status_code == 207, response.text
    entries = response.json()["images"]
    assert [e["status"] for e in entries] == ["OK", "OK", "OK", "OKDuplicate", "OK", "OKDuplicate"]
    assert entries[3]["image"]["id"] == entries[5]["image"]["id"] == entries[1]["image"]["id"]
    assert len(assert_consistent(http, project_id)) == 4
