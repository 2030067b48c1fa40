"""Training API over predictions: quick tests, the stored-prediction query and deletion, and
training images made from stored predictions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from functions.api.deps import ProjectDep, ServicesDep
from functions.api.multipart import image_from_body
from functions.api.presenters import prediction_links, summary_response
from functions.api.schemas.predictions import (
    ImageIdCreateBatchIn,
    ImagePredictionOut,
    ImageUrlIn,
    PredictionQueryResultOut,
    PredictionQueryTokenIO,
    StoredImagePredictionOut,
)
from functions.api.schemas.regions import new_regions
from functions.domain.errors import BadRequest
from functions.domain.ids import parse_id, parse_id_list
from functions.domain.limits import DEFAULT_PREDICTION_QUERY_COUNT, MAX_PREDICTION_IDS_PER_CALL
from functions.domain.predictions import PredictionQuery, QueryOrder, TagRange
from functions.domain.validation import choice
from functions.services.prediction import fetch_image
from functions.services.stored_predictions import FromPrediction, validate_ids

router = APIRouter(tags=["predictions"])

IterationIdQuery = Annotated[str | None, Query(alias="iterationId")]


def _optional_id(value: str | None, what: str) -> str | None:
    return parse_id(value, what) if value else None


@router.post("/projects/{projectId}/quicktest/image", response_model=ImagePredictionOut)
async def quick_test_image(
    services: ServicesDep,
    request: Request,
    project: ProjectDep,
    iteration_id: IterationIdQuery = None,
    store: bool = True,
) -> JSONResponse:
    iteration = _optional_id(iteration_id, "iterationId")
    data = image_from_body(request.headers.get("content-type", ""), await request.body())
    prediction = await run_in_threadpool(
        services.prediction.quick_test, project.id, iteration, data, store
    )
    return JSONResponse(ImagePredictionOut.of(prediction).model_dump(mode="json"))


@router.post("/projects/{projectId}/quicktest/url", response_model=ImagePredictionOut)
def quick_test_image_url(
    services: ServicesDep,
    project: ProjectDep,
    body: ImageUrlIn,
    iteration_id: IterationIdQuery = None,
    store: bool = True,
) -> ImagePredictionOut:
    iteration = _optional_id(iteration_id, "iterationId")
    data = fetch_image(body.url, services.url_policy)
    return ImagePredictionOut.of(services.prediction.quick_test(project.id, iteration, data, store))


def _query(token: PredictionQueryTokenIO) -> PredictionQuery:
    tags = [
        TagRange(
            parse_id(t.id, "tagId"),
            0.0 if t.minThreshold is None else t.minThreshold,
            1.0 if t.maxThreshold is None else t.maxThreshold,
        )
        for t in token.tags or []
    ]
    order = choice(
        QueryOrder,
        token.orderBy,
        QueryOrder.NEWEST,
        "BadRequestPredictionInvalidQueryParameters",
        "orderBy",
    )
    return PredictionQuery(
        order=order,
        tags=tags,
        iteration_id=_optional_id(token.iterationId, "iterationId"),
        application=token.application or None,
        start=token.startTime,
        end=token.endTime,
        max_count=token.maxCount or DEFAULT_PREDICTION_QUERY_COUNT,
        continuation=token.continuation or None,
        session=token.session,
    )


@router.post("/projects/{projectId}/predictions/query", response_model=PredictionQueryResultOut)
def query_predictions(
    services: ServicesDep, request: Request, project: ProjectDep, token: PredictionQueryTokenIO
) -> PredictionQueryResultOut:
    page = services.stored_predictions.query(project.id, _query(token))
    link = prediction_links(services, request)
    return PredictionQueryResultOut(
        token=token.model_copy(update={"continuation": page.continuation}),
        results=[StoredImagePredictionOut.stored(p, link) for p in page.results],
    )


@router.delete("/projects/{projectId}/predictions", status_code=204)
def delete_prediction(
    services: ServicesDep, project: ProjectDep, ids: Annotated[str | None, Query()] = None
) -> Response:
    prediction_ids = parse_id_list(ids, "predictionId", 10 * MAX_PREDICTION_IDS_PER_CALL)
    validate_ids(prediction_ids)
    services.stored_predictions.delete(project.id, prediction_ids)
    return Response(status_code=204)


@router.post("/projects/{projectId}/images/predictions")
def create_images_from_predictions(
    services: ServicesDep, request: Request, project: ProjectDep, batch: ImageIdCreateBatchIn
) -> JSONResponse:
    common = [parse_id(t, "tagId") for t in batch.tagIds or []]
    entries = []
    for item in batch.images or []:
        if not item.id:
            raise BadRequest("BadRequestImageBatch", "Every entry needs the id of a prediction.")
        tags = common + [parse_id(t, "tagId") for t in item.tagIds or []]
        prediction_id = parse_id(item.id, "predictionId")
        entries.append(FromPrediction(prediction_id, tags, new_regions(item.regions)))
    if not entries:
        raise BadRequest("BadRequestImageBatch", "The batch holds no images.")
    outcomes = services.stored_predictions.to_training_images(project.id, entries, batch.metadata)
    return summary_response(services, request, project.id, outcomes)
