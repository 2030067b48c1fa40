"""Evaluation metrics: precision/recall at a threshold, AP, spread across folds, validation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from functions.domain.metrics import (
    Metrics,
    TagMetrics,
    average_precision,
    evaluate,
    precision_recall_curve,
    precision_recall_curves,
)

# Six images, two tags. Ranked by score, tag 0 reads +, -, +, +, -, - and tag 1 +, +, +, -, -, -.
PROBS = np.array(
    [
        [0.9, 0.2],
        [0.8, 0.7],
        [0.6, 0.5],
        [0.4, 0.55],
        [0.3, 0.95],
        [0.1, 0.05],
    ]
)
LABELS = np.array([[1, 0], [0, 1], [1, 0], [1, 1], [0, 1], [0, 0]])


def pr(metrics: Metrics | TagMetrics) -> tuple[float, float]:
    return metrics.precision, metrics.recall


@pytest.mark.parametrize(
    ("threshold", "tag0", "tag1", "overall"),
    [
        # Tag 0: predicted {0, 1, 2}, TP {0, 2}. Tag 1: 0.5 >= 0.5, so predicted {1, 2, 3, 4}.
        (0.5, (2 / 3, 2 / 3), (3 / 4, 1.0), (5 / 7, 5 / 6)),
        (0.3, (3 / 5, 1.0), (3 / 4, 1.0), (6 / 9, 1.0)),
        (0.85, (1.0, 1 / 3), (1.0, 1 / 3), (1.0, 2 / 6)),
        (0.0, (3 / 6, 1.0), (3 / 6, 1.0), (6 / 12, 1.0)),
    ],
)
def test_precision_and_recall_at_several_thresholds(
    threshold: float,
    tag0: tuple[float, float],
    tag1: tuple[float, float],
    overall: tuple[float, float],
) -> None:
    metrics = evaluate(PROBS, LABELS, None, threshold)
    assert len(metrics.per_tag) == 2
    assert pr(metrics.per_tag[0]) == pytest.approx(tag0)
    assert pr(metrics.per_tag[1]) == pytest.approx(tag1)
    assert pr(metrics) == pytest.approx(overall)


def test_default_threshold_is_one_half() -> None:
    assert evaluate(PROBS, LABELS, None) == evaluate(PROBS, LABELS, None, 0.5)


def test_average_precision_is_independent_of_the_threshold() -> None:
    # Tag 0: positives at ranks 1, 3 and 4 -> (1/1 + 2/3 + 3/4) / 3. Tag 1 is ranked perfectly.
    expected_tag0 = (1 + 2 / 3 + 3 / 4) / 3
    assert expected_tag0 == pytest.approx(29 / 36)
    for threshold in (0.0, 0.5, 1.0):
        metrics = evaluate(PROBS, LABELS, None, threshold)
        assert metrics.per_tag[0].average_precision == pytest.approx(29 / 36)
        assert metrics.per_tag[1].average_precision == pytest.approx(1.0)
        assert metrics.average_precision == pytest.approx((29 / 36 + 1.0) / 2)


def test_average_precision_groups_ties() -> None:
    # The three images at 0.7 enter together: P = 2/4 for recall 2/3, then P = 3/5 for 1/3.
    scores = np.array([0.9, 0.7, 0.7, 0.7, 0.2])
    positives = np.array([0, 1, 0, 1, 1])
    assert average_precision(scores, positives) == pytest.approx(2 / 3 * 2 / 4 + 1 / 3 * 3 / 5)
    # Orderings within the tie would give other values; the result must not depend on them.
    reordered = np.array([3, 1, 4, 0, 2])
    assert average_precision(scores[reordered], positives[reordered]) == pytest.approx(8 / 15)
    # All scores equal: precision is the base rate at full recall.
    assert average_precision(np.full(4, 0.5), np.array([1, 0, 0, 1])) == pytest.approx(0.5)


def test_average_precision_of_perfect_and_reversed_rankings() -> None:
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    assert average_precision(scores, np.array([1, 1, 0, 0])) == 1.0
    # Positives ranked last: (1/3 + 2/4) / 2.
    assert average_precision(scores, np.array([0, 0, 1, 1])) == pytest.approx(5 / 12)
    # A single positive ranked last of n: 1/n.
    assert average_precision(np.linspace(1, 0, 10), np.eye(10, dtype=int)[9]) == pytest.approx(0.1)


def test_average_precision_without_positives_is_zero_and_left_out_of_the_mean() -> None:
    assert average_precision(np.array([0.3, 0.2]), np.array([0, 0])) == 0.0
    assert average_precision(np.array([]), np.array([])) == 0.0
    probs = np.column_stack([PROBS[:, 0], np.full(6, 0.4)])
    labels = np.column_stack([LABELS[:, 0], np.zeros(6, dtype=int)])
    metrics = evaluate(probs, labels, None)
    assert metrics.per_tag[1].average_precision == 0.0
    assert metrics.average_precision == pytest.approx(29 / 36)
    assert evaluate(np.full((3, 1), 0.2), np.zeros((3, 1)), None).average_precision == 0.0


def test_empty_case_conventions() -> None:
    probs = np.array(
        [
            # tag 0: no positives, none predicted; tag 1: positives, none predicted;
            # tag 2: no positives, one predicted.
            [0.1, 0.2, 0.9],
            [0.2, 0.3, 0.1],
        ]
    )
    labels = np.array([[0, 1, 0], [0, 1, 0]])
    tags = evaluate(probs, labels, None).per_tag
    assert pr(tags[0]) == (1.0, 1.0)
    assert pr(tags[1]) == (0.0, 0.0)
    assert pr(tags[2]) == (0.0, 1.0)
    # Nothing anywhere: nothing claimed and nothing missed.
    assert pr(evaluate(np.zeros((4, 2)), np.zeros((4, 2)), None)) == (1.0, 1.0)
    assert pr(evaluate(np.zeros((0, 2)), np.zeros((0, 2)), None)) == (1.0, 1.0)
    # Positives exist but nothing is predicted overall.
    assert pr(evaluate(np.zeros((2, 2)), np.eye(2), None)) == (0.0, 0.0)


def test_overall_figures_are_micro_averaged() -> None:
    # Tag 0: 1 TP of 1 predicted, 1 positive. Tag 1: 1 TP of 4 predicted, 3 positives.
    # Macro averages would be P = (1 + 1/4) / 2 and R = (1 + 1/3) / 2; micro is 2/5 and 2/4.
    probs = np.array([[0.9, 0.9], [0.1, 0.9], [0.1, 0.9], [0.1, 0.9], [0.1, 0.1], [0.1, 0.1]])
    labels = np.array([[1, 1], [0, 0], [0, 0], [0, 0], [0, 1], [0, 1]])
    metrics = evaluate(probs, labels, None)
    assert pr(metrics.per_tag[0]) == pytest.approx((1.0, 1.0))
    assert pr(metrics.per_tag[1]) == pytest.approx((1 / 4, 1 / 3))
    assert pr(metrics) == pytest.approx((2 / 5, 2 / 4))


# Ten images in three folds, two tags, predictions given directly as 0/1 probabilities.
FOLDS = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
FOLD_LABELS = np.array(
    [[1, 0], [1, 0], [0, 0], [0, 0], [1, 1], [0, 1], [0, 0], [0, 0], [0, 1], [0, 1]]
)
FOLD_PREDICTED = np.array(
    [[1, 0], [0, 0], [0, 0], [0, 0], [1, 1], [1, 0], [0, 0], [0, 1], [0, 1], [0, 0]]
)


def test_standard_deviations_across_folds() -> None:
    metrics = evaluate(FOLD_PREDICTED.astype(float), FOLD_LABELS, FOLDS)
    tag0, tag1 = metrics.per_tag
    # Tag 0: fold 0 P=1 R=1/2, fold 1 P=1/2 R=1; fold 2 has neither positives nor predictions.
    assert pr(tag0) == pytest.approx((2 / 3, 2 / 3))
    assert tag0.precision_std == pytest.approx(0.25)
    assert tag0.recall_std == pytest.approx(0.25)
    # Tag 1: fold 1 P=1/2 R=1/2, fold 2 P=1 R=1/2; fold 0 has nothing.
    assert pr(tag1) == pytest.approx((2 / 3, 1 / 2))
    assert tag1.precision_std == pytest.approx(0.25)
    assert tag1.recall_std == pytest.approx(0.0, abs=1e-12)
    # Overall per fold: P = 1, 1/2, 1 and R = 1/2, 2/3, 1/2.
    assert metrics.precision_std == pytest.approx(np.std([1, 1 / 2, 1]))
    assert metrics.precision_std == pytest.approx((1 / 18) ** 0.5)
    assert metrics.recall_std == pytest.approx((1 / 162) ** 0.5)


def test_fold_ids_are_labels_only_and_image_order_does_not_matter() -> None:
    expected = evaluate(FOLD_PREDICTED.astype(float), FOLD_LABELS, FOLDS)
    relabelled = np.array([7, -3, 12])[FOLDS]
    assert evaluate(FOLD_PREDICTED.astype(float), FOLD_LABELS, relabelled) == expected
    shuffled = np.random.default_rng(5).permutation(len(FOLDS))
    actual = evaluate(
        FOLD_PREDICTED[shuffled].astype(float), FOLD_LABELS[shuffled], FOLDS[shuffled]
    )
    assert actual == expected
    # Merging folds 1 and 2 changes the spread: the fold ids are really used.
    assert evaluate(FOLD_PREDICTED.astype(float), FOLD_LABELS, np.minimum(FOLDS, 1)) != expected


def test_a_missed_fold_counts_with_precision_zero() -> None:
    # Fold 0: 1 of 1 found (P=1, R=1). Fold 1: its positive missed, nothing predicted (P=0, R=0).
    probs = np.array([[0.9], [0.1], [0.1], [0.1]])
    labels = np.array([[1], [0], [1], [0]])
    metrics = evaluate(probs, labels, np.array([0, 0, 1, 1]))
    assert metrics.precision_std == pytest.approx(0.5)
    assert metrics.recall_std == pytest.approx(0.5)
    assert metrics.per_tag[0].precision_std == pytest.approx(0.5)


def test_no_spread_without_folds_or_with_one_fold() -> None:
    for folds in (None, np.zeros(6, dtype=int), np.full(6, 4)):
        metrics = evaluate(PROBS, LABELS, folds)
        assert metrics.precision_std == 0.0
        assert metrics.recall_std == 0.0
        assert all(t.precision_std == 0.0 and t.recall_std == 0.0 for t in metrics.per_tag)
    # Two folds, but only one holds anything for the tag.
    metrics = evaluate(np.array([[0.9], [0.1]]), np.array([[1], [0]]), np.array([0, 1]))
    assert (metrics.precision_std, metrics.recall_std) == (0.0, 0.0)


def test_float32_probabilities_compare_in_their_own_precision() -> None:
    probs = np.array([[0.7], [0.3]], dtype=np.float32)  # float32(0.7) < 0.7 as float64
    labels = np.array([[1], [0]])
    assert evaluate(probs, labels, None, 0.7).recall == 1.0
    assert evaluate(probs.astype(np.float64), labels, None, 0.7).recall == 0.0


@pytest.mark.parametrize("threshold", [-0.01, 1.01, float("nan"), float("inf"), True, "0.5", None])
def test_threshold_is_validated(threshold: Any) -> None:
    with pytest.raises(ValueError, match="threshold"):
        evaluate(PROBS, LABELS, None, threshold)


@pytest.mark.parametrize("threshold", [0, 1, 0.0, 1.0, np.float32(0.25)])
def test_threshold_bounds_are_allowed(threshold: Any) -> None:
    metrics = evaluate(PROBS, LABELS, None, threshold)
    assert pr(metrics) == pytest.approx(slow_precision_recall(PROBS, LABELS, float(threshold)))


def test_threshold_extremes() -> None:
    assert pr(evaluate(PROBS, LABELS, None, 0)) == pytest.approx((0.5, 1.0))
    assert pr(evaluate(PROBS, LABELS, None, 1)) == (0.0, 0.0)
    assert pr(evaluate(np.ones((2, 1)), np.array([[1], [0]]), None, 1)) == (0.5, 1.0)


@pytest.mark.parametrize(
    ("probs", "labels", "folds", "message"),
    [
        (PROBS[:, 0], LABELS[:, 0], None, "probabilities must be 2-D"),
        (PROBS, LABELS[:5], None, "labels must have shape"),
        (PROBS, LABELS.T, None, "labels must have shape"),
        (PROBS, LABELS, np.zeros(5, dtype=int), "folds must have shape"),
        (PROBS, LABELS, np.zeros((6, 1), dtype=int), "folds must have shape"),
        (PROBS, LABELS, np.zeros(6), "folds must be integers"),
        (PROBS, LABELS * 2, None, "only 0 and 1"),
        (PROBS, LABELS.astype(str), None, "labels must be 0/1 numbers"),
        (PROBS * 2, LABELS, None, r"within \[0, 1\]"),
        (PROBS - 0.5, LABELS, None, r"within \[0, 1\]"),
        (np.where(PROBS > 0.5, np.nan, PROBS), LABELS, None, "NaN"),
        (PROBS.astype(complex), LABELS, None, "real numbers"),
    ],
)
def test_shapes_and_values_are_validated(
    probs: np.ndarray, labels: np.ndarray, folds: np.ndarray | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(probs, labels, folds)


def test_curve_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="1-D"):
        average_precision(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="positives must have shape"):
        precision_recall_curve(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        average_precision(np.array([0.1, np.nan]), np.array([0, 1]))


def test_labels_may_be_booleans_or_floats() -> None:
    expected = evaluate(PROBS, LABELS, None)
    assert evaluate(PROBS, LABELS.astype(bool), None) == expected
    assert evaluate(PROBS, LABELS.astype(np.float32), None) == expected
    assert evaluate((PROBS > 0.5).astype(np.uint8), LABELS, None) == evaluate(
        (PROBS > 0.5).astype(float), LABELS, None
    )


def test_precision_recall_curve() -> None:
    scores = np.array([0.2, 0.7, 0.9, 0.7, 0.7])
    positives = np.array([1, 1, 0, 0, 1])
    precision, recall, thresholds = precision_recall_curve(scores, positives)
    # Threshold 1.0 predicts nothing: precision 0.0 (positives were missed), recall 0.0.
    np.testing.assert_allclose(thresholds, [1.0, 0.9, 0.7, 0.2])
    np.testing.assert_allclose(precision, [0.0, 0.0, 2 / 4, 3 / 5])
    np.testing.assert_allclose(recall, [0.0, 0.0, 2 / 3, 1.0])
    # Each point matches evaluate() at that threshold.
    for p, r, t in zip(precision, recall, thresholds, strict=True):
        assert pr(evaluate(scores[:, None], positives[:, None], None, t)) == pytest.approx((p, r))
    # The step-wise area under it is the average precision.
    area = np.sum(np.diff(recall, prepend=0.0) * precision)
    assert area == pytest.approx(average_precision(scores, positives))


def test_curve_edge_cases_follow_evaluate() -> None:
    # Without positives: recall 1.0 throughout; nothing predicted is precision 1.0.
    precision, recall, thresholds = precision_recall_curve(np.array([0.4, 0.1]), np.array([0, 0]))
    np.testing.assert_allclose(thresholds, [1.0, 0.4, 0.1])
    np.testing.assert_array_equal(recall, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(precision, [1.0, 0.0, 0.0])
    # A score of 1.0: no threshold within [0, 1] predicts nothing, so no such point.
    precision, recall, thresholds = precision_recall_curve(np.array([1.0, 0.3]), np.array([1, 0]))
    np.testing.assert_allclose(thresholds, [1.0, 0.3])
    np.testing.assert_allclose(precision, [1.0, 0.5])
    np.testing.assert_allclose(recall, [1.0, 1.0])
    # No images: the one point is evaluate()'s (nothing claimed, nothing missed).
    precision, recall, thresholds = precision_recall_curve(np.array([]), np.array([]))
    assert (list(precision), list(recall), list(thresholds)) == ([1.0], [1.0], [1.0])
    assert pr(evaluate(np.zeros((0, 1)), np.zeros((0, 1)), None, 1.0)) == (1.0, 1.0)


def test_evaluate_at_any_threshold_lies_on_the_curve() -> None:
    rng = np.random.default_rng(7)
    probs = np.round(rng.random((40, 3)), 1).astype(np.float32)  # many ties
    labels = (rng.random((40, 3)) < 0.3).astype(int)
    labels[:, 2] = 0  # a tag without positives
    curves = precision_recall_curves(probs, labels)
    for threshold in np.linspace(0.0, 1.0, 41):
        metrics = evaluate(probs, labels, None, float(threshold))
        for tag, (precision, recall, thresholds) in zip(metrics.per_tag, curves, strict=True):
            # Thresholds descend; compared in the probabilities' precision, as evaluate() does.
            k = np.flatnonzero(thresholds.astype(np.float32) >= np.float32(threshold))[-1]
            assert (tag.precision, tag.recall) == pytest.approx((precision[k], recall[k]))


def slow_average_precision(scores: list[float], positives: list[int]) -> float:
    """Reference: walk the distinct scores from the highest, summing (R_k - R_{k-1}) * P_k."""
    total = sum(positives)
    if total == 0:
        return 0.0
    area, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores), reverse=True):
        predicted = [p for s, p in zip(scores, positives, strict=True) if s >= threshold]
        precision = sum(predicted) / len(predicted)
        recall = sum(predicted) / total
        area += (recall - previous_recall) * precision
        previous_recall = recall
    return area


def slow_precision_recall(
    probs: np.ndarray, labels: np.ndarray, threshold: float
) -> tuple[float, float]:
    tp = fp = fn = 0
    for row_p, row_l in zip(probs.tolist(), labels.tolist(), strict=True):
        for p, label in zip(row_p, row_l, strict=True):
            predicted = p >= threshold
            tp += predicted and label == 1
            fp += predicted and label == 0
            fn += (not predicted) and label == 1
    precision = tp / (tp + fp) if tp + fp else (0.0 if tp + fn else 1.0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall


def test_average_precision_matches_a_slow_reference() -> None:
    rng = np.random.default_rng(20240611)
    for case in range(50):
        n = int(rng.integers(1, 60))
        scores = rng.random(n)
        if case % 2:  # Coarse scores make many ties.
            scores = np.round(scores, 1)
        positives = (rng.random(n) < rng.uniform(0.05, 0.9)).astype(int)
        expected = slow_average_precision(scores.tolist(), positives.tolist())
        assert average_precision(scores, positives) == pytest.approx(expected, abs=1e-12)
        # The same values through evaluate's all-tags path, next to a second column.
        probs = np.column_stack([scores, rng.random(n)])
        labels = np.column_stack([positives, rng.integers(0, 2, n)])
        threshold = float(rng.random())
        metrics = evaluate(probs, labels, rng.integers(0, 3, n), threshold)
        assert metrics.per_tag[0].average_precision == pytest.approx(expected, abs=1e-12)
        assert pr(metrics) == pytest.approx(slow_precision_recall(probs, labels, threshold))


def slow_fold_spread(
    probs: np.ndarray, labels: np.ndarray, folds: np.ndarray, threshold: float
) -> tuple[float, float]:
    """Overall precision and recall std across folds, from the documented rule, with loops."""
    precisions, recalls = [], []
    for fold in sorted(set(folds.tolist())):
        rows = folds == fold
        p, r = slow_precision_recall(probs[rows], labels[rows], threshold)
        predicted = int((probs[rows] >= threshold).sum())
        actual = int(labels[rows].sum())
        if predicted or actual:
            precisions.append(p)
        if actual:
            recalls.append(r)
    return (
        float(np.std(precisions)) if len(precisions) > 1 else 0.0,
        float(np.std(recalls)) if len(recalls) > 1 else 0.0,
    )


@pytest.mark.parametrize("fold_count", [2, 5, 64, 65, 300])
def test_fold_spread_matches_a_slow_reference(fold_count: int) -> None:
    rng = np.random.default_rng(fold_count)
    n, t = 400, 3
    probs = rng.random((n, t))
    labels = (rng.random((n, t)) < 0.2).astype(int)
    folds = rng.integers(0, fold_count, n) * 10 - 50
    metrics = evaluate(probs, labels, folds, 0.6)
    expected = slow_fold_spread(probs, labels, folds, 0.6)
    assert (metrics.precision_std, metrics.recall_std) == pytest.approx(expected, abs=1e-12)
    for j, tag in enumerate(metrics.per_tag):
        expected = slow_fold_spread(probs[:, j : j + 1], labels[:, j : j + 1], folds, 0.6)
        assert (tag.precision_std, tag.recall_std) == pytest.approx(expected, abs=1e-12)


def test_large_evaluation_shapes() -> None:
    rng = np.random.default_rng(0)
    n, t = 100_000, 50
    labels = rng.random((n, t)) < 0.1
    probs = np.clip(labels * 0.3 + rng.random((n, t)) * 0.7, 0.0, 1.0)
    folds = rng.integers(0, 5, n)
    metrics = evaluate(probs, labels, folds, 0.5)
    assert len(metrics.per_tag) == t
    assert 0.0 < metrics.precision_std < 0.05
