"""`iterationId` on tag and image queries answers as of that iteration: the images it was
trained on, with the tags and regions they had, and its tags counted then (under their
current names; a tag deleted since under its old one), through the SDK."""

from __future__ import annotations

import uuid

import httpx
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    ImageTagCreateEntry,
    Tag,
)

from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import GENERAL_COMPACT, assert_error, real_photos
from trainer_job.__main__ import process_one


def upload(
    trainer: CustomVisionTrainingClient, project_id: str, tag_id: str, photos: list[bytes]
) -> list[str]:
    entries = [ImageFileCreateEntry(contents=p, tag_ids=[tag_id]) for p in photos]
    summary = trainer.create_images_from_files(project_id, ImageFileCreateBatch(images=entries))
    assert summary.is_batch_successful
    return [r.image.id for r in summary.images]


def test_queries_answer_as_of_the_iteration(
    trainer: CustomVisionTrainingClient, storage: Storage, settings: Settings, http: httpx.Client
) -> None:
    project = trainer.create_project(f"as-of-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_COMPACT)
    pid = project.id
    tags = {name: trainer.create_tag(pid, name).id for name in ("daisy", "tulip", "rose")}
    daisies = upload(trainer, pid, tags["daisy"], real_photos("daisy", 5))
    tulips = upload(trainer, pid, tags["tulip"], real_photos("tulip", 5))
    upload(trainer, pid, tags["rose"], real_photos("rose", 5))
    iteration = trainer.train_project(pid)
    while process_one(storage, settings):
        pass
    assert trainer.get_iteration(pid, iteration.id).status == "Completed"
    iid = iteration.id

    # After training: more photos, a retagged one, a renamed tag, a deleted tag.
    upload(trainer, pid, tags["daisy"], real_photos("daisy", 3, start=5))
    moved = tulips[0]
    trainer.delete_image_tags(pid, [moved], [tags["tulip"]])
    trainer.create_image_tags(pid, [ImageTagCreateEntry(image_id=moved, tag_id=tags["daisy"])])
    trainer.update_tag(pid, tags["tulip"], Tag(name="tulipa", description="", type="Regular"))
    trainer.delete_tag(pid, tags["rose"])

    # Now: 8 + 1 daisies, 4 tulips, 5 untagged roses.
    assert trainer.get_tagged_image_count(pid) == 13
    assert trainer.get_untagged_image_count(pid) == 5
    # As of the iteration: 15 tagged images, 5 of each tag, none untagged.
    assert trainer.get_tagged_image_count(pid, iteration_id=iid) == 15
    assert trainer.get_untagged_image_count(pid, iteration_id=iid) == 0
    assert trainer.get_image_count(pid, iteration_id=iid) == 15
    then = {t.name: t.image_count for t in trainer.get_tags(pid, iteration_id=iid)}
    assert then == {"daisy": 5, "tulipa": 5, "rose": 5}
    assert trainer.get_tag(pid, tags["tulip"], iteration_id=iid).image_count == 5
    now = {t.name: t.image_count for t in trainer.get_tags(pid)}
    assert now == {"daisy": 9, "tulipa": 4}
    daisy_then = trainer.get_tagged_images(pid, iteration_id=iid, tag_ids=[tags["daisy"]], take=256)
    assert sorted(i.id for i in daisy_then) == sorted(daisies)
    assert trainer.get_tagged_image_count(pid, iteration_id=iid, tag_ids=[tags["daisy"]]) == 5
    (image,) = trainer.get_images_by_ids(pid, image_ids=[moved], iteration_id=iid)
    assert [t.tag_name for t in image.tags] == ["tulipa"]
    roses = trainer.get_images(pid, iteration_id=iid, tag_ids=[tags["rose"]], take=256)
    assert len(roses) == 5 and {t.tag_name for i in roses for t in i.tags} == {"rose"}
    assert trainer.get_untagged_images(pid, iteration_id=iid) == []

    assert_error(
        http.get(f"/projects/{pid}/tags", params={"iterationId": "nope"}),
        400,
        "BadRequestInvalidIds",
    )
    missing = http.get(f"/projects/{pid}/images/tagged", params={"iterationId": str(uuid.uuid4())})
    assert_error(missing, 404, "NotFoundIteration")
    gone = http.get(f"/projects/{pid}/tags/{uuid.uuid4()}", params={"iterationId": iid})
    assert_error(gone, 404, "NotFoundTag")
