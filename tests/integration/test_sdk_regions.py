"""Object detection through the official SDK: detection domains and projects, regions on
uploads (files and URLs), region batches, region deletion, proposals, tags and counts."""

from __future__ import annotations

import uuid

import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageRegionCreateEntry,
    ImageUrlCreateBatch,
    ImageUrlCreateEntry,
    Region,
)

from tests.detection_data import LabelledPhoto, detection_set

COMPACT_DETECTION = "a27d5ca5-bb19-49d8-a70a-fec086c47f5b"
GENERAL_COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"


def _detection_project(trainer: CustomVisionTrainingClient) -> str:
    project = trainer.create_project(f"od-{uuid.uuid4().hex[:8]}", domain_id=COMPACT_DETECTION)
    return str(project.id)


def _regions(photo: LabelledPhoto, tags: dict[str, str]) -> list[Region]:
    return [
        Region(tag_id=tags[tag], left=left, top=top, width=width, height=height)
        for tag, left, top, width, height in photo.regions
    ]


def _box(region: object) -> tuple[float, float, float, float]:
    return tuple(round(getattr(region, k), 6) for k in ("left", "top", "width", "height"))  # type: ignore[return-value]


def test_the_quickstarts_first_line_finds_the_compact_detection_domain(
    trainer: CustomVisionTrainingClient,
) -> None:
    # Microsoft's object-detection quickstart, as written.
    obj_detection_domain = next(
        domain
        for domain in trainer.get_domains()
        if domain.type == "ObjectDetection" and domain.name == "General"
    )
    assert obj_detection_domain.id == "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
    kinds = {d.id: d.type for d in trainer.get_domains()}
    assert kinds[COMPACT_DETECTION] == "ObjectDetection"
    assert kinds[GENERAL_COMPACT] == "Classification"
    assert trainer.get_domain(COMPACT_DETECTION).name == "General (compact)"
    project = trainer.create_project("od-quickstart", domain_id=obj_detection_domain.id)
    assert project.settings.domain_id == obj_detection_domain.id
    trainer.delete_project(project.id)


def test_a_project_keeps_its_kind(trainer: CustomVisionTrainingClient) -> None:
    project_id = _detection_project(trainer)
    project = trainer.get_project(project_id)
    project.settings.domain_id = GENERAL_COMPACT
    with pytest.raises(CustomVisionErrorException) as refused:
        trainer.update_project(project_id, project)
    assert refused.value.error.code == "BadRequestProjectUnsupportedDomainTypeChange"
    project.settings.domain_id = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"  # General detection
    assert (
        trainer.update_project(project_id, project).settings.domain_id == project.settings.domain_id
    )
    trainer.delete_project(project_id)


def test_upload_with_regions_lists_them_and_counts_follow(
    trainer: CustomVisionTrainingClient,
) -> None:
    project_id = _detection_project(trainer)
    cells = detection_set("bccd")[:3]
    names = sorted({tag for photo in cells for tag, *_ in photo.regions})
    tags = {name: trainer.create_tag(project_id, name).id for name in names}
    raccoon = detection_set("raccoon")[0]
    tags["raccoon"] = trainer.create_tag(project_id, "raccoon").id
    entries = [
        ImageFileCreateEntry(
            name=p.path.name, contents=p.path.read_bytes(), regions=_regions(p, tags)
        )
        for p in [*cells, raccoon]
    ]
    entries.append(
        ImageFileCreateEntry(
            name="empty.jpg", contents=detection_set("raccoon")[1].path.read_bytes()
        )
    )
    summary = trainer.create_images_from_files(project_id, ImageFileCreateBatch(images=entries))
    assert summary.is_batch_successful, [(i.status, i.source_url) for i in summary.images]
    for photo, result in zip([*cells, raccoon], summary.images, strict=False):
        stored = result.image.regions
        assert sorted(_box(r) for r in stored) == sorted(
            tuple(round(v, 6) for v in box) for _, *box in photo.regions
        )
        assert all(r.region_id and r.created for r in stored)
        assert {r.tag_name for r in stored} == {tag for tag, *_ in photo.regions}

    # An image is tagged when it has a region; its tags are its regions' tags.
    assert trainer.get_tagged_image_count(project_id) == 4
    assert trainer.get_untagged_image_count(project_id) == 1
    assert trainer.get_tagged_image_count(project_id, tag_ids=[tags["raccoon"]]) == 1
    counts = {t.name: t.image_count for t in trainer.get_tags(project_id)}
    for name in names:
        assert counts[name] == sum(any(t == name for t, *_ in p.regions) for p in cells)
    tagged = trainer.get_tagged_images(project_id, tag_ids=[tags["raccoon"]])
    assert [i.id for i in tagged] == [summary.images[3].image.id]
    assert len(tagged[0].regions) == len(raccoon.regions)
    assert [t.tag_name for t in tagged[0].tags] == ["raccoon"]

    # Deleting a tag deletes its regions; images left with none become untagged.
    trainer.delete_tag(project_id, tags["raccoon"])
    image = trainer.get_images_by_ids(project_id, image_ids=[summary.images[3].image.id])[0]
    assert image.regions == [] and image.tags == []
    assert trainer.get_untagged_image_count(project_id) == 2
    assert trainer.get_tagged_image_count(project_id) == 3
    trainer.delete_project(project_id)


