"""Prediction values: scores, uncertainty, the stored-prediction filters and their tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from functions.domain.errors import BadRequest
from functions.domain.predictions import (
    Label,
    Prediction,
    PredictionQuery,
    QueryOrder,
    TagRange,
    decode_continuation,
    encode_continuation,
    offset_of,
    scores_of,
    uncertainty,
)

LABELS = [
    Label("a", "cat", "Regular"),
    Label("b", "dog", "Regular"),
    Label("n", "none", "Negative"),
]
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _prediction(probabilities: list[float], **kwargs: object) -> Prediction:
    row = np.asarray(probabilities, dtype=np.float32)
    fields: dict[str, object] = {
        "id": "p",
        "project_id": "proj",
        "iteration_id": "it",
        "created": NOW,
        "scores": scores_of(LABELS, row),
        "uncertainty": uncertainty(row, False),
    }
    fields.update(kwargs)
    return Prediction(**fields)  # type: ignore[arg-type]


def test_scores_are_sorted_and_keep_tag_types() -> None:
    scores = scores_of(LABELS, np.array([0.2, 0.7, 0.1]))
    assert [s.tag_name for s in scores] == ["dog", "cat", "none"]
    assert scores[2].tag_type == "Negative"
    assert scores[0].probability == pytest.approx(0.7)


def test_uncertainty_is_the_margin_or_the_closest_call() -> None:
    assert uncertainty(np.array([0.98, 0.01, 0.01]), False) == pytest.approx(0.03)
    assert uncertainty(np.array([0.5, 0.5, 0.0]), False) == pytest.approx(1.0)
    assert uncertainty(np.array([0.99, 0.5, 0.02]), True) == pytest.approx(1.0)
    assert uncertainty(np.array([0.9, 0.1]), True) == pytest.approx(0.2)
    sure, unsure = (
        uncertainty(np.array([0.9, 0.1]), False),
        uncertainty(np.array([0.6, 0.4]), False),
    )
    assert sure < unsure


def test_query_filters() -> None:
    p = _prediction([0.2, 0.7, 0.1], application="app")
    assert PredictionQuery().matches(p)
    assert not PredictionQuery(application="other").matches(p)
    assert not PredictionQuery(iteration_id="other").matches(p)
    assert PredictionQuery(tags=[TagRange("b", 0.5, 1.0)]).matches(p)
    assert not PredictionQuery(tags=[TagRange("a", 0.5, 1.0)]).matches(p)
    assert PredictionQuery(tags=[TagRange("a", 0.5, 1.0), TagRange("n", 0.0, 0.2)]).matches(p)
    assert not PredictionQuery(tags=[TagRange("zzz", 0.0, 1.0)]).matches(p)
    assert PredictionQuery(start=NOW, end=NOW).matches(p)
    assert not PredictionQuery(start=NOW + timedelta(seconds=1)).matches(p)
    assert not PredictionQuery(end=NOW - timedelta(seconds=1)).matches(p)


def test_continuation_tokens_round_trip_and_are_checked() -> None:
    token = encode_continuation(QueryOrder.NEWEST, "n|abc")
    assert decode_continuation(token, QueryOrder.NEWEST) == "n|abc"
    with pytest.raises(BadRequest) as error:
        decode_continuation(token, QueryOrder.OLDEST)
    assert error.value.code == "BadRequestPredictionInvalidQueryParameters"
    for garbage in ("", "not base64!", encode_continuation("x", "1")[:-4]):
        with pytest.raises(BadRequest):
            decode_continuation(garbage, QueryOrder.NEWEST)
    assert offset_of(None, "Suggested") == 0
    assert offset_of(encode_continuation("Suggested", "40"), "Suggested") == 40
    with pytest.raises(BadRequest):
        offset_of(encode_continuation("Suggested", "-1"), "Suggested")
