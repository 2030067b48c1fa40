"""A detector's held-out predictions survive evaluation.npz and give the metrics they hold."""

from __future__ import annotations

import io

import numpy as np
import pytest

from functions.domain.detection_evaluation import DetectionEvaluation, ImageBoxes
from functions.domain.detection_metrics import LabelledBox, PredictedBox, evaluate_detections

TAGS = ["cat", "dog"]


def _evaluation() -> DetectionEvaluation:
    return DetectionEvaluation(
        TAGS,
        [
            ImageBoxes(
                "a",
                [
                    PredictedBox("cat", 0.9, 0.1, 0.1, 0.3, 0.3),
                    PredictedBox("dog", 0.4, 0.5, 0.5, 0.2, 0.2),
                ],
                [LabelledBox("cat", 0.12, 0.1, 0.3, 0.3)],
            ),
            ImageBoxes("b", [], [LabelledBox("dog", 0.0, 0.0, 1.0, 1.0)]),
            ImageBoxes("c", [PredictedBox("dog", 0.7, 0.0, 0.0, 0.9, 0.95)], []),
        ],
    )


def test_round_trip_through_npz_keeps_every_box() -> None:
    stored = io.BytesIO()
    np.savez(stored, **_evaluation().arrays())
    loaded = DetectionEvaluation.from_arrays(TAGS, np.load(io.BytesIO(stored.getvalue())))
    original = _evaluation()
    assert [i.image_id for i in loaded.images] == ["a", "b", "c"]
    for got, want in zip(loaded.images, original.images, strict=True):
        assert [p.tag for p in got.predicted] == [p.tag for p in want.predicted]
        assert [b.tag for b in got.labelled] == [b.tag for b in want.labelled]
        for p, q in zip(got.predicted, want.predicted, strict=True):
            assert p.probability == pytest.approx(q.probability)
            assert (p.left, p.top, p.width, p.height) == pytest.approx(
                (q.left, q.top, q.width, q.height)
            )
    assert loaded.metrics(0.5, 0.5) == evaluate_detections(
        [i.predicted for i in loaded.images], [i.labelled for i in loaded.images], TAGS, 0.5, 0.5
    )


def test_thresholds_change_the_answer() -> None:
    evaluation = _evaluation()
    strict, loose = evaluation.metrics(0.5, 0.5), evaluation.metrics(0.3, 0.5)
    assert strict.per_tag["cat"].recall == 1.0 and strict.per_tag["dog"].recall == 0.0
    assert loose.per_tag["dog"].predicted == 2 and strict.per_tag["dog"].predicted == 1
    assert evaluation.metrics(0.5, 0.95).per_tag["cat"].recall == 0.0  # IoU 0.88 < 0.95


def test_an_incomplete_file_is_refused() -> None:
    arrays = _evaluation().arrays()
    del arrays["labelled_boxes"]
    with pytest.raises(ValueError, match="labelled_boxes"):
        DetectionEvaluation.from_arrays(TAGS, arrays)
