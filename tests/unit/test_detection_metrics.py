"""Detection metrics on cases small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pytest

from functions.domain.detection_metrics import (
    LabelledBox,
    PredictedBox,
    average_precision,
    box_iou,
    evaluate_detections,
    match,
)

CAT = LabelledBox("cat", 0.1, 0.1, 0.2, 0.2)
DOG = LabelledBox("dog", 0.6, 0.6, 0.3, 0.3)


def predicted(box: LabelledBox, probability: float, tag: str | None = None) -> PredictedBox:
    return PredictedBox(tag or box.tag, probability, box.left, box.top, box.width, box.height)


def test_iou_of_boxes_in_fractions() -> None:
    a = np.array([[0.0, 0.0, 0.5, 0.5]])
    b = np.array([[0.0, 0.0, 0.5, 0.5], [0.25, 0.0, 0.5, 0.5], [0.5, 0.5, 0.1, 0.1]])
    # half overlap: intersection 0.125, union 0.375
    assert box_iou(a, b) == pytest.approx(np.array([[1.0, 1 / 3, 0.0]]))
    assert box_iou(a, np.zeros((0, 4))).shape == (1, 0)
    assert box_iou(np.array([[0.1, 0.1, 0.0, 0.0]]), a)[0, 0] == 0.0  # no area, no overlap


def test_matching_is_greedy_by_probability_and_matches_each_box_once() -> None:
    truth = np.array([[0.0, 0.0, 0.4, 0.4]])
    boxes = np.array([[0.0, 0.0, 0.4, 0.4], [0.0, 0.0, 0.4, 0.38]])
    # the second box scores higher, so it takes the labelled box; the exact one is a duplicate
    assert match(boxes, np.array([0.6, 0.9]), truth).tolist() == [False, True]
    # below the overlap threshold, nothing matches
    assert match(np.array([[0.2, 0.2, 0.4, 0.4]]), np.array([0.9]), truth).tolist() == [False]
    # a prediction whose best box is taken falls back on another free box that fits
    two = np.array([[0.0, 0.0, 0.4, 0.4], [0.1, 0.0, 0.4, 0.4]])
    both = match(np.array([[0.0, 0.0, 0.4, 0.4], [0.05, 0.0, 0.4, 0.4]]), np.array([0.9, 0.8]), two)
    assert both.tolist() == [True, True]


def test_perfect_predictions() -> None:
    result = evaluate_detections(
        [[predicted(CAT, 0.9)], [predicted(DOG, 0.8)]], [[CAT], [DOG]], ["cat", "dog"]
    )
    assert result.mean_average_precision == 1.0
    assert result.per_tag["cat"].precision == 1.0 and result.per_tag["cat"].recall == 1.0
    assert result.precision == 1.0 and result.recall == 1.0


def test_one_missed_box_halves_recall_and_ap() -> None:
    other = LabelledBox("cat", 0.5, 0.5, 0.2, 0.2)
    result = evaluate_detections([[predicted(CAT, 0.9)]], [[CAT, other]], ["cat"])
    cat = result.per_tag["cat"]
    assert (cat.precision, cat.recall, cat.average_precision) == (1.0, 0.5, 0.5)
    assert cat.labelled == 2 and cat.predicted == 1


def test_a_false_positive_ranked_first_or_last() -> None:
    stray = LabelledBox("cat", 0.6, 0.6, 0.2, 0.2)
    # ranked below the hit: AP stays 1 (precision 1 at recall 1), precision at 0.5 is 1/2
    last = evaluate_detections([[predicted(CAT, 0.9), predicted(stray, 0.7)]], [[CAT]], ["cat"])
    assert last.per_tag["cat"].average_precision == 1.0
    assert last.per_tag["cat"].precision == 0.5
    # ranked above the hit: the only recall step comes at precision 1/2
    first = evaluate_detections([[predicted(CAT, 0.6), predicted(stray, 0.7)]], [[CAT]], ["cat"])
    assert first.per_tag["cat"].average_precision == 0.5
    # below the probability threshold it does not count for precision
    low = evaluate_detections([[predicted(CAT, 0.9), predicted(stray, 0.3)]], [[CAT]], ["cat"])
    assert low.per_tag["cat"].precision == 1.0 and low.per_tag["cat"].predicted == 1


def test_duplicates_are_false_positives() -> None:
    result = evaluate_detections([[predicted(CAT, 0.9), predicted(CAT, 0.8)]], [[CAT]], ["cat"])
    cat = result.per_tag["cat"]
    assert cat.average_precision == 1.0 and cat.precision == 0.5 and cat.recall == 1.0


def test_two_tags_are_matched_separately_and_averaged() -> None:
    # the dog box is predicted as a cat: no hit for either tag
    result = evaluate_detections(
        [[predicted(CAT, 0.9), predicted(DOG, 0.8, tag="cat")]], [[CAT, DOG]], ["cat", "dog"]
    )
    assert result.per_tag["cat"].average_precision == 1.0
    assert result.per_tag["cat"].precision == 0.5
    assert result.per_tag["dog"].average_precision == 0.0
    assert result.per_tag["dog"].precision == 0.0 and result.per_tag["dog"].recall == 0.0
    assert result.mean_average_precision == 0.5
    assert result.precision == 0.5 and result.recall == 0.5


def test_interpolated_ap_takes_the_best_precision_at_greater_recall() -> None:
    # ranks: hit, miss, hit over 2 boxes: P/R points (1, 0.5), (0.5, 0.5), (2/3, 1)
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2) == (
        pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    )
    assert average_precision(np.array([0.9]), np.array([True]), 0) == 0.0


def test_empty_cases() -> None:
    # no predictions at all: precision 0 where boxes were missed, AP 0
    missed = evaluate_detections([[]], [[CAT]], ["cat"])
    assert missed.per_tag["cat"].precision == 0.0 and missed.per_tag["cat"].recall == 0.0
    assert missed.mean_average_precision == 0.0
    # a tag with no labelled boxes: precision 1 and recall 1 when nothing was predicted for it,
    # precision 0 when something was; its AP is 0 and it stays out of the mean
    result = evaluate_detections([[predicted(CAT, 0.9)]], [[CAT]], ["cat", "dog"])
    assert result.per_tag["dog"].precision == 1.0 and result.per_tag["dog"].recall == 1.0
    assert result.mean_average_precision == 1.0
    wrong = evaluate_detections(
        [[predicted(CAT, 0.9), predicted(DOG, 0.9)]], [[CAT]], ["cat", "dog"]
    )
    assert wrong.per_tag["dog"].precision == 0.0 and wrong.mean_average_precision == 1.0
    # no images, or no boxes anywhere
    assert evaluate_detections([], [], ["cat"]).mean_average_precision == 0.0
    nothing = evaluate_detections([[]], [[]], ["cat"])
    assert nothing.precision == 1.0 and nothing.recall == 1.0


def test_mismatched_image_lists_are_refused() -> None:
    with pytest.raises(ValueError):
        evaluate_detections([[]], [], ["cat"])
