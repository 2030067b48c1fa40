"""Upload batches grouped by metadata, at most 64 images each, order kept within a group."""

from __future__ import annotations

from functions.domain.batches import by_metadata


def test_groups_by_metadata_and_splits_at_the_batch_size() -> None:
    items = [(i, {"camera": "a"} if i % 3 else None) for i in range(200)]
    groups = list(by_metadata(items, lambda item: item[1]))
    assert [(m, len(g)) for m, g in groups] == [
        ({}, 64), ({}, 3), ({"camera": "a"}, 64), ({"camera": "a"}, 64), ({"camera": "a"}, 5)
    ]  # fmt: skip
    assert sorted(i for _, g in groups for i, _ in g) == list(range(200))
    assert [i for i, _ in groups[0][1]][:3] == [0, 3, 6]
    same = list(by_metadata([1, 2], lambda _: {"b": "2", "a": "1"}))
    assert same == [({"a": "1", "b": "2"}, [1, 2])]
