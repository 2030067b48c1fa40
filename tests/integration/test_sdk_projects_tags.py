"""The official Custom Vision SDK drives projects, tags and domains against our API."""

from __future__ import annotations

import uuid

import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorException

GENERAL = "ee85a74c-405e-4adc-bb47-ffa8ca0c9f31"
GENERAL_COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_domains_list_and_get(trainer: CustomVisionTrainingClient) -> None:
    domains = trainer.get_domains()
    by_id = {d.id: d for d in domains}
    assert by_id[GENERAL].name == "General"
    assert by_id[GENERAL_COMPACT].exportable is True
    assert by_id[GENERAL].exportable is True  # every domain exports here
    kinds = [d.type for d in domains]
    assert kinds.count("Classification") == 11 and kinds.count("ObjectDetection") == 6
    assert by_id[GENERAL].type == "Classification"
    food = trainer.get_domain("c151d5b5-dd07-472a-acc8-15d29dea8518")
    assert "same general-purpose" in food.model_information.description


def test_project_lifecycle(trainer: CustomVisionTrainingClient) -> None:
    name = _name("flowers")
    project = trainer.create_project(
        name,
        description="five flowers",
        domain_id=GENERAL_COMPACT,
        classification_type="Multilabel",
        target_export_platforms=["ONNX", "CoreML"],
    )
    assert project.settings.domain_id == GENERAL_COMPACT
    assert project.settings.classification_type == "Multilabel"
    assert project.settings.target_export_platforms == ["ONNX", "CoreML"]
    assert project.id in {p.id for p in trainer.get_projects()}

    project.name = name + "-renamed"
    project.description = "changed"
    updated = trainer.update_project(project.id, project)
    assert updated.name == name + "-renamed"
    assert trainer.get_project(project.id).description == "changed"

    trainer.delete_project(project.id)
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.get_project(project.id)
    assert error.value.error.code == "NotFoundProject"


def test_project_name_must_be_unique(trainer: CustomVisionTrainingClient) -> None:
    name = _name("unique")
    trainer.create_project(name)
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.create_project(name.upper())
    assert error.value.error.code == "BadRequestProjectNameNotUnique"


def test_tags_lifecycle(trainer: CustomVisionTrainingClient) -> None:
    project = trainer.create_project(_name("tags"))
    daisy = trainer.create_tag(project.id, "daisy", description="white petals")
    assert daisy.image_count == 0
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.create_tag(project.id, "DAISY")
    assert error.value.error.code == "BadRequestTagNameNotUnique"
    negative = trainer.create_tag(project.id, "none", type="Negative")
    assert negative.type == "Negative"
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.create_tag(project.id, "none2", type="Negative")
    assert error.value.error.code == "BadRequestMultipleNegativeTag"

    daisy.name = "Daisy"
    assert trainer.update_tag(project.id, daisy.id, daisy).name == "Daisy"
    assert {t.name for t in trainer.get_tags(project.id)} == {"Daisy", "none"}
    trainer.delete_tag(project.id, daisy.id)
    with pytest.raises(CustomVisionErrorException) as error:
        trainer.get_tag(project.id, daisy.id)
    assert error.value.error.code == "NotFoundTag"
