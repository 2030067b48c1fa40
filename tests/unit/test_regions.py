"""Boxes and region edits: the checks and the derived tags, without storage."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from functions.domain.errors import BadRequest
from functions.domain.ids import new_region_id, new_time_ordered_id, region_image_prefix
from functions.domain.image_edits import with_regions, without_regions, without_tags
from functions.domain.models import Box, Image, Region
from functions.domain.regions import same_region, valid_box

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _image() -> Image:
    return Image("i", NOW, 640, 480, "sha", "image/jpeg")


@pytest.mark.parametrize(
    "box",
    [
        (0.5, 0.0, 0.6, 0.5),
        (0.0, 0.5, 0.5, 0.51),
        (-0.01, 0.0, 0.5, 0.5),
        (0.0, -1e-3, 0.5, 0.5),
        (0.1, 0.1, 0.0, 0.5),
        (0.1, 0.1, 0.5, -0.5),
        (math.nan, 0.1, 0.5, 0.5),
        (0.1, math.inf, 0.5, 0.5),
    ],
)
def test_a_box_outside_the_image_or_empty_is_refused(box: tuple[float, ...]) -> None:
    with pytest.raises(BadRequest) as refused:
        valid_box(*box)
    assert refused.value.code == "BadRequestImageRegions"


def test_rounding_at_the_edge_is_kept_inside() -> None:
    box = valid_box(0.3, -5e-7, 0.7000004, 1.0000001)
    assert box.left == 0.3 and box.top == 0.0
    assert box.left + box.width <= 1.0 and box.top + box.height <= 1.0
    assert valid_box(0, 0, 1, 1) == Box(0.0, 0.0, 1.0, 1.0)


def test_same_region_means_same_tag_and_box_up_to_rounding() -> None:
    a = Box(0.1, 0.2, 0.3, 0.4)
    assert same_region("t", a, "t", Box(0.1 + 1e-7, 0.2, 0.3, 0.4))
    assert not same_region("t", a, "u", a)
    assert not same_region("t", a, "t", Box(0.1, 0.2, 0.31, 0.4))


def test_an_images_tags_are_its_regions_tags() -> None:
    later = NOW + timedelta(minutes=1)
    regions = [
        Region("r1", "cat", later, Box(0, 0, 0.5, 0.5)),
        Region("r2", "dog", NOW, Box(0.5, 0.5, 0.5, 0.5)),
        Region("r3", "cat", NOW, Box(0.2, 0.2, 0.1, 0.1)),
    ]
    image = with_regions(_image(), regions)
    assert image.tag_ids == ["cat", "dog"]
    assert {t.tag_id: t.created for t in image.tags} == {"cat": NOW, "dog": NOW}
    fewer = without_regions(image, {"r2"})
    assert fewer.tag_ids == ["cat"] and [r.id for r in fewer.regions] == ["r1", "r3"]
    untagged = without_tags(image, {"cat"})
    assert untagged.tag_ids == ["dog"] and [r.id for r in untagged.regions] == ["r2"]
    assert without_regions(image, {"r1", "r2", "r3"}).tags == []


def test_a_region_id_names_its_image() -> None:
    image_id = new_time_ordered_id()
    ids = {new_region_id(image_id) for _ in range(1000)}
    assert len(ids) == 1000
    for region_id in ids:
        parsed = uuid.UUID(region_id)
        assert parsed.variant == uuid.RFC_4122
        assert image_id.startswith(region_image_prefix(region_id))
    other = new_time_ordered_id()
    assert uuid.UUID(new_region_id(other)).int >> 64 == uuid.UUID(other).int >> 64
