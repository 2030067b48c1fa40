"""`python -m tools.migrate` between two instances of the service (two Azurite emulators, two
API servers): a classification project (tags with types and descriptions, tagged and untagged
photos, metadata, a trained and published iteration) and a detection project (regions) come
over with every image's bytes, tags, regions and metadata; an interrupted run finishes on the
next; a second run copies nothing; with the journal lost, identical bytes come back
OKDuplicate and nothing changes. The copy is trained and published under the same name, so a
prediction client only changes its endpoint and key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
    Region,
)
from msrest.authentication import ApiKeyCredentials

from functions.api.app import create_app
from functions.settings import Settings
from functions.storage.clients import Storage
from tests.conftest import GENERAL_COMPACT, TRAINING_PREFIX, assert_error, real_photos
from tests.detection_data import detection_set
from tests.integration.checks import project_contents
from tools.azurite import free_port, start_azurite
from tools.migrate import journal as journal_module
from tools.migrate.__main__ import main as migrate
from tools.serve import serve_in_thread
from trainer_job.__main__ import process_one, watching

GENERAL_DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
PUBLISH_NAME = "flowers-live"
FLOWERS = ("daisy", "sunflower", "tulip")
PER_FLOWER = 5


@dataclass
class Instance:
    url: str
    key: str
    prediction_key: str
    storage: Storage
    settings: Settings

    @property
    def trainer(self) -> CustomVisionTrainingClient:
        return CustomVisionTrainingClient(
            self.url, ApiKeyCredentials(in_headers={"Training-key": self.key})
        )

    def train_pending(self) -> None:
        while process_one(self.storage, self.settings):
            pass


@contextmanager
def instance(name: str) -> Iterator[Instance]:
    emulator = start_azurite(None, free_port(), free_port(), free_port())
    try:
        settings = Settings(
            storage_connection_string=emulator.connection_string,
            training_key=f"{name}-training-key",
            prediction_key=f"{name}-prediction-key",
            training_seed=7,
        )
        storage = Storage.from_settings(settings)
        storage.prepare()
        with serve_in_thread(create_app(settings, storage)) as url:
            yield Instance(url, settings.training_key, settings.prediction_key, storage, settings)
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def source() -> Iterator[Instance]:
    with instance("source") as made:
        fill(made)
        yield made


@pytest.fixture(scope="module")
def target() -> Iterator[Instance]:
    with instance("target") as made:
        yield made


def fill(source: Instance) -> None:
    """Two projects through the SDK; the classification one trained and published."""
    trainer = source.trainer
    flowers = trainer.create_project(
        "flowers", description="three flowers", domain_id=GENERAL_COMPACT
    )
    for n, flower in enumerate(FLOWERS):
        tag = trainer.create_tag(flowers.id, flower, description=f"photos of {flower}s")
        photos = real_photos(flower, PER_FLOWER)
        # Three metadata groups, so the copy takes several upload batches.
        groups: list[tuple[dict[str, str] | None, list[bytes]]] = [
            (None, photos[:2]),
            ({"camera": "a"}, photos[2:4]),
            ({"camera": "b", "site": str(n)}, photos[4:]),
        ]
        for metadata, group in groups:
            entries = [ImageFileCreateEntry(contents=p, tag_ids=[tag.id]) for p in group]
            batch = ImageFileCreateBatch(images=entries, metadata=metadata)
            assert trainer.create_images_from_files(flowers.id, batch).is_batch_successful
    trainer.create_tag(flowers.id, "nothing", type="Negative")
    untagged = [ImageFileCreateEntry(contents=p) for p in real_photos("rose", 2)]
    batch = ImageFileCreateBatch(images=untagged)
    assert trainer.create_images_from_files(flowers.id, batch).is_batch_successful
    iteration = trainer.train_project(flowers.id)
    source.train_pending()
    assert trainer.get_iteration(flowers.id, iteration.id).status == "Completed"
    trainer.publish_iteration(flowers.id, iteration.id, PUBLISH_NAME, "source-prediction")

    raccoons = trainer.create_project("raccoons", domain_id=GENERAL_DETECTION)
    tags: dict[str, str] = {}
    entries = []
    for photo in detection_set("raccoon")[:6]:
        regions = []
        for name, left, top, width, height in photo.regions:
            if name not in tags:
                tags[name] = trainer.create_tag(raccoons.id, name).id
            regions.append(
                Region(tag_id=tags[name], left=left, top=top, width=width, height=height)
            )
        entries.append(ImageFileCreateEntry(contents=photo.path.read_bytes(), regions=regions))
    batch = ImageFileCreateBatch(images=entries, metadata={"source": "fixtures"})
    assert trainer.create_images_from_files(raccoons.id, batch).is_batch_successful


def contents(side: Instance) -> dict[str, Any]:
    """Everything the migration must carry, keyed by project name."""
    trainer = side.trainer
    return {p.name: project_contents(trainer, p.id) for p in trainer.get_projects()}


def trainer_worker(side: Instance) -> AbstractContextManager[None]:
    return watching(side.storage, side.settings)


def arguments(source: Instance, target: Instance, state: Path, *extra: str) -> list[str]:
    return [
        "--source-endpoint",
        source.url,
        "--source-key",
        source.key,
        "--target-endpoint",
        target.url,
        "--target-key",
        target.key,
        "--state",
        str(state),
        "--rate",
        "0",
        *extra,
    ]


def test_migration_copies_everything_resumes_and_repeats_as_a_no_op(
    source: Instance,
    target: Instance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = tmp_path / "state.json"
    expected = contents(source)
    assert len(expected["flowers"]["images"]) == 3 * PER_FLOWER + 2

    # Interrupted: the third save of the journal (after the first project's tags and one
    # upload batch) never happens, although the target stored that batch's images.
    real_save = journal_module.Journal.save
    saves = {"n": 0}

    def dying_save(self: journal_module.Journal) -> None:
        saves["n"] += 1
        if saves["n"] == 3:
            raise KeyboardInterrupt
        real_save(self)

    monkeypatch.setattr(journal_module.Journal, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        migrate(arguments(source, target, state))
    monkeypatch.setattr(journal_module.Journal, "save", real_save)
    partly = contents(target)
    assert 0 < len(partly["flowers"]["images"]) < len(expected["flowers"]["images"])
    capsys.readouterr()

    # Restarted, with training and publishing: everything equal on both sides.
    with trainer_worker(target):
        assert migrate(arguments(source, target, state, "--publish")) == 0
    out = capsys.readouterr().out
    assert "published as 'flowers-live'" in out, out
    assert "NO" not in out, out
    assert contents(target) == expected
    source_ids = {p.name: p.id for p in source.trainer.get_projects()}
    assert {p.name: p.id for p in target.trainer.get_projects()} == source_ids
    # The batch stored but not recorded came back as duplicates; the first batch was skipped.
    assert "flowers: 3 copied, 6 already there (identical bytes), 8 skipped" in out, out

    # The copy answers predictions at the same project id and publish name.
    credentials = ApiKeyCredentials(in_headers={"Prediction-key": target.prediction_key})
    predictor = CustomVisionPredictionClient(target.url, credentials)
    flowers = next(p for p in target.trainer.get_projects() if p.name == "flowers")
    answer = predictor.classify_image(
        flowers.id, PUBLISH_NAME, real_photos("daisy", 1, start=10)[0]
    )
    assert {p.tag_name for p in answer.predictions} >= set(FLOWERS)

    # A second run copies nothing and trains nothing.
    journal_before = state.read_text()
    assert migrate(arguments(source, target, state, "--publish")) == 0
    out = capsys.readouterr().out
    assert out.count(" 0 copied, 0 already there") == 2, out
    assert "already published as 'flowers-live'" in out
    assert state.read_text() == journal_before
    assert contents(target) == expected
    assert len(target.trainer.get_iterations(flowers.id)) == 1

    # The journal lost, and the target's copies damaged meanwhile (a tag taken off, a box
    # deleted): every image comes back a duplicate and gets back what it
    # lacks, nothing else changes.
    trainer = target.trainer
    tagged = next(i for i in trainer.get_tagged_images(flowers.id, take=256) if i.metadata)
    trainer.delete_image_tags(flowers.id, [tagged.id], [tagged.tags[0].tag_id])
    raccoons = next(p for p in trainer.get_projects() if p.name == "raccoons")
    boxed = trainer.get_tagged_images(raccoons.id, take=1)[0]
    trainer.delete_image_regions(raccoons.id, [boxed.regions[0].region_id])
    assert contents(target) != expected
    assert migrate(arguments(source, target, tmp_path / "fresh.json")) == 0
    out = capsys.readouterr().out
    assert "flowers: 0 copied, 17 already there" in out, out
    assert "raccoons: 0 copied, 6 already there" in out, out
    assert contents(target) == expected
    copied = json.loads((tmp_path / "fresh.json").read_text())
    assert sum(len(p["images"]) for pair in copied["pairs"].values() for p in pair.values()) == 23


def test_a_project_chosen_by_name_and_an_unknown_one(
    source: Instance, target: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit, match="no project nowhere"):
        migrate(arguments(source, target, tmp_path / "s.json", "--project", "nowhere"))
    assert migrate(arguments(source, target, tmp_path / "s.json", "--project", "raccoons")) == 0
    out = capsys.readouterr().out
    assert "raccoons:" in out and "flowers:" not in out


def test_a_project_can_be_created_under_a_given_id(target: Instance) -> None:
    headers = {"Training-Key": target.key}
    wanted = "6f1f2b64-57c3-4c44-9d07-3f7c1d1c8a10"
    with httpx.Client(base_url=target.url + TRAINING_PREFIX, headers=headers) as http:
        made = http.post("/projects", params={"name": "kept-id"}, headers={"X-Project-Id": wanted})
        assert made.status_code == 200 and made.json()["id"] == wanted
        again = http.post("/projects", params={"name": "other"}, headers={"X-Project-Id": wanted})
        assert_error(again, 400, "BadRequestProjectDuplicated")
        bad = http.post("/projects", params={"name": "other"}, headers={"X-Project-Id": "nope"})
        assert_error(bad, 400, "BadRequestInvalidIds")
        assert [p["name"] for p in http.get("/projects").json()].count("other") == 0
        assert http.delete(f"/projects/{wanted}").status_code == 204
