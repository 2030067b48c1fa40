"""The Prediction API through the official SDK: a model trained on real photos classifies
photos it never saw, by bytes and by URL, stored or not; bad inputs get Custom Vision's codes."""

from __future__ import annotations

import io
import uuid

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import PredictionQueryToken, Tag
from PIL import Image

from tests.conftest import (
    PREDICTION_KEY,
    TRAINING_KEY,
    PublishedModel,
    assert_error,
    held_out_flowers,
    jpeg_bytes,
)

PREFIX = "/customvision/v3.1/prediction"


@pytest.fixture()
def prediction_http(endpoint: str) -> httpx.Client:
    return httpx.Client(base_url=endpoint, headers={"Prediction-Key": PREDICTION_KEY}, timeout=60)


def _classify_path(model: PublishedModel, kind: str = "image", name: str | None = None) -> str:
    name = name or model.publish_name
    return f"{PREFIX}/{model.project_id}/classify/iterations/{name}/{kind}"


def test_held_out_photos_are_classified_right(
    predictor: CustomVisionPredictionClient, published_model: PublishedModel
) -> None:
    photos = held_out_flowers(per_flower=5)
    right = 0
    for index, (flower, data) in enumerate(photos):
        classify = predictor.classify_image if index % 2 else predictor.classify_image_with_no_store
        result = classify(published_model.project_id, published_model.publish_name, data)
        assert result.project == published_model.project_id
        assert result.iteration == published_model.iteration_id
        assert result.created is not None and result.id
        probabilities = [p.probability for p in result.predictions]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)  # Multiclass: softmax
        assert {p.tag_name for p in result.predictions} == {"daisy", "sunflower", "tulip"}
        assert all(p.tag_type == "Regular" for p in result.predictions)
        top = result.predictions[0]
        assert top.tag_id == published_model.tags[top.tag_name]
        right += top.tag_name == flower
    assert right >= 12, f"{right} of {len(photos)} held-out photos classified right"


