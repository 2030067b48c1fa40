"""Any name Custom Vision accepts round-trips exactly: Table keys forbid / \\ # ? and control
characters, so names must never become keys."""

from __future__ import annotations

import uuid

import httpx
import pytest

from functions.storage.clients import Storage
from tests.conftest import assert_error

NAMES = [
    "C#",
    "cats/dogs",
    "what?",
    "back\\slash",
    "100% sure",
    "tab\there",
    "new\nline",
    "bell\x07char",
    "del\x7fchar",
    "emoji 🐈‍⬛ 🌻",
    "Ünïcödé " + "名" * 240,  # 256 characters
    "'quoted' \"double\" <angle> &amp;",
]


@pytest.mark.parametrize("name", NAMES)
def test_project_and_tag_names_round_trip(http: httpx.Client, name: str) -> None:
    unique = f"{name} {uuid.uuid4().hex[:6]}"[-256:]
    created = http.post("/projects", params={"name": unique})
    assert created.status_code == 200, created.text
    project_id = created.json()["id"]
    assert http.get(f"/projects/{project_id}").json()["name"] == unique
    assert unique in [p["name"] for p in http.get("/projects").json()]

    tag = http.post(f"/projects/{project_id}/tags", params={"name": name})
    assert tag.status_code == 200, tag.text
    assert http.get(f"/projects/{project_id}/tags/{tag.json()['id']}").json()["name"] == name
    # Unique ignoring case, for these names too.
    assert_error(
        http.post(f"/projects/{project_id}/tags", params={"name": name.upper()}),
        400,
        "BadRequestTagNameNotUnique",
    )
    assert_error(
        http.post("/projects", params={"name": unique.upper()}),
        400,
        "BadRequestProjectNameNotUnique",
    )

    # Renaming moves the unique name: the old one is free again, the new one is taken.
    renamed = http.patch(
        f"/projects/{project_id}/tags/{tag.json()['id']}", json={"name": name + "?#/"}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == name + "?#/"
    again = http.post(f"/projects/{project_id}/tags", params={"name": name})
    assert again.status_code == 200, again.text
    assert_error(
        http.patch(
            f"/projects/{project_id}/tags/{again.json()['id']}", json={"name": name + "?#/"}
        ),
        400,
        "BadRequestTagNameNotUnique",
    )
    assert http.delete(f"/projects/{project_id}").status_code == 204
    assert http.post("/projects", params={"name": unique}).status_code == 200


def test_publish_names_with_key_forbidden_characters(storage: Storage) -> None:
    project_id, iteration_id, other = (str(uuid.uuid4()) for _ in range(3))
    iterations = storage.iterations
    for name in ("C# model?", "back\\slash", "tab\tname", "a/b"):
        assert iterations.claim_publish_name(project_id, name, iteration_id)
        assert iterations.published(project_id, name) == iteration_id
        assert not iterations.claim_publish_name(project_id, name, other)
        iterations.release_publish_name(project_id, name, other)  # not its claim: kept
        assert iterations.published(project_id, name) == iteration_id
        iterations.release_publish_name(project_id, name, iteration_id)
        assert iterations.published(project_id, name) is None


def test_legacy_name_rows_are_rekeyed(http: httpx.Client, storage: Storage) -> None:
    """Rows written before names were digested (keyed by the lower-cased name) move to the
    digest key at start-up, so old names stay unique and old publish names keep working."""
    from functions.storage.migrations import rekey_names
    from functions.storage.tables import PROJECTS_PARTITION

    name = f"Legacy {uuid.uuid4().hex[:6]}"
    project_id = http.post("/projects", params={"name": name}).json()["id"]
    tag_id = http.post(f"/projects/{project_id}/tags", params={"name": "Old"}).json()["id"]
    tables = storage.projects.table, storage.tags.table, storage.iterations.table
    # Turn the new rows back into legacy ones.
    for table, partition, holder in (
        (tables[0], PROJECTS_PARTITION, {"ProjectId": project_id}),
        (tables[1], project_id, {"TagId": tag_id}),
    ):
        for row in table.query_entities(
            "PartitionKey eq @pk and RowKey ge 'nm|' and RowKey lt 'nm}'",
            parameters={"pk": partition},
        ):
            if all(row.get(k) == v for k, v in holder.items()):
                table.delete_entity(partition, row["RowKey"])
    tables[0].create_entity(
        {
            "PartitionKey": PROJECTS_PARTITION,
            "RowKey": "name|" + name.lower(),
            "ProjectId": project_id,
        }
    )
    tables[1].create_entity({"PartitionKey": project_id, "RowKey": "name|old", "TagId": tag_id})
    tables[2].create_entity({"PartitionKey": project_id, "RowKey": "pub|live", "IterationId": "i1"})

    assert rekey_names(*tables) >= 3
    assert_error(
        http.post("/projects", params={"name": name}), 400, "BadRequestProjectNameNotUnique"
    )
    assert_error(
        http.post(f"/projects/{project_id}/tags", params={"name": "OLD"}),
        400,
        "BadRequestTagNameNotUnique",
    )
    assert storage.iterations.published(project_id, "live") == "i1"
    assert rekey_names(*tables) == 0
    assert http.delete(f"/projects/{project_id}").status_code == 204