def test_upload_from_urls_with_regions(trainer: CustomVisionTrainingClient) -> None:
    source_project = _detection_project(trainer)
    photo = detection_set("raccoon")[2]
    first = (
        trainer.create_images_from_files(
            source_project,
            ImageFileCreateBatch(
                images=[ImageFileCreateEntry(name="a.jpg", contents=photo.path.read_bytes())]
            ),
        )
        .images[0]
        .image
    )
    project_id = _detection_project(trainer)
    tags = {"raccoon": trainer.create_tag(project_id, "raccoon").id}
    batch = ImageUrlCreateBatch(
        images=[ImageUrlCreateEntry(url=first.original_image_uri, regions=_regions(photo, tags))]
    )
    summary = trainer.create_images_from_urls(project_id, batch)
    assert summary.is_batch_successful, [(i.status, i.source_url) for i in summary.images]
    assert len(summary.images[0].image.regions) == len(photo.regions)
    assert trainer.get_tagged_image_count(project_id, tag_ids=[tags["raccoon"]]) == 1
    trainer.delete_project(source_project)
    trainer.delete_project(project_id)


def test_create_and_delete_image_regions(trainer: CustomVisionTrainingClient) -> None:
    project_id = _detection_project(trainer)
    raccoon = trainer.create_tag(project_id, "raccoon")
    photos = detection_set("raccoon")[:2]
    uploaded = trainer.create_images_from_files(
        project_id,
        ImageFileCreateBatch(
            images=[
                ImageFileCreateEntry(name=p.path.name, contents=p.path.read_bytes()) for p in photos
            ]
        ),
    )
    ids = [i.image.id for i in uploaded.images]
    assert trainer.get_untagged_image_count(project_id) == 2
    entries = [
        ImageRegionCreateEntry(
            image_id=image_id, tag_id=raccoon.id, left=x, top=y, width=w, height=h
        )
        for image_id, p in zip(ids, photos, strict=True)
        for _, x, y, w, h in p.regions
    ]
    created = trainer.create_image_regions(project_id, regions=entries)
    assert len(created.created) == len(entries) and not created.duplicated and not created.exceeded
    assert {c.image_id for c in created.created} == set(ids)
    assert all(c.tag_name == "raccoon" and c.region_id for c in created.created)
    assert trainer.get_untagged_image_count(project_id) == 0
    assert trainer.get_tag(project_id, raccoon.id).image_count == 2

    again = trainer.create_image_regions(project_id, regions=entries[:1])
    assert not again.created and len(again.duplicated) == 1
    assert again.duplicated[0].image_id == ids[0]

    # The regions-per-image limit: 300 are stored, the entries past it come back "exceeded".
    grid = [
        ImageRegionCreateEntry(
            image_id=ids[1], tag_id=raccoon.id, left=(n % 20) / 20, top=(n // 20) / 20,
            width=0.04, height=0.04,
        )
        for n in range(320)
    ]  # fmt: skip
    held = len(photos[1].regions)
    made = exceeded = 0
    for start in range(0, len(grid), 64):
        result = trainer.create_image_regions(project_id, regions=grid[start : start + 64])
        made, exceeded = made + len(result.created), exceeded + len(result.exceeded)
        assert not result.duplicated
    assert made == 300 - held and exceeded == len(grid) - made
    image = trainer.get_images_by_ids(project_id, image_ids=[ids[1]])[0]
    assert len(image.regions) == 300

    first_regions = [c.region_id for c in created.created if c.image_id == ids[0]]
    trainer.delete_image_regions(project_id, region_ids=first_regions)
    trainer.delete_image_regions(project_id, region_ids=first_regions)  # a repeat is harmless
    image = trainer.get_images_by_ids(project_id, image_ids=[ids[0]])[0]
    assert image.regions == [] and image.tags == []
    assert trainer.get_untagged_image_count(project_id) == 1
    assert trainer.get_tag(project_id, raccoon.id).image_count == 1
    trainer.delete_project(project_id)


def test_region_proposals(trainer: CustomVisionTrainingClient) -> None:
    project_id = _detection_project(trainer)
    photo = detection_set("raccoon")[3]
    uploaded = trainer.create_images_from_files(
        project_id,
        ImageFileCreateBatch(
            images=[ImageFileCreateEntry(name="r.jpg", contents=photo.path.read_bytes())]
        ),
    )
    image_id = uploaded.images[0].image.id
    answer = trainer.get_image_region_proposals(project_id, image_id)
    assert answer.project_id == project_id and answer.image_id == image_id
    assert 0 < len(answer.proposals) <= 20
    confidences = [p.confidence for p in answer.proposals]
    assert confidences == sorted(confidences, reverse=True)
    for p in answer.proposals:
        b = p.bounding_box
        assert b.left >= 0 and b.top >= 0 and b.width > 0 and b.height > 0
        assert b.left + b.width <= 1 + 1e-6 and b.top + b.height <= 1 + 1e-6
    trainer.delete_project(project_id)
