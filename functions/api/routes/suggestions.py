"""The smart labeler: suggested tags for untagged images, and untagged images by suggestion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from functions.api.deps import ProjectDep, ServicesDep
from functions.api.presenters import image_links
from functions.api.schemas.predictions import (
    PredictionOut,
    StoredSuggestedTagAndRegionOut,
    SuggestedTagAndRegionOut,
    SuggestedTagAndRegionQueryOut,
    SuggestedTagAndRegionQueryTokenIO,
    TagFilterIn,
)
from functions.domain.ids import parse_id, parse_id_list
from functions.domain.limits import DEFAULT_PREDICTION_QUERY_COUNT, MAX_PREDICTION_IDS_PER_CALL
from functions.services.suggestions import Suggestion, SuggestionQuery

router = APIRouter(tags=["suggestions"])

IterationIdQuery = Annotated[str, Query(alias="iterationId")]


def _out(s: Suggestion, project_id: str) -> SuggestedTagAndRegionOut:
    return SuggestedTagAndRegionOut(
        id=s.image.id,
        project=project_id,
        iteration=s.iteration_id,
        created=s.created,
        predictions=[PredictionOut.of(p) for p in s.scores],
        predictionUncertainty=s.uncertainty,
    )


@router.post(
    "/projects/{projectId}/tagsandregions/suggestions",
    response_model=list[SuggestedTagAndRegionOut],
)
def suggest_tags_and_regions(
    services: ServicesDep,
    project: ProjectDep,
    iteration_id: IterationIdQuery,
    image_ids: Annotated[str | None, Query(alias="imageIds")] = None,
) -> list[SuggestedTagAndRegionOut]:
    ids = parse_id_list(image_ids, "imageId", MAX_PREDICTION_IDS_PER_CALL)
    iteration = parse_id(iteration_id, "iterationId")
    suggestions = services.suggestions.suggest(project.id, iteration, ids)
    return [_out(s, project.id) for s in suggestions]


@router.post("/projects/{projectId}/images/suggested", response_model=SuggestedTagAndRegionQueryOut)
def query_suggested_images(
    services: ServicesDep,
    request: Request,
    project: ProjectDep,
    iteration_id: IterationIdQuery,
    token: SuggestedTagAndRegionQueryTokenIO,
) -> SuggestedTagAndRegionQueryOut:
    query = SuggestionQuery(
        tag_ids=[parse_id(t, "tagId") for t in token.tagIds or []],
        threshold=token.threshold or 0.0,
        max_count=token.maxCount or DEFAULT_PREDICTION_QUERY_COUNT,
        sort_by=token.sortBy or "UncertaintyDescending",
        continuation=token.continuation or None,
        session=token.session,
    )
    iteration = parse_id(iteration_id, "iterationId")
    found, continuation = services.suggestions.query(project.id, iteration, query)
    link = image_links(services, request)
    results = []
    for s in found:
        image = s.image
        results.append(
            StoredSuggestedTagAndRegionOut(
                **_out(s, project.id).model_dump(),
                width=image.width,
                height=image.height,
                resizedImageUri=link(project.id, image.id, "resized"),
                thumbnailUri=link(project.id, image.id, "thumbnail"),
                originalImageUri=link(project.id, image.id, "original"),
                domain=project.domain_id,
            )
        )
    return SuggestedTagAndRegionQueryOut(
        token=token.model_copy(update={"continuation": continuation}), results=results
    )


@router.post("/projects/{projectId}/images/suggested/count", response_model=dict[str, int])
def query_suggested_image_count(
    services: ServicesDep, project: ProjectDep, iteration_id: IterationIdQuery, body: TagFilterIn
) -> dict[str, int]:
    tag_ids = [parse_id(t, "tagId") for t in body.tagIds or []]
    iteration = parse_id(iteration_id, "iterationId")
    return services.suggestions.count(project.id, iteration, tag_ids, body.threshold or 0.0)
