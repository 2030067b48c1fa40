"""Upload batches of images that carry metadata: an upload's metadata is its whole batch's, so
images go in groups of equal metadata, at most Custom Vision's batch size to a group."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from functions.domain.limits import MAX_IMAGES_PER_BATCH

T = TypeVar("T")


def by_metadata(
    items: Sequence[T], metadata: Callable[[T], dict[str, str] | None]
) -> Iterator[tuple[dict[str, str], list[T]]]:
    """(metadata, items) groups in the items' order within each group."""
    groups: dict[tuple[tuple[str, str], ...], list[T]] = {}
    for item in items:
        groups.setdefault(tuple(sorted((metadata(item) or {}).items())), []).append(item)
    for key, members in groups.items():
        for start in range(0, len(members), MAX_IMAGES_PER_BATCH):
            yield dict(key), members[start : start + MAX_IMAGES_PER_BATCH]


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
