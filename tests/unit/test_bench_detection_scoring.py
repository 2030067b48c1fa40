"""bench/detection.py scores detect answers with its own AP (VOC all-point, greedy matching at
IoU 0.5): known cases, and agreement with the service's functions/domain/detection_metrics on
seeded random boxes."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from bench.detection import average_precision, score
from functions.domain.detection_metrics import LabelledBox, PredictedBox, evaluate_detections


def _box(left: float, top: float, width: float, height: float) -> dict[str, float]:
    return {"left": left, "top": top, "width": width, "height": height}


def test_perfect_answers_score_one_and_a_miss_ranked_first_halves_precision() -> None:
    truth = {"a.jpg": np.array([[0.1, 0.1, 0.3, 0.3]]), "b.jpg": np.array([[0.5, 0.5, 0.2, 0.2]])}
    perfect = {"a.jpg": [(0.9, [0.1, 0.1, 0.3, 0.3])], "b.jpg": [(0.8, [0.5, 0.5, 0.2, 0.2])]}
    assert average_precision(perfect, truth) == pytest.approx(1.0)
    # a wrong box above the one right box: precision 0 then 1/2 at recall 1/2; AP = 0.25
    wrong_first = {"a.jpg": [(0.9, [0.6, 0.6, 0.1, 0.1]), (0.5, [0.1, 0.1, 0.3, 0.3])]}
    assert average_precision(wrong_first, truth) == pytest.approx(0.25)
    # the same object twice: the second is a false positive after the first, AP stays 0.5
    twice = {"a.jpg": [(0.9, [0.1, 0.1, 0.3, 0.3]), (0.8, [0.11, 0.1, 0.3, 0.3])]}
    assert average_precision(twice, truth) == pytest.approx(0.5)
    assert average_precision({}, truth) == 0.0


def test_agrees_with_the_services_metrics_on_random_boxes() -> None:
    rng = random.Random(7)
    labels: dict[str, list[dict[str, float | str]]] = {}
    answers: dict[str, list[dict[str, Any]]] = {}
    for i in range(30):
        name = f"{i}.jpg"
        objects = [(rng.choice("xy"), rng.uniform(0, 0.6), rng.uniform(0, 0.6)) for _ in range(3)]
        labels[name] = [{"tag": t, **_box(x, y, 0.3, 0.3)} for t, x, y in objects]
        answers[name] = [
            {
                "tagName": t,
                "probability": rng.random(),
                "boundingBox": _box(
                    x + rng.uniform(-0.08, 0.08), y + rng.uniform(-0.08, 0.08), 0.3, 0.3
                ),
            }
            for t, x, y in objects
            if rng.random() < 0.8
        ] + [
            {
                "tagName": rng.choice("xy"),
                "probability": rng.random() / 2,
                "boundingBox": _box(0.7, 0.7, 0.2, 0.2),
            }
        ]
    held = sorted(labels)
    ours = score(answers, labels, held, ["x", "y"])
    service = evaluate_detections(
        [
            [
                PredictedBox(str(a["tagName"]), float(a["probability"]), **a["boundingBox"])
                for a in answers[f]
            ]
            for f in held
        ],
        [
            [
                LabelledBox(
                    str(r["tag"]), *(float(r[k]) for k in ("left", "top", "width", "height"))
                )
                for r in labels[f]
            ]
            for f in held
        ],
        ["x", "y"],
    )
    for tag in ("x", "y"):
        assert 0.3 < ours[tag] < 1.0
        assert ours[tag] == pytest.approx(service.per_tag[tag].average_precision, abs=0.02)
