"""The trainer's model core on real photos: features, head, cross-validation, ONNX export."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from functions.domain.artifacts import INPUT_NAME, OUTPUT_NAME
from functions.domain.preprocessing import Preprocessing
from tests.conftest import photo_images
from trainer_job.ml import backbone
from trainer_job.ml.backbone import FeatureExtractor, load_backbone
from trainer_job.ml.export import onnx_session
from trainer_job.ml.features import compute_features, run_extractor, view_array
from trainer_job.ml.head import LinearHead, train_head
from trainer_job.ml.spec import ModelSpec, TrainingSpec
from trainer_job.tasks.classification import evaluate, recipe
from trainer_job.tasks.classification.evaluate import assign_folds, cross_validate

LITE0 = "efficientnet-lite0"
FLOWERS = ("daisy", "dandelion", "rose", "sunflower", "tulip")
TRAIN_PER_CLASS = 10
TEST_PER_CLASS = 10


def one_hot(classes: Sequence[int], count: int) -> np.ndarray:
    return np.eye(count, dtype=np.float32)[list(classes)]


class Flowers:
    """flowers5: the first 10 photos of each class to train on, the next 10 to test on."""

    def __init__(self) -> None:
        self.preprocessing = Preprocessing.for_size(224)
        self.extractor: FeatureExtractor = load_backbone(LITE0)
        self.train: list[Image.Image] = []
        self.test: list[Image.Image] = []
        train_classes: list[int] = []
        test_classes: list[int] = []
        for c, name in enumerate(FLOWERS):
            self.train += photo_images(name, TRAIN_PER_CLASS)
            self.test += photo_images(name, TEST_PER_CLASS, start=TRAIN_PER_CLASS)
            train_classes += [c] * TRAIN_PER_CLASS
            test_classes += [c] * TEST_PER_CLASS
        self.train_classes = np.asarray(train_classes)
        self.test_classes = np.asarray(test_classes)
        self.train_labels = one_hot(train_classes, len(FLOWERS))
        self.train_features = compute_features(
            self.extractor, self.train, self.preprocessing, views=2, seed=0
        )
        self.test_features = compute_features(
            self.extractor, self.test, self.preprocessing, views=1, seed=0
        )[:, 0]


@pytest.fixture(scope="module")
def flowers() -> Flowers:
    return Flowers()


@pytest.fixture(scope="module")
def flower_head(flowers: Flowers) -> LinearHead:
    return train_head(flowers.train_features, flowers.train_labels, multilabel=False, seed=0)


# Features


def test_view_zero_is_exactly_the_served_input(flowers: Flowers) -> None:
    images = flowers.test[:3]
    served = np.stack([flowers.preprocessing(image) for image in images])
    for image, expected in zip(images, served, strict=True):
        assert np.array_equal(view_array(image, flowers.preprocessing, 0, 0, 0), expected)
        mirrored = view_array(image, flowers.preprocessing, 1, 0, 0)
        assert np.array_equal(mirrored, expected[:, :, ::-1])

    features = compute_features(flowers.extractor, images, flowers.preprocessing, views=2)
    assert features.shape == (3, 2, 1280) and features.dtype == np.float32
    # The same batch of served inputs through the extractor: bit for bit the same features.
    assert np.array_equal(features[:, 0], run_extractor(flowers.extractor, served))
    # One image at a time: the same up to the convolution algorithm picked for the batch size.
    single = np.concatenate([run_extractor(flowers.extractor, x[None]) for x in served])
    np.testing.assert_allclose(features[:, 0], single, atol=1e-5, rtol=0)
    # The mirror view is a different input, so a different feature vector.
    assert np.abs(features[:, 0] - features[:, 1]).max() > 1e-2


def test_augmented_views_follow_the_seed_and_the_image_index(flowers: Flowers) -> None:
    image, p = flowers.train[0], flowers.preprocessing
    first = view_array(image, p, 2, seed=0, index=0)
    assert first.shape == (3, 224, 224) and first.dtype == np.float32
    assert np.array_equal(first, view_array(image, p, 2, seed=0, index=0))
    assert not np.array_equal(first, view_array(image, p, 2, seed=1, index=0))
    assert not np.array_equal(first, view_array(image, p, 2, seed=0, index=1))
    assert not np.array_equal(first, view_array(image, p, 3, seed=0, index=0))
    assert not np.array_equal(first, p(image))


# Head and accuracy on real photos


def test_head_on_real_photos_beats_chance_clearly(
    flowers: Flowers, flower_head: LinearHead
) -> None:
    probabilities = flower_head.predict(flowers.test_features)
    accuracy = float((probabilities.argmax(axis=1) == flowers.test_classes).mean())
    print(f"flowers5 Lite0, 10 per class: held-out accuracy {accuracy:.3f}")
    assert accuracy > 0.7  # chance is 0.2; about 0.8 is typical at 10 per class
    assert probabilities.shape == (50, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_cross_validation_on_real_photos(flowers: Flowers) -> None:
    result = cross_validate(flowers.train_features, flowers.train_labels, False, seed=0)
    assert result.probabilities.shape == (50, 5)
    assert result.folds == 5
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float((result.probabilities.argmax(axis=1) == flowers.train_classes).mean())
    print(f"flowers5 Lite0, 10 per class: 5-fold CV accuracy {accuracy:.3f}")
    assert accuracy > 0.6
    # Two images per class in every fold.
    for c in range(5):
        assert np.bincount(result.fold[flowers.train_classes == c], minlength=5).tolist() == [2] * 5


def test_head_and_cross_validation_are_deterministic(flowers: Flowers) -> None:
    features, labels = flowers.train_features, flowers.train_labels
    a = train_head(features, labels, False, seed=3)
    b = train_head(features, labels, False, seed=3)
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    first = cross_validate(features, labels, False, seed=3)
    again = cross_validate(features, labels, False, seed=3)
    assert np.array_equal(first.fold, again.fold)
    assert np.array_equal(first.probabilities, again.probabilities)
    other = cross_validate(features, labels, False, seed=4)
    assert not np.array_equal(first.fold, other.fold)
    assert not np.array_equal(first.probabilities, other.probabilities)


def test_recipe_is_deterministic_and_the_seed_changes_the_augmentations() -> None:
    images = photo_images("daisy", 3, start=17) + photo_images("rose", 3, start=17)
    labels = one_hot([0, 0, 0, 1, 1, 1], 2)

    def run(seed: int, known: dict[int, np.ndarray] | None = None) -> recipe.RegularResult:
        spec = TrainingSpec.create(images, labels, False, LITE0, 224, seed, views=3)
        return recipe.train_regular(spec, known)

    first, again, other = run(0), run(0), run(1)
    assert first.features.shape == (6, 3, 1280)
    assert first.computed_indices == list(range(6))
    assert np.array_equal(first.features, again.features)
    assert np.array_equal(first.head.weight, again.head.weight)
    assert np.array_equal(first.probabilities, again.probabilities)
    assert np.array_equal(first.folds, again.folds)
    # Views 0 (as served) and 1 (mirrored) do not depend on the seed; the random view does.
    assert np.array_equal(first.features[:, :2], other.features[:, :2])
    assert not np.allclose(first.features[:, 2], other.features[:, 2])
    # The served head is trained on the views and with the penalty the cross-validation chose.
    chosen = first.cross_validation.chosen
    assert chosen.views in (3, 1)
    head = train_head(first.features[:, : chosen.views], labels, False, l2=chosen.l2)
    assert np.array_equal(first.head.weight, head.weight)
    assert set(first.timings) == {"features", "crossValidation", "head"}

    # Every row known: nothing is computed and the result is that of the first run.
    cached = run(0, {i: first.features[i] for i in range(6)})
    assert cached.computed_indices == []
    assert np.array_equal(cached.head.weight, first.head.weight)
    assert np.array_equal(cached.probabilities, first.probabilities)


def test_features_for_computes_only_the_missing_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    images = [Image.new("RGB", (40, 30), (i * 40, 0, 0)) for i in range(5)]
    calls: list[tuple[list[Image.Image], list[int]]] = []

    def fake_compute(
        extractor: Any, subset: list[Image.Image], p: Preprocessing, **kwargs: Any
    ) -> np.ndarray:
        calls.append((subset, list(kwargs["indices"])))
        return np.stack([np.full((2, 1280), 100.0 + i) for i in kwargs["indices"]])

    monkeypatch.setattr(recipe, "compute_features", fake_compute)
    known = {1: np.full((2, 1280), 1.0), 3: np.full((2, 1280), 3.0)}
    model = ModelSpec(LITE0, Preprocessing.for_size(224), seed=0)
    features, computed = recipe.features_for(images, known, model)
    assert computed == [0, 2, 4]
    assert len(calls) == 1 and calls[0][1] == [0, 2, 4]
    assert [images.index(image) for image in calls[0][0]] == [0, 2, 4]
    assert features.shape == (5, 2, 1280) and features.dtype == np.float32
    assert features[:, :, 0].tolist() == [[100, 100], [1, 1], [102, 102], [3, 3], [104, 104]]
    with pytest.raises(ValueError):
        recipe.features_for(images, {0: np.zeros((3, 1280))}, model)


# Multilabel


def test_multilabel_head_gives_independent_sigmoids(flowers: Flowers) -> None:
    # Tags: "daisy", "yellow" (dandelion, sunflower); roses and tulips have no tag at all.
    def tags(classes: np.ndarray) -> np.ndarray:
        return np.stack([classes == 0, np.isin(classes, [1, 3])], axis=1).astype(np.float32)

    labels = tags(flowers.train_classes)
    assert (labels.sum(axis=1) == 0).sum() == 20
    head = train_head(flowers.train_features, labels, multilabel=True, seed=0)
    probabilities = head.predict(flowers.test_features)
    assert probabilities.shape == (50, 2)
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0
    assert np.abs(probabilities.sum(axis=1) - 1.0).max() > 0.5  # not a softmax
    truth = tags(flowers.test_classes) > 0
    accuracy = float(((probabilities > 0.5) == truth).mean())
    print(f"flowers5 Lite0 multilabel: held-out per-tag accuracy {accuracy:.3f}")
    assert accuracy > 0.8
    cv = cross_validate(flowers.train_features, labels, multilabel=True, seed=0)
    assert cv.probabilities.shape == (50, 2) and cv.folds == 5
    for tag in range(2):
        per_fold = np.bincount(cv.fold[labels[:, tag] > 0], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1


# Cross-validation never scores an image with a head that saw it


class SpyHead:
    def __init__(self, trained_on: set[int], tags: int, scored: list[tuple[set[int], set[int]]]):
        self.trained_on, self.tags, self.scored = trained_on, tags, scored

    def predict(self, features: np.ndarray) -> np.ndarray:
        self.scored.append((self.trained_on, {int(i) for i in features[:, 0]}))
        return np.full((len(features), self.tags), 1.0 / self.tags, dtype=np.float32)


@pytest.mark.parametrize("multilabel", [False, True])
def test_cross_validation_holds_every_image_out(
    monkeypatch: pytest.MonkeyPatch, multilabel: bool
) -> None:
    rng = np.random.default_rng(7)
    if multilabel:
        labels = (rng.random((37, 4)) < [0.5, 0.3, 0.2, 0.15]).astype(np.float32)
        labels[:5] = 0  # images without any tag
    else:
        labels = one_hot([0] * 7 + [1] * 5 + [2] * 12, 3)
    count = labels.shape[0]
    # Column 0 of every view of image i holds i, so the spy can tell images apart.
    features = rng.normal(size=(count, 3, 8)).astype(np.float32)
    features[:, :, 0] = np.arange(count)[:, None]
    scored: list[tuple[set[int], set[int]]] = []
    trained_views: list[int] = []

    def spy_train(f: np.ndarray, y: np.ndarray, multilabel: bool, **kwargs: Any) -> SpyHead:
        trained_on = {int(i) for i in f[:, :, 0].ravel()}
        assert f.shape[1] in (3, 1)  # every view, or the image alone
        trained_views.append(f.shape[1])
        return SpyHead(trained_on, y.shape[1], scored)

    monkeypatch.setattr(evaluate, "train_head", spy_train)
    result = cross_validate(features, labels, multilabel, seed=1)
    counts = labels.sum(axis=0)
    grid = 2 * len(evaluate.L2_GRID)  # every view or the image alone, with every penalty
    assert result.folds == min(5, int(counts[counts > 0].min()))
    assert len(scored) == result.folds * grid  # every candidate setting in every fold
    assert trained_views == ([3] * (grid // 2) + [1] * (grid // 2)) * result.folds
    seen: list[int] = []
    for trained_on, held_out in scored:
        assert not trained_on & held_out
        assert trained_on | held_out == set(range(count))
        seen += held_out
    assert sorted(seen) == sorted(list(range(count)) * grid)
    for k in range(result.folds):
        for _, held_out in scored[k * grid : (k + 1) * grid]:
            assert held_out == set(np.flatnonzero(result.fold == k).tolist())
    for tag in range(labels.shape[1]):
        per_fold = np.bincount(result.fold[labels[:, tag] > 0], minlength=result.folds)
        assert per_fold.max() - per_fold.min() <= 1, (tag, per_fold)
    sizes = np.bincount(result.fold, minlength=result.folds)
    assert sizes.max() - sizes.min() <= 1


class PenaltyHead:
    """Scores image i (feature column 0 holds i) correctly when `right(l2, i)`, else wrongly."""

    def __init__(self, l2: float, tags: int, right: Any) -> None:
        self.l2, self.tags, self.right = l2, tags, right

    def predict(self, features: np.ndarray) -> np.ndarray:
        out = np.full((len(features), self.tags), 0.1 / (self.tags - 1), dtype=np.float32)
        for row, i in enumerate(features[:, 0].astype(int)):
            truth = int(i) % self.tags
            out[row, truth if self.right(self.l2, int(i)) else (truth + 1) % self.tags] = 0.9
        return out


def test_each_fold_is_scored_with_the_penalty_chosen_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 40 images of 2 classes (image i is of class i % 2). The penalty 1e-2 is right on every
    # image of the first fold and wrong on half the others; 1.0 is right everywhere else and
    # wrong on the first fold. So the first fold must be scored with 1.0 (the other folds
    # prefer it) and the others with 1e-2 or 1.0 as the remaining folds decide, never with a
    # choice that looked at their own images.
    count, tags = 40, 2
    labels = one_hot([i % tags for i in range(count)], tags)
    features = np.zeros((count, 2, 4), dtype=np.float32)
    features[:, :, 0] = np.arange(count)[:, None]
    fold = assign_folds(labels, False, seed=2, folds=4)
    first = set(np.flatnonzero(fold == 0).tolist())

    def right(l2: float, i: int) -> bool:
        if l2 == 1e-2:
            return i in first or i % 4 < 2
        return i not in first

    def fake_train(f: np.ndarray, y: np.ndarray, multilabel: bool, **kwargs: Any) -> PenaltyHead:
        return PenaltyHead(kwargs["l2"], y.shape[1], right)

    monkeypatch.setattr(evaluate, "train_head", fake_train)
    result = cross_validate(
        features, labels, False, seed=2, folds=4, l2_grid=(1.0, 1e-2), view_options=(2,)
    )
    assert np.array_equal(result.fold, fold)
    assert result.fold_choices[0].l2 == 1.0
    # First fold: 1.0 chose, so every image of it is scored wrong: the metric is not flattered.
    correct = result.probabilities.argmax(axis=1) == labels.argmax(axis=1)
    assert not correct[list(first)].any()

    def right_on(l2: float, images: np.ndarray) -> int:
        return sum(right(l2, int(i)) for i in images)

    for k in range(1, 4):
        held, others = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        # 1e-2 wins only with more right answers, so a lower loss (a tie keeps the stronger).
        expected = 1e-2 if right_on(1e-2, others) > right_on(1.0, others) else 1.0
        assert result.fold_choices[k].l2 == expected
        assert all(correct[i] == right(expected, int(i)) for i in held)
    everything = np.arange(count)
    assert result.l2 == 1.0  # right on 30 of 40; 1e-2 on at most 30
    assert [c.l2 for c in result.candidates] == [1.0, 1e-2]
    assert [c.score for c in result.candidates] == [
        right_on(1.0, everything) / count,
        right_on(1e-2, everything) / count,
    ]
    assert result.choices()["foldL2"] == [c.l2 for c in result.fold_choices]


def test_the_penalty_is_chosen_on_real_photos_and_serves_the_final_head(flowers: Flowers) -> None:
    features, labels = flowers.train_features, flowers.train_labels
    result = cross_validate(features, labels, False, seed=0)
    assert [(c.views, c.l2) for c in result.candidates] == [
        (views, l2) for views in (2, 1) for l2 in evaluate.L2_GRID
    ]
    lowest = min(c.loss for c in result.candidates)
    assert result.chosen in result.candidates and result.chosen.loss <= lowest + 1e-3
    print("flowers5 Lite0, 10 per class, out-of-fold accuracy per L2:", result.choices())
    assert set(result.fold_choices) <= set(result.candidates) and len(result.fold_choices) == 5
    # The penalties really differ: the weakest fits the training images far more tightly.
    strongest, weakest = result.candidates[0], result.candidates[-1]
    assert strongest.loss != pytest.approx(weakest.loss, rel=0.05)
    # Each reported row is that of its fold's chosen penalty, scored by a head blind to it.
    for k, head in enumerate(result.heads):
        held = result.fold == k
        np.testing.assert_allclose(
            result.probabilities[held], head.predict(features[held, 0]), atol=1e-6
        )


def test_tags_told_apart_by_their_mirror_image_train_without_it() -> None:
    # Tags that only a mirror-sensitive feature tells apart (left from right): feature 0 is
    # +1 for tag A and -1 for tag B on the image as served, and flips sign on its mirror image
    # (view 1); the others are noise. Mirror views teach the head that A looks like B, so the
    # cross-validation must choose the image alone, and that head must tell the tags apart.
    rng = np.random.default_rng(3)
    classes = np.arange(40) % 2
    features = rng.normal(size=(40, 2, 8)).astype(np.float32)
    features[:, 1, 1:] = features[:, 0, 1:]
    features[:, 0, 0] = np.where(classes == 0, 1.0, -1.0) + 0.3 * rng.normal(size=40)
    features[:, 1, 0] = -features[:, 0, 0]
    result = cross_validate(features, one_hot(classes.tolist(), 2), False, seed=0)
    assert result.views == 1 and all(c.views == 1 for c in result.fold_choices)
    assert result.chosen.score == 1.0
    assert max(c.score for c in result.candidates if c.views == 2) < 0.75
    assert result.choices()["views"] == 1 and result.choices()["foldViews"] == [1] * 5
    # When the mirror image shows the same thing, both views are kept: the image alone would
    # have to be clearly better to be chosen.
    features[:, 1, 0] = features[:, 0, 0]
    same = cross_validate(features, one_hot(classes.tolist(), 2), False, seed=0)
    assert same.views == 2 and all(c.views == 2 for c in same.fold_choices)


def test_a_second_backbone_is_read_only_when_its_features_help() -> None:
    # Two backbones of 6 columns each: the first one's tell the tags apart only roughly, the
    # second one's well. The cross-validation must read both; when the second one's columns
    # are noise, the first backbone alone (cheaper to serve, and as good).
    rng = np.random.default_rng(5)
    classes = np.arange(60) % 3
    labels = one_hot(classes.tolist(), 3)
    signal = np.eye(3, dtype=np.float32)[classes]
    features = rng.normal(size=(60, 2, 12)).astype(np.float32)
    features[:, :, :3] += 0.8 * signal[:, None]
    features[:, :, 6:9] += 3.0 * signal[:, None]
    both = cross_validate(features, labels, False, seed=0, widths=(6, 6))
    assert both.parts == 2 and both.choices()["backbones"] == 2
    assert {c.parts for c in both.candidates} == {1, 2}
    assert len(both.candidates) == 2 * 2 * len(evaluate.L2_GRID)
    assert both.primary.parts == 1 and both.primary in both.candidates
    assert both.inputs(features).shape == (60, both.views, 12)
    assert both.inputs(features, both.primary).shape == (60, both.primary.views, 6)
    assert both.chosen.score > both.primary.score
    for k, head in enumerate(both.heads):  # each fold's head reads its choice's columns
        held = both.fold == k
        columns = both.columns(both.fold_choices[k])
        np.testing.assert_allclose(
            both.probabilities[held], head.predict(features[held, 0, :columns]), atol=1e-6
        )
    features[:, :, 6:] = rng.normal(size=(60, 2, 6))
    first = cross_validate(features, labels, False, seed=0, widths=(6, 6))
    assert first.parts == 1 and first.primary == first.chosen
    assert first.choices()["foldBackbones"] == [1] * first.folds
    with pytest.raises(ValueError, match="widths"):
        cross_validate(features, labels, False, seed=0, widths=(6, 5))


def test_a_warm_started_head_reaches_the_same_optimum(flowers: Flowers) -> None:
    features, labels = flowers.train_features, flowers.train_labels
    strong = train_head(features, labels, False, l2=1.0)
    cold = train_head(features, labels, False, l2=1e-2)
    warm = train_head(features, labels, False, l2=1e-2, start=strong)
    test = flowers.test_features
    np.testing.assert_allclose(warm.predict(test), cold.predict(test), atol=2e-3)
    assert not np.allclose(strong.predict(test), cold.predict(test), atol=2e-3)
    with pytest.raises(ValueError, match="start head"):
        train_head(features[:, :, :10], labels, False, start=strong)


def test_fewer_folds_when_a_tag_has_few_images() -> None:
    labels = one_hot([0] * 9 + [1] * 3, 2)
    fold = assign_folds(labels, multilabel=False, seed=0, folds=5)
    assert sorted(set(fold.tolist())) == [0, 1, 2]
    assert np.bincount(fold[:9]).tolist() == [3, 3, 3]
    assert np.bincount(fold[9:]).tolist() == [1, 1, 1]
    two = assign_folds(one_hot([0] * 6 + [1], 2), multilabel=False, seed=0, folds=5)
    assert sorted(set(two.tolist())) == [0, 1]


# ONNX export


def test_onnx_export_matches_torch_and_keeps_the_label_order(
    flowers: Flowers, flower_head: LinearHead, tmp_path: Path
) -> None:
    net = recipe.build_classifier(LITE0, flower_head)
    path = tmp_path / "model.onnx"
    recipe.export_onnx(net, path, 224)
    indices = [0, 12, 25, 37, 49]  # a test photo of each class
    batch = np.stack([flowers.preprocessing(flowers.test[i]) for i in indices])

    session = onnx_session(path)
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    (onnx_out,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch})
    with torch.inference_mode():
        torch_out = net(torch.from_numpy(batch)).numpy()
    assert onnx_out.shape == (5, 5)
    assert np.abs(onnx_out - torch_out).max() < 1e-4
    assert recipe.verify_onnx(path, net, batch) < 1e-4
    (single,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch[:1]})  # the batch axis is dynamic
    assert np.abs(single[0] - onnx_out[0]).max() < 1e-4

    # Column t is tag t: the exported model agrees with the head on the trained features...
    np.testing.assert_allclose(
        onnx_out, flower_head.predict(flowers.test_features[indices]), atol=1e-4
    )
    # ...and a head trained with the tags in reverse order gives the columns in reverse order.
    reversed_head = train_head(flowers.train_features, flowers.train_labels[:, ::-1], False)
    reversed_net = recipe.build_classifier(LITE0, reversed_head)
    with torch.inference_mode():
        reversed_out = reversed_net(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(reversed_out, onnx_out[:, ::-1], atol=1e-4)
    assert (onnx_out.argmax(axis=1) == flowers.test_classes[indices]).sum() >= 4


def test_a_stacked_backbone_is_its_parts_side_by_side_and_exports(
    flowers: Flowers, tmp_path: Path
) -> None:
    name = "efficientnet-lite2+efficientnet-lite0"
    assert backbone.parts(name) == ["efficientnet-lite2", LITE0]
    assert backbone.primary(name) == "efficientnet-lite2" and backbone.input_size(name) == 260
    assert backbone.stacked(name, 1) == "efficientnet-lite2" and backbone.part_dims(name) == (
        1280,
        1280,
    )
    with pytest.raises(ValueError, match="unknown backbone"):
        backbone.parts("efficientnet-lite2+resnet50")
    stack = backbone.build_backbone(name)
    assert stack.feature_dim == 2560 and stack.image_size == 260
    preprocessing = Preprocessing.for_size(260)
    batch = np.stack([preprocessing(image) for image in flowers.test[:3]])
    together = run_extractor(stack, batch)
    lite2 = run_extractor(backbone.build_backbone("efficientnet-lite2"), batch)
    lite0 = run_extractor(backbone.build_backbone(LITE0, image_size=260), batch)
    np.testing.assert_allclose(together, np.concatenate([lite2, lite0], axis=1), atol=1e-5)
    assert not np.allclose(lite0, run_extractor(backbone.build_backbone(LITE0), batch), atol=1e-3)
    rng = np.random.default_rng(0)
    random_features = rng.normal(size=(20, 1, 2560)).astype(np.float32)
    head = train_head(random_features, one_hot([0, 1] * 10, 2), False)
    net = recipe.build_classifier(name, head)
    assert net.backbone == name
    path = tmp_path / "stacked.onnx"
    recipe.export_onnx(net, path, 260)
    assert recipe.verify_onnx(path, net, batch) < 1e-4
    np.testing.assert_allclose(
        onnx_session(path).run([OUTPUT_NAME], {INPUT_NAME: batch})[0],
        head.predict(together),
        atol=1e-4,
    )
