"""`python -m tools.migrate.dataset` against the service over HTTP with the SDK: a detection
project exported as each format and imported into a new project equals the original; importing
again reports duplicates and adds nothing; a COCO file written by another tool imports with its
boxes; a format the project cannot hold is refused before anything is written."""

from __future__ import annotations

import uuid
import zipfile
from pathlib import Path

import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)

from functions.dataset_formats import DETECTION_FORMATS
from tests.conftest import GENERAL_COMPACT, TRAINING_KEY
from tests.detection_data import detection_set, foreign_coco
from tests.integration.checks import labelled_contents
from tools.migrate.dataset import main as dataset_command

GENERAL_DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


def run(endpoint: str, *args: str) -> int:
    return dataset_command([*args, "--endpoint", endpoint, "--key", TRAINING_KEY, "--rate", "0"])


@pytest.fixture(scope="module")
def boxes(trainer: CustomVisionTrainingClient) -> str:
    project = trainer.create_project(f"cli-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_DETECTION)
    tag = trainer.create_tag(project.id, "raccoon")
    entries = [
        ImageFileCreateEntry(
            contents=bytearray(photo.path.read_bytes()),
            regions=[
                Region(tag_id=tag.id, left=x, top=y, width=w, height=h)
                for _, x, y, w, h in photo.regions
            ],
        )
        for photo in detection_set("raccoon")[:3]
    ]
    batch = ImageFileCreateBatch(images=entries, metadata={"site": "north"})
    assert trainer.create_images_from_files(project.id, batch).is_batch_successful
    return str(project.id)


@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_export_then_import_equals_the_original(
    trainer: CustomVisionTrainingClient,
    endpoint: str,
    boxes: str,
    tmp_path: Path,
    fmt: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    archive = tmp_path / f"raccoons-{fmt}.zip"
    assert run(endpoint, "export", "--project", boxes, "--format", fmt, "--out", str(archive)) == 0
    assert zipfile.is_zipfile(archive) and not archive.with_name(archive.name + ".partial").exists()
    copy = trainer.create_project(f"cli-{fmt}-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_DETECTION)
    assert run(endpoint, "import", str(archive), "--project", copy.id, "--format", fmt) == 0
    assert "3 images added, 0 duplicates, 0 failed" in capsys.readouterr().out
    keeps = fmt == "coco"
    assert labelled_contents(trainer, copy.id, keeps) == labelled_contents(trainer, boxes, keeps)
    assert run(endpoint, "import", str(archive), "--project", copy.name, "--format", fmt) == 0
    said = capsys.readouterr().out
    assert "0 images added, 3 duplicates, 0 failed" in said
    assert said.count("already in the project") == 3


def test_a_coco_file_from_another_tool(
    trainer: CustomVisionTrainingClient, endpoint: str, tmp_path: Path
) -> None:
    photos = detection_set("raccoon")[3:6]
    archive = tmp_path / "exported-elsewhere.zip"
    with archive.open("wb") as out:
        foreign_coco(photos, "Raccoon", out)
    project = trainer.create_project(
        f"cli-coco-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_DETECTION
    )
    assert run(endpoint, "import", str(archive), "--project", project.id, "--format", "coco") == 0
    images, tags = labelled_contents(trainer, project.id, False)
    assert tags == [("Raccoon", 3)]
    expected = sorted(
        sorted(("Raccoon", *(round(v, 4) for v in r[1:])) for r in p.regions) for p in photos
    )
    assert sorted(regions for _, regions, _ in images.values()) == expected


def test_a_format_the_project_cannot_hold_is_refused(
    trainer: CustomVisionTrainingClient,
    endpoint: str,
    boxes: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "never.zip"
    assert (
        run(endpoint, "export", "--project", boxes, "--format", "folders", "--out", str(out)) == 2
    )
    assert "coco, voc, yolo" in capsys.readouterr().err and not out.exists()
    tags = trainer.create_project(f"cli-tags-{uuid.uuid4().hex[:8]}", domain_id=GENERAL_COMPACT)
    assert run(endpoint, "import", str(out), "--project", tags.id, "--format", "coco") == 2
    assert trainer.get_tags(tags.id) == []
