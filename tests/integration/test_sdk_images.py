"""The official SDK uploads, lists, counts, tags, annotates and deletes images."""

from __future__ import annotations

import uuid

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageTagCreateEntry,
    ImageUrlCreateBatch,
    ImageUrlCreateEntry,
)

from tests.conftest import jpeg_bytes, real_photos


@pytest.fixture()
def project_id(trainer: CustomVisionTrainingClient) -> str:
    return str(trainer.create_project(f"images-{uuid.uuid4().hex[:8]}").id)


def test_upload_files_list_count_and_fetch_links(
    trainer: CustomVisionTrainingClient, project_id: str
) -> None:
    daisy = trainer.create_tag(project_id, "daisy")
    rose = trainer.create_tag(project_id, "rose")
    photos = real_photos("daisy", 3) + real_photos("rose", 2)
    entries = [
        ImageFileCreateEntry(name=f"daisy{i}.jpg", contents=p, tag_ids=[daisy.id])
        for i, p in enumerate(photos[:3])
    ] + [
        ImageFileCreateEntry(name=f"rose{i}.jpg", contents=p, tag_ids=[rose.id])
        for i, p in enumerate(photos[3:])
    ]
    summary = trainer.create_images_from_files(project_id, ImageFileCreateBatch(images=entries))
    assert summary.is_batch_successful, [(i.status, i.source_url) for i in summary.images]
    assert [i.status for i in summary.images] == ["OK"] * 5
    image = summary.images[0].image
    assert image.width > 0 and image.height > 0
    assert image.tags[0].tag_name == "daisy"

    assert trainer.get_tagged_image_count(project_id) == 5
    assert trainer.get_tagged_image_count(project_id, tag_ids=[daisy.id]) == 3
    assert trainer.get_tagged_image_count(project_id, tag_ids=[daisy.id, rose.id]) == 5
    assert trainer.get_untagged_image_count(project_id) == 0
    assert {t.name: t.image_count for t in trainer.get_tags(project_id)} == {"daisy": 3, "rose": 2}

    newest = trainer.get_tagged_images(project_id, take=2)
    oldest = trainer.get_tagged_images(project_id, order_by="Oldest", take=2)
    assert newest[0].id == summary.images[-1].image.id
    assert oldest[0].id == summary.images[0].image.id
    roses = trainer.get_tagged_images(project_id, tag_ids=[rose.id])
    assert {i.id for i in roses} == {r.image.id for r in summary.images[3:]}
    page2 = trainer.get_tagged_images(project_id, take=2, skip=2)
    assert [i.id for i in page2] == [r.image.id for r in summary.images[::-1][2:4]]

    for uri in (image.original_image_uri, image.resized_image_uri, image.thumbnail_uri):
        response = httpx.get(uri)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("image/")
    assert httpx.get(image.original_image_uri).content == photos[0]
    tampered = image.original_image_uri.replace("sig=", "sig=0")
    assert httpx.get(tampered).status_code == 404


def test_duplicate_upload_is_reported(trainer: CustomVisionTrainingClient, project_id: str) -> None:
    data = jpeg_bytes((10, 200, 10))
    first = trainer.create_images_from_data(project_id, data)
    assert first.images[0].status == "OK"
    second = trainer.create_images_from_data(project_id, data)
    assert not second.is_batch_successful
    assert second.images[0].status == "OKDuplicate"
    assert second.images[0].image.id == first.images[0].image.id
    assert trainer.get_image_count(project_id) == 1


def test_untagged_then_tag_untag_and_delete(
    trainer: CustomVisionTrainingClient, project_id: str
) -> None:
    tag = trainer.create_tag(project_id, "sunflower")
    created = [
        trainer.create_images_from_data(project_id, jpeg_bytes((i * 40, 90, 90))).images[0].image
        for i in range(3)
    ]
    assert trainer.get_untagged_image_count(project_id) == 3
    assert len(trainer.get_untagged_images(project_id)) == 3

    result = trainer.create_image_tags(
        project_id,
        [ImageTagCreateEntry(image_id=i.id, tag_id=tag.id) for i in created[:2]],
    )
    assert len(result.created) == 2
    again = trainer.create_image_tags(
        project_id, [ImageTagCreateEntry(image_id=created[0].id, tag_id=tag.id)]
    )
    assert len(again.duplicated) == 1
    assert trainer.get_untagged_image_count(project_id) == 1
    assert trainer.get_tagged_image_count(project_id, tag_ids=[tag.id]) == 2

    trainer.delete_image_tags(project_id, [created[0].id], [tag.id])
    assert trainer.get_untagged_image_count(project_id) == 2
    assert trainer.get_tag(project_id, tag.id).image_count == 1

    trainer.delete_images(project_id, [created[1].id])
    assert trainer.get_image_count(project_id) == 2
    assert trainer.get_tag(project_id, tag.id).image_count == 0
    by_ids = trainer.get_images_by_ids(project_id, [c.id for c in created])
    assert {i.id for i in by_ids} == {created[0].id, created[2].id}

    trainer.delete_images(project_id, all_images=True, all_iterations=True)
    assert trainer.get_image_count(project_id) == 0


def test_metadata_update_and_filter(trainer: CustomVisionTrainingClient, project_id: str) -> None:
    a = trainer.create_images_from_data(project_id, jpeg_bytes((1, 2, 3))).images[0].image
    b = trainer.create_images_from_data(project_id, jpeg_bytes((200, 2, 3))).images[0].image
    summary = trainer.update_image_metadata(project_id, [a.id], {"camera": "left", "site": "n"})
    assert summary.is_batch_successful
    trainer.update_image_metadata(project_id, [b.id], {"camera": "right"})
    assert trainer.get_images_by_ids(project_id, [a.id])[0].metadata == {
        "camera": "left",
        "site": "n",
    }
    left = trainer.get_images(project_id, filter="camera eq 'left'")
    assert [i.id for i in left] == [a.id]
    not_left = trainer.get_images(project_id, filter="camera ne 'left'")
    assert [i.id for i in not_left] == [b.id]
    either = trainer.get_image_count(project_id, filter="camera eq 'left' or camera eq 'right'")
    assert either == 2


def test_upload_from_urls(
    trainer: CustomVisionTrainingClient, project_id: str, endpoint: str
) -> None:
    source = trainer.create_images_from_data(project_id, jpeg_bytes((5, 5, 250))).images[0].image
    other = str(trainer.create_project(f"urls-{uuid.uuid4().hex[:8]}").id)
    tag = trainer.create_tag(other, "blue")
    batch = ImageUrlCreateBatch(
        images=[ImageUrlCreateEntry(url=source.original_image_uri)], tag_ids=[tag.id]
    )
    summary = trainer.create_images_from_urls(other, batch)
    assert summary.images[0].status == "OK"
    assert summary.images[0].image.tags[0].tag_id == tag.id
    assert trainer.get_tagged_image_count(other) == 1