def test_same_bytes_as_octet_stream_and_multipart_agree(
    prediction_http: httpx.Client, published_model: PublishedModel
) -> None:
    _, data = held_out_flowers(per_flower=1)[0]
    raw = prediction_http.post(
        _classify_path(published_model, "image/nostore"),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    form = prediction_http.post(
        _classify_path(published_model, "image/nostore"), files={"imageData": ("a.jpg", data)}
    )
    assert raw.status_code == form.status_code == 200, (raw.text, form.text)
    by_tag = {p["tagId"]: p["probability"] for p in raw.json()["predictions"]}
    for p in form.json()["predictions"]:
        assert p["probability"] == pytest.approx(by_tag[p["tagId"]], abs=1e-6)


def test_classify_url_stored_and_not(
    predictor: CustomVisionPredictionClient,
    trainer: CustomVisionTrainingClient,
    published_model: PublishedModel,
) -> None:
    flower, data = held_out_flowers(per_flower=2)[-1]
    application = f"url-test-{uuid.uuid4().hex[:6]}"
    stored = predictor.classify_image(
        published_model.project_id, published_model.publish_name, data, application=application
    )
    query = PredictionQueryToken(application=application)
    found = trainer.query_predictions(published_model.project_id, query).results
    assert [p.id for p in found] == [stored.id]
    url = found[0].original_image_uri  # a link served by this API, so reachable in tests
    by_url = predictor.classify_image_url(
        published_model.project_id, published_model.publish_name, url, application=application
    )
    unstored = predictor.classify_image_url_with_no_store(
        published_model.project_id, published_model.publish_name, url
    )
    assert by_url.predictions[0].tag_name == unstored.predictions[0].tag_name == flower
    assert by_url.predictions[0].probability == pytest.approx(
        stored.predictions[0].probability, abs=1e-5
    )
    after = trainer.query_predictions(published_model.project_id, query).results
    assert [p.id for p in after] == [by_url.id, stored.id]  # newest first; nostore not kept


def test_bad_images_get_custom_vision_codes(
    prediction_http: httpx.Client, published_model: PublishedModel
) -> None:
    path = _classify_path(published_model)
    big = io.BytesIO()
    # Over the 4 MB image limit, within the body limit's framing allowance (a body past that
    # allowance is refused with 413 before it is read: test_body_limits.py).
    Image.effect_noise((1250, 1250), 100).convert("RGB").save(big, "BMP")
    assert 4 * 1024 * 1024 < big.tell() < 5 * 1024 * 1024
    assert_error(
        prediction_http.post(path, content=big.getvalue()), 400, "BadRequestImageSizeBytes"
    )
    corrupt = jpeg_bytes()[:200]
    assert_error(prediction_http.post(path, content=corrupt), 400, "BadRequestImageFormat")
    assert_error(prediction_http.post(path, content=b"not an image"), 400, "BadRequestImageFormat")
    assert_error(prediction_http.post(path, content=b""), 400, "BadRequestImageStream")


def test_unknown_names_projects_and_keys(
    prediction_http: httpx.Client, published_model: PublishedModel, endpoint: str
) -> None:
    data = jpeg_bytes()
    unknown_name = _classify_path(published_model, name="no-such-name")
    assert_error(prediction_http.post(unknown_name, content=data), 404, "NotFound")
    unknown_project = f"{PREFIX}/{uuid.uuid4()}/classify/iterations/x/image"
    assert_error(prediction_http.post(unknown_project, content=data), 404, "NotFoundProject")
    bad_id = f"{PREFIX}/not-a-guid/classify/iterations/x/image"
    assert_error(prediction_http.post(bad_id, content=data), 400, "BadRequestInvalidIds")
    path = _classify_path(published_model)
    with httpx.Client(base_url=endpoint, timeout=30) as anonymous:
        assert_error(anonymous.post(path, content=data), 401, "Unauthorized")
        wrong = anonymous.post(path, content=data, headers={"Prediction-Key": TRAINING_KEY})
        assert_error(wrong, 401, "Unauthorized")
    detect = path.replace("/classify/", "/detect/")
    assert_error(prediction_http.post(detect, content=data), 400, "BadRequestNotSupported")
    private = prediction_http.post(
        _classify_path(published_model, "url"), json={"url": "http://10.0.0.1/a.jpg"}
    )
    assert_error(private, 400, "BadRequestImageUrl")
    missing = prediction_http.post(_classify_path(published_model, "url"), json={})
    assert_error(missing, 400, "BadRequestImageUrl")


def test_paths_are_case_insensitive_and_v30_works(
    prediction_http: httpx.Client, published_model: PublishedModel
) -> None:
    _, data = held_out_flowers(per_flower=1)[0]
    path = _classify_path(published_model, "image/nostore")
    shouted = path.replace("/classify/iterations/", "/Classify/Iterations/").replace(
        "/customvision/v3.1/prediction", "/CustomVision/v3.0/Prediction"
    )
    response = prediction_http.post(shouted, content=data)
    assert response.status_code == 200, response.text


def test_unpublish_and_republish_take_effect_at_once(
    trainer: CustomVisionTrainingClient,
    prediction_http: httpx.Client,
    published_model: PublishedModel,
) -> None:
    project_id, iteration_id = published_model.project_id, published_model.iteration_id
    data = held_out_flowers(per_flower=1)[0][1]
    assert prediction_http.post(_classify_path(published_model), content=data).status_code == 200
    trainer.unpublish_iteration(project_id, iteration_id)
    try:
        gone = prediction_http.post(_classify_path(published_model), content=data)
        assert_error(gone, 404, "NotFound")
        trainer.publish_iteration(project_id, iteration_id, "renamed", "resource")
        renamed = prediction_http.post(
            _classify_path(published_model, name="renamed"), content=data
        )
        assert renamed.status_code == 200, renamed.text
        trainer.unpublish_iteration(project_id, iteration_id)
    finally:
        trainer.publish_iteration(
            project_id, iteration_id, published_model.publish_name, "local-prediction-resource"
        )
    again = prediction_http.post(_classify_path(published_model), content=data)
    assert again.status_code == 200, again.text


def test_a_renamed_tag_answers_under_its_new_name(
    trainer: CustomVisionTrainingClient,
    prediction_http: httpx.Client,
    published_model: PublishedModel,
) -> None:
    project_id, daisy = published_model.project_id, published_model.tags["daisy"]
    data = held_out_flowers(per_flower=1)[0][1]
    trainer.update_tag(project_id, daisy, Tag(name="marguerite", description="", type="Regular"))
    try:
        answer = prediction_http.post(_classify_path(published_model), content=data)
        assert answer.status_code == 200, answer.text
        names = {p["tagId"]: p["tagName"] for p in answer.json()["predictions"]}
        assert names[daisy] == "marguerite"
        assert sorted(names.values()) == sorted(["marguerite", "sunflower", "tulip"])
    finally:
        trainer.update_tag(project_id, daisy, Tag(name="daisy", description="", type="Regular"))
    answer = prediction_http.post(_classify_path(published_model), content=data)
    assert {p["tagName"] for p in answer.json()["predictions"]} >= {"daisy"}
