"""Predictions: scored tags, stored predictions, how uncertain a prediction is, and the query
over stored predictions (filters, orders, continuation tokens)."""

from __future__ import annotations

import base64
import binascii
import enum
import json
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from functions.domain.errors import BadRequest
from functions.domain.models import Box


@dataclass(frozen=True)
class Label:
    """One model output: the tag it scores, as it was when the model was trained."""

    id: str
    name: str
    type: str  # Regular | Negative


def parse_labels(labels_json: bytes) -> list[Label]:
    """An iteration's labels.json: its outputs' tags, in output order."""
    return [Label(t["id"], t["name"], t["type"]) for t in json.loads(labels_json)]


@dataclass(frozen=True)
class TagScore:
    tag_id: str
    tag_name: str
    tag_type: str
    probability: float
    box: Box | None = None  # object detection: where (fractions of the image)


@dataclass(frozen=True)
class Prediction:
    """One classified image (ImagePrediction); stored unless asked not to be."""

    id: str
    project_id: str
    iteration_id: str
    created: datetime
    scores: list[TagScore]  # highest probability first
    uncertainty: float
    application: str | None = None
    domain_id: str = ""
    width: int = 0
    height: int = 0


def scores_json(scores: list[TagScore]) -> str:
    """Scores as stored in a table row: [tagId, name, type, probability(, [l, t, w, h])]."""
    rows: list[list[object]] = []
    for s in scores:
        row: list[object] = [s.tag_id, s.tag_name, s.tag_type, s.probability]
        if s.box is not None:  # a detection: its box too
            row.append([s.box.left, s.box.top, s.box.width, s.box.height])
        rows.append(row)
    return json.dumps(rows)


def scores_from_json(text: str) -> list[TagScore]:
    return [
        TagScore(str(r[0]), str(r[1]), str(r[2]), float(r[3]), _box(r[4]) if len(r) > 4 else None)
        for r in json.loads(text)
    ]


def _box(values: list[float]) -> Box:
    return Box(*(float(v) for v in values))


def scores_of(labels: list[Label], probabilities: np.ndarray) -> list[TagScore]:
    """Tag scores from one row of model output, highest probability first (ties by name)."""
    pairs = [
        TagScore(label.id, label.name, label.type, float(p))
        for label, p in zip(labels, probabilities.tolist(), strict=True)
    ]
    return sorted(pairs, key=lambda s: (-s.probability, s.tag_name))


def uncertainty(probabilities: np.ndarray, multilabel: bool) -> float:
    """How unsure the model is of one image, from 0 (sure) to 1 (a coin toss).

    Multiclass: 1 - (p1 - p2), the margin between the two most probable tags. Multilabel:
    the largest 1 - |2p - 1| over tags, how close the most doubtful tag is to 50%.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.size == 0:
        return 0.0
    if multilabel:
        return float(np.max(1.0 - np.abs(2.0 * p - 1.0)))
    if p.size == 1:
        return float(1.0 - abs(2.0 * p[0] - 1.0))
    top = np.sort(p)[::-1]
    return float(1.0 - (top[0] - top[1]))


class QueryOrder(enum.StrEnum):
    NEWEST = "Newest"
    OLDEST = "Oldest"
    SUGGESTED = "Suggested"  # most uncertain first


@dataclass(frozen=True)
class TagRange:
    tag_id: str
    low: float = 0.0
    high: float = 1.0


@dataclass(frozen=True)
class PredictionQuery:
    order: QueryOrder = QueryOrder.NEWEST
    tags: list[TagRange] = field(default_factory=list)
    iteration_id: str | None = None
    application: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    max_count: int = 50
    continuation: str | None = None
    session: str | None = None

    def matches(self, p: Prediction) -> bool:
        """Every filter holds; with tag ranges, at least one tag's probability is in its range
        (a detection's: any of its boxes of that tag)."""
        if self.iteration_id and p.iteration_id != self.iteration_id:
            return False
        if self.application and p.application != self.application:
            return False
        if self.start and p.created < self.start:
            return False
        if self.end and p.created > self.end:
            return False
        if self.tags:
            return any(
                s.tag_id == r.tag_id and r.low <= s.probability <= r.high
                for r in self.tags
                for s in p.scores
            )
        return True


def encode_continuation(kind: str, position: str) -> str:
    """An opaque token for resuming a listing of `kind` (an order) after `position`."""
    raw = json.dumps({"o": str(kind), "k": position}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continuation(token: str, kind: str) -> str:
    """The position a continuation token resumes from; refused if malformed or made for
    another kind of listing."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["o"] == str(kind) and isinstance(data["k"], str):
            return str(data["k"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise BadRequest(
        "BadRequestPredictionInvalidQueryParameters",
        "The continuation token is not one this query returned.",
    )


def offset_of(token: str | None, kind: str) -> int:
    """The offset a continuation token of an offset-paged listing resumes from (0: none)."""
    if not token:
        return 0
    position = decode_continuation(token, kind)
    if not position.isdigit():
        raise BadRequest(
            "BadRequestPredictionInvalidQueryParameters",
            "The continuation token is not one this query returned.",
        )
    return int(position)
