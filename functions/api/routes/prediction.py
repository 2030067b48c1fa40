"""The Prediction API (/customvision/v3.x/prediction): classify (a classification project) or
detect (an object-detection project) an image or an image URL with a published iteration,
storing the prediction or not."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from functions.api.deps import Services, ServicesDep
from functions.api.multipart import image_from_stream
from functions.api.schemas.predictions import ImagePredictionOut, ImageUrlIn
from functions.domain.ids import parse_id
from functions.domain.predictions import Prediction
from functions.services.prediction import fetch_image

router = APIRouter(tags=["prediction"])

ProjectId = Annotated[str, Path(alias="projectId")]
PublishedName = Annotated[str, Path(alias="publishedName")]
Application = Annotated[str | None, Query()]
BASE = "/{projectId}/classify/iterations/{publishedName}"
DETECT = "/{projectId}/detect/iterations/{publishedName}"


def _response(prediction: Prediction) -> JSONResponse:
    return JSONResponse(ImagePredictionOut.of(prediction).model_dump(mode="json"))


async def _classify_body(
    services: Services,
    request: Request,
    project_id: str,
    published_name: str,
    application: str | None,
    store: bool,
    detect: bool = False,
) -> JSONResponse:
    project_id = parse_id(project_id, "projectId")
    data = await image_from_stream(request.headers.get("content-type", ""), request.stream())
    prediction = await run_in_threadpool(
        services.prediction.classify_published,
        project_id,
        published_name,
        data,
        store,
        application,
        detect,
    )
    return _response(prediction)


def _classify_url(
    services: Services,
    project_id: str,
    published_name: str,
    body: ImageUrlIn,
    application: str | None,
    store: bool,
    detect: bool = False,
) -> JSONResponse:
    project_id = parse_id(project_id, "projectId")
    data = fetch_image(body.url, services.url_policy)
    prediction = services.prediction.classify_published(
        project_id, published_name, data, store, application, detect
    )
    return _response(prediction)


@router.post(BASE + "/image")
async def classify_image(
    services: ServicesDep,
    request: Request,
    project_id: ProjectId,
    published_name: PublishedName,
    application: Application = None,
) -> JSONResponse:
    return await _classify_body(services, request, project_id, published_name, application, True)


@router.post(BASE + "/image/nostore")
async def classify_image_with_no_store(
    services: ServicesDep,
    request: Request,
    project_id: ProjectId,
    published_name: PublishedName,
    application: Application = None,
) -> JSONResponse:
    return await _classify_body(services, request, project_id, published_name, application, False)


@router.post(BASE + "/url")
def classify_image_url(
    services: ServicesDep,
    project_id: ProjectId,
    published_name: PublishedName,
    body: ImageUrlIn,
    application: Application = None,
) -> JSONResponse:
    return _classify_url(services, project_id, published_name, body, application, True)


@router.post(BASE + "/url/nostore")
def classify_image_url_with_no_store(
    services: ServicesDep,
    project_id: ProjectId,
    published_name: PublishedName,
    body: ImageUrlIn,
    application: Application = None,
) -> JSONResponse:
    return _classify_url(services, project_id, published_name, body, application, False)


@router.post(DETECT + "/image")
async def detect_image(
    services: ServicesDep,
    request: Request,
    project_id: ProjectId,
    published_name: PublishedName,
    application: Application = None,
) -> JSONResponse:
    return await _classify_body(
        services, request, project_id, published_name, application, True, detect=True
    )


@router.post(DETECT + "/image/nostore")
async def detect_image_with_no_store(
    services: ServicesDep,
    request: Request,
    project_id: ProjectId,
    published_name: PublishedName,
    application: Application = None,
) -> JSONResponse:
    return await _classify_body(
        services, request, project_id, published_name, application, False, detect=True
    )


@router.post(DETECT + "/url")
def detect_image_url(
    services: ServicesDep,
    project_id: ProjectId,
    published_name: PublishedName,
    body: ImageUrlIn,
    application: Application = None,
) -> JSONResponse:
    return _classify_url(services, project_id, published_name, body, application, True, True)


@router.post(DETECT + "/url/nostore")
def detect_image_url_with_no_store(
    services: ServicesDep,
    project_id: ProjectId,
    published_name: PublishedName,
    body: ImageUrlIn,
    application: Application = None,
) -> JSONResponse:
    return _classify_url(services, project_id, published_name, body, application, False, True)
