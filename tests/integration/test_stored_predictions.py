"""The improve-over-time loop through the official SDK: quick tests, stored predictions and
their query, deletion and retention, training images from predictions, and the smart labeler."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageIdCreateBatch,
    ImageIdCreateEntry,
    PredictionQueryTag,
    PredictionQueryToken,
    SuggestedTagAndRegionQueryToken,
)

from functions.domain.clock import utcnow
from functions.services.images import ImageService
from functions.services.stored_predictions import StoredPredictions
from functions.storage.clients import Storage
from tests.conftest import PublishedModel, held_out_flowers, jpeg_bytes


def _margin_uncertainty(probabilities: list[float]) -> float:
    top = sorted(probabilities, reverse=True)
    return 1.0 - (top[0] - top[1])


def _code(error: CustomVisionErrorException) -> str:
    return str(error.error.code)


def test_quick_test_stores_by_default_and_finds_latest_iteration(
    trainer: CustomVisionTrainingClient, published_model: PublishedModel
) -> None:
    project_id = published_model.project_id
    flower, data = held_out_flowers(per_flower=3)[2]
    stored = trainer.quick_test_image(project_id, data)
    assert stored.iteration == published_model.iteration_id
    assert stored.predictions[0].tag_name == flower
    unstored = trainer.quick_test_image(
        project_id, data, iteration_id=published_model.iteration_id, store=False
    )
    assert unstored.predictions[0].probability == pytest.approx(
        stored.predictions[0].probability, abs=1e-6
    )
    query = PredictionQueryToken(iteration_id=published_model.iteration_id, max_count=256)
    ids = [p.id for p in trainer.query_predictions(project_id, query).results]
    assert stored.id in ids and unstored.id not in ids

    empty = trainer.create_project(f"untrained-{uuid.uuid4().hex[:8]}")
    with pytest.raises(CustomVisionErrorException) as raised:
        trainer.quick_test_image(empty.id, data)
    assert _code(raised.value) == "NotFoundProjectDefaultIteration"
    with pytest.raises(CustomVisionErrorException) as raised:
        trainer.quick_test_image(project_id, data, iteration_id=str(uuid.uuid4()))
    assert _code(raised.value) == "NotFoundIteration"


def test_query_orders_filters_and_pages(
    trainer: CustomVisionTrainingClient,
    predictor: CustomVisionPredictionClient,
    published_model: PublishedModel,
) -> None:
    project_id, name = published_model.project_id, published_model.publish_name
    application = f"query-{uuid.uuid4().hex[:6]}"
    before = utcnow()
    made = [
        predictor.classify_image(project_id, name, data, application=application)
        for _, data in held_out_flowers(per_flower=2)
    ]
    after = utcnow()
    query = PredictionQueryToken(application=application, max_count=4)
    newest: list[str] = []
    pages = 0
    while True:
        result = trainer.query_predictions(project_id, query)
        newest += [p.id for p in result.results]
        pages += 1
        if not result.token.continuation:
            break
        query = result.token
    assert pages == 2 and newest == [p.id for p in reversed(made)]

    oldest = trainer.query_predictions(
        project_id, PredictionQueryToken(application=application, order_by="Oldest")
    )
    assert [p.id for p in oldest.results] == [p.id for p in made]
    first = oldest.results[0]
    assert first.domain and first.thumbnail_uri and first.resized_image_uri
    assert httpx.get(first.thumbnail_uri, timeout=30).status_code == 200

    suggested = trainer.query_predictions(
        project_id, PredictionQueryToken(application=application, order_by="Suggested")
    ).results
    assert {p.id for p in suggested} == {p.id for p in made}
    doubts = [_margin_uncertainty([x.probability for x in p.predictions]) for p in suggested]
    assert doubts == sorted(doubts, reverse=True)  # least sure first

    daisy = published_model.tags["daisy"]
    sure_daisies = trainer.query_predictions(
        project_id,
        PredictionQueryToken(
            application=application, tags=[PredictionQueryTag(id=daisy, min_threshold=0.5)]
        ),
    ).results
    expected = {
        p.id for p in made if next(x.probability for x in p.predictions if x.tag_id == daisy) >= 0.5
    }
    assert expected and {p.id for p in sure_daisies} == expected

    in_window = trainer.query_predictions(
        project_id,
        PredictionQueryToken(application=application, start_time=before, end_time=after),
    ).results
    assert len(in_window) == len(made)
    later = trainer.query_predictions(
        project_id,
        PredictionQueryToken(application=application, start_time=after + timedelta(seconds=1)),
    ).results
    assert later == []


def test_bad_queries_get_custom_vision_codes(
    trainer: CustomVisionTrainingClient, published_model: PublishedModel
) -> None:
    cases = [
        (PredictionQueryToken(max_count=1000), "BadRequestPredictionResultsExceededCount"),
        (PredictionQueryToken(order_by="Sideways"), "BadRequestPredictionInvalidQueryParameters"),
        (
            PredictionQueryToken(continuation="garbage"),
            "BadRequestPredictionInvalidQueryParameters",
        ),
        (
            PredictionQueryToken(tags=[PredictionQueryTag(id=str(uuid.uuid4()))] * 21),
            "BadRequestPredictionTagsExceededCount",
        ),
    ]
    for query, code in cases:
        with pytest.raises(CustomVisionErrorException) as raised:
            trainer.query_predictions(published_model.project_id, query)
        assert _code(raised.value) == code, query


def test_delete_predictions_and_retention(
    trainer: CustomVisionTrainingClient,
    predictor: CustomVisionPredictionClient,
    published_model: PublishedModel,
    storage: Storage,
) -> None:
    project_id, name = published_model.project_id, published_model.publish_name
    application = f"delete-{uuid.uuid4().hex[:6]}"
    photos = held_out_flowers(per_flower=1)
    made = [
        predictor.classify_image(project_id, name, d, application=application) for _, d in photos
    ]
    query = PredictionQueryToken(application=application)
    link = trainer.query_predictions(project_id, query).results[-1].original_image_uri

    trainer.delete_prediction(project_id, [made[0].id])
    left = [p.id for p in trainer.query_predictions(project_id, query).results]
    assert left == [made[2].id, made[1].id]
    assert httpx.get(link, timeout=30).status_code == 404  # its image went with it
    for ids, code in (([], "BadRequestPredictionIdsMissing"),):
        with pytest.raises(CustomVisionErrorException) as raised:
            trainer.delete_prediction(project_id, ids)
        assert _code(raised.value) == code

    retention = StoredPredictions(storage, ImageService(storage), timedelta(days=30))
    retention.purge_expired(utcnow() + timedelta(days=29))
    kept = [p.id for p in trainer.query_predictions(project_id, query).results]
    assert kept == left  # younger than 30 days
    assert retention.purge_expired(utcnow() + timedelta(days=30, seconds=5)) >= 2
    assert trainer.query_predictions(project_id, query).results == []


def test_predictions_become_training_images(
    trainer: CustomVisionTrainingClient,
    predictor: CustomVisionPredictionClient,
    published_model: PublishedModel,
) -> None:
    project_id, name = published_model.project_id, published_model.publish_name
    flower, data = held_out_flowers(per_flower=4)[3]
    prediction = predictor.classify_image(project_id, name, data)
    tag = published_model.tags[flower]
    tagged_before = trainer.get_tagged_image_count(project_id)
    batch = ImageIdCreateBatch(
        images=[
            ImageIdCreateEntry(id=prediction.id, tag_ids=[tag]),
            ImageIdCreateEntry(id=str(uuid.uuid4())),
        ],
        metadata={"source": "prediction"},
    )
    summary = trainer.create_images_from_predictions(project_id, batch)
    assert not summary.is_batch_successful  # the second id is no stored prediction
    created, missing = summary.images
    assert created.status == "OK" and missing.status == "ErrorSource"
    assert [t.tag_id for t in created.image.tags] == [tag]
    assert created.image.metadata == {"source": "prediction"}
    assert trainer.get_tagged_image_count(project_id) == tagged_before + 1
    again = trainer.create_images_from_predictions(
        project_id, ImageIdCreateBatch(images=[ImageIdCreateEntry(id=prediction.id)])
    )
    assert again.images[0].status == "OKDuplicate"
    trainer.delete_images(project_id, [created.image.id])  # leave the training set as it was


def test_smart_labeler_suggests_tags_for_untagged_images(
    trainer: CustomVisionTrainingClient, published_model: PublishedModel
) -> None:
    project_id, iteration_id = published_model.project_id, published_model.iteration_id
    photos = held_out_flowers(per_flower=2)  # two photos of each flower, never trained on
    summary = trainer.create_images_from_data(project_id, photos[0][1])
    uploaded = [summary.images[0].image.id]
    for _, data in photos[1:]:
        uploaded.append(trainer.create_images_from_data(project_id, data).images[0].image.id)
    try:
        suggestions = trainer.suggest_tags_and_regions(project_id, iteration_id, uploaded)
        assert [s.id for s in suggestions] == uploaded
        right = sum(
            s.predictions[0].tag_name == flower
            for s, (flower, _) in zip(suggestions, photos, strict=True)
        )
        assert right >= 5, right  # 5 of 6 (with training_seed=7)
        for s in suggestions:
            probabilities = [p.probability for p in s.predictions]
            assert s.prediction_uncertainty == pytest.approx(_margin_uncertainty(probabilities))

        tulip = published_model.tags["tulip"]
        token = SuggestedTagAndRegionQueryToken(tag_ids=[tulip], threshold=0.5, max_count=2)
        result = trainer.query_suggested_images(project_id, iteration_id, token)
        expected = {
            s.id
            for s in suggestions
            if next(p.probability for p in s.predictions if p.tag_id == tulip) >= 0.5
        }
        found = [r.id for r in result.results]
        while result.token.continuation:
            result = trainer.query_suggested_images(project_id, iteration_id, result.token)
            found += [r.id for r in result.results]
        assert set(found) == expected and len(found) == len(expected)
        counts = trainer.query_suggested_image_count(
            project_id, iteration_id, tag_ids=[tulip], threshold=0.5
        )
        assert counts == {tulip: len(expected)}

        with pytest.raises(CustomVisionErrorException) as raised:
            trainer.suggest_tags_and_regions(project_id, iteration_id, [str(uuid.uuid4())])
        assert _code(raised.value) == "NotFoundImage"
        with pytest.raises(CustomVisionErrorException) as raised:
            trainer.suggest_tags_and_regions(project_id, str(uuid.uuid4()), uploaded[:1])
        assert _code(raised.value) == "NotFoundIteration"
    finally:
        trainer.delete_images(project_id, uploaded)


def test_quick_test_url_and_bad_image(
    trainer: CustomVisionTrainingClient, published_model: PublishedModel
) -> None:
    project_id = published_model.project_id
    image = trainer.create_images_from_data(project_id, jpeg_bytes((250, 200, 10))).images[0]
    try:
        result = trainer.quick_test_image_url(project_id, image.image.original_image_uri)
        assert len(result.predictions) == 3
    finally:
        trainer.delete_images(project_id, [image.image.id])
    with pytest.raises(CustomVisionErrorException) as raised:
        trainer.quick_test_image(project_id, b"\x89PNG broken")
    assert _code(raised.value) == "BadRequestImageFormat"


def test_a_stored_prediction_answers_once_its_original_and_rows_are_stored(
    predictor: CustomVisionPredictionClient,
    trainer: CustomVisionTrainingClient,
    storage: Storage,
    published_model: PublishedModel,
) -> None:
    """The answer waits for the original bytes and the rows only; the resized copy and the
    thumbnail are made from the original when first read, then kept."""
    project_id = published_model.project_id
    application = f"lazy-{uuid.uuid4().hex[:6]}"
    _, data = held_out_flowers(per_flower=1)[0]
    made = predictor.classify_image(
        project_id, published_model.publish_name, data, application=application
    )
    prefix = f"{project_id}/{made.id}/"
    assert sorted(storage.blobs.list_names("predictions", prefix)) == [prefix + "original"]
    stored = trainer.query_predictions(
        project_id, PredictionQueryToken(application=application)
    ).results[0]
    original = httpx.get(stored.original_image_uri, timeout=30)
    assert original.status_code == 200 and original.content == data
    thumbnail = httpx.get(stored.thumbnail_uri, timeout=30)
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    names = sorted(storage.blobs.list_names("predictions", prefix))
    assert names == [prefix + v for v in ("original", "resized", "thumbnail")]
    again = httpx.get(stored.thumbnail_uri, timeout=30)
    assert again.content == thumbnail.content  # read back, not made again
    resized = httpx.get(stored.resized_image_uri, timeout=30)
    assert resized.status_code == 200 and len(resized.content) > len(thumbnail.content)
