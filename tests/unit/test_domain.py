"""Pure domain pieces: ids, the metadata filter, the catalog, image links, settings."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from functions.api.links import LinkSigner
from functions.domain import catalog
from functions.domain.errors import BadRequest, NotFound
from functions.domain.ids import (
    id_time,
    inverted,
    new_time_ordered_id,
    parse_id,
    parse_id_list,
    time_prefix,
)
from functions.domain.metadata_filter import parse_metadata_filter
from functions.settings import Settings


def test_time_ordered_ids_sort_by_creation_and_are_guids() -> None:
    ids = [new_time_ordered_id(now_ms=ms) for ms in (1_000, 2_000, 3_000_000_000_000)]
    assert ids == sorted(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)


def test_explicit_times_do_not_move_the_sequence_and_ids_tell_their_time() -> None:
    new_time_ordered_id(now_ms=4_000_000_000_000)  # far in the future
    before = datetime.now(UTC)
    made = new_time_ordered_id()
    assert before - timedelta(milliseconds=1) <= id_time(made) <= datetime.now(UTC)
    assert made.startswith(time_prefix(id_time(made)))
    later = new_time_ordered_id()
    assert made < later and inverted(later) < inverted(made)


def test_parse_id_normalises_and_refuses() -> None:
    assert (
        parse_id(" 0732100F-1A38-4E49-A514-C9B44C697AB5 ")
        == catalog.find_domain("0732100f-1a38-4e49-a514-c9b44c697ab5").id
    )  # type: ignore[union-attr]
    with pytest.raises(BadRequest) as error:
        parse_id("nope")
    assert error.value.code == "BadRequestInvalidIds"


def test_parse_id_list_dedupes_and_limits() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert parse_id_list(f"{a},{b},{a}", "tagId", 5) == [a, b]
    assert parse_id_list(None, "tagId", 5) == []
    with pytest.raises(BadRequest) as error:
        parse_id_list(",".join(str(uuid.uuid4()) for _ in range(3)), "tagId", 2)
    assert error.value.code == "BadRequestExceededBatchSize"


@pytest.mark.parametrize(
    ("expression", "metadata", "expected"),
    [
        ("camera eq 'left'", {"camera": "left"}, True),
        ("camera eq 'left'", {"camera": "right"}, False),
        ("camera ne 'left'", {}, True),
        ("metadata/camera eq 'left'", {"camera": "left"}, True),
        ("a eq '1' and b eq '2'", {"a": "1", "b": "3"}, False),
        ("a eq '1' or b eq '2' and c eq '3'", {"b": "2", "c": "x"}, False),
        ("a eq '1' or b eq '2' and c eq '3'", {"a": "1"}, True),
        ("note eq 'it''s'", {"note": "it's"}, True),
        ("A EQ 'x' OR b eq 'y'", {"b": "y"}, True),
    ],
)
def test_metadata_filter(expression: str, metadata: dict[str, str], expected: bool) -> None:
    predicate = parse_metadata_filter(expression)
    assert predicate is not None
    assert predicate(metadata) is expected


@pytest.mark.parametrize("bad", ["camera", "camera eq left", "a eq '1' xor b eq '2'", "a lt '1'"])
def test_metadata_filter_refuses_bad_expressions(bad: str) -> None:
    with pytest.raises(BadRequest):
        parse_metadata_filter(bad)


def test_catalog_maps_compact_to_lite0_and_refuses_nothing_unknown() -> None:
    compact = [d for d in catalog.DOMAINS if "compact" in d.name]
    assert compact and all(d.backbone == catalog.LITE0 and d.image_size == 224 for d in compact)
    general = [d for d in catalog.DOMAINS if "compact" not in d.name]
    assert all(d.backbone == catalog.LITE2_LITE0 and d.image_size == 260 for d in general)
    for name in ("Food", "Landmarks", "Retail"):
        domain = next(d for d in catalog.DOMAINS if d.name == name)
        assert "same general-purpose" in domain.description
    assert catalog.find_domain(str(uuid.uuid4())) is None
    assert all(d.type == catalog.CLASSIFICATION for d in catalog.DOMAINS)


def test_catalog_lists_custom_visions_detection_domains() -> None:
    published = {
        "da2e3a8a-40a5-4171-82f4-58522f70fbc1": "General",
        "9c616dff-2e7d-ea11-af59-1866da359ce6": "General [A1]",
        "1d8ffafe-ec40-4fb2-8f90-72b3b6cecea4": "Logo",
        "3780a898-81c3-4516-81ae-3a139614e1f3": "Products on shelves",
        "a27d5ca5-bb19-49d8-a70a-fec086c47f5b": "General (compact)",
        "7ec2ac80-887b-48a6-8df9-8b1357765430": "General (compact) [S1]",
    }
    assert {d.id: d.name for d in catalog.DETECTION_DOMAINS} == published
    assert all(d.type == catalog.OBJECT_DETECTION for d in catalog.DETECTION_DOMAINS)
    assert catalog.is_detection("A27D5CA5-BB19-49D8-A70A-FEC086C47F5B")
    assert not catalog.is_detection(catalog.GENERAL_DOMAIN_ID)
    assert not {d.id for d in catalog.DOMAINS} & set(published)


def test_link_signer_round_trip_tamper_and_expiry() -> None:
    signer = LinkSigner("secret-key", ttl_seconds=60)
    url = signer.link("http://h:1/", "p", "i", "thumbnail")
    path, query = url.removeprefix("http://h:1").split("?")
    params = dict(kv.split("=") for kv in query.split("&"))
    signer.verify(path, int(params["se"]), params["sig"])
    with pytest.raises(NotFound):
        signer.verify(path.replace("thumbnail", "original"), int(params["se"]), params["sig"])
    with pytest.raises(NotFound):
        LinkSigner("other-key", 60).verify(path, int(params["se"]), params["sig"])
    expired = int(time.time()) - 1
    with pytest.raises(NotFound):
        signer.verify(path, expired, signer._signature(path, expired))


def test_settings_choose_one_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CV_STORAGE_CONNECTION_STRING", raising=False)
    assert "127.0.0.1:10000" in (Settings().storage_connection_string or "")
    monkeypatch.setenv("CV_STORAGE_ACCOUNT_NAME", "acct")
    settings = Settings()
    assert settings.storage_account_name == "acct"
    assert settings.storage_connection_string is None
    monkeypatch.setenv("CV_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    with pytest.raises(ValueError):
        Settings()
    monkeypatch.setenv("CV_URL_ALLOWLIST", "127.0.0.0/8, localhost")
    monkeypatch.delenv("CV_STORAGE_ACCOUNT_NAME")
    assert Settings().url_allowlist == ["127.0.0.0/8", "localhost"]


def test_domains_estimate_the_size_of_what_they_serve() -> None:
    sizes = {d.backbone: d.model_megabytes for d in catalog.DOMAINS}
    assert sizes == {catalog.LITE0: 14, catalog.LITE2_LITE0: 33}
