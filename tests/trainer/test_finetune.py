"""Advanced training (fine-tuning) on a few real photos: the folds, the budget, determinism,
the keep-Regular rule and the ONNX export of the fine-tuned network.

Kept small for a loaded CPU: 3 flowers5 classes x 8 photos, Lite0, one or two epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from functions.domain.preprocessing import Preprocessing
from tests.conftest import photo_images
from trainer_job.ml.backbone import build_backbone
from trainer_job.ml.export import export_onnx, verify_onnx
from trainer_job.ml.head import train_head
from trainer_job.ml.spec import TrainingSpec
from trainer_job.tasks.classification import (
    artifacts,
    ensemble,
    finetune,
    recipe,
    scoring,
    tuner,
)
from trainer_job.tasks.classification.dataset import split_seed
from trainer_job.tasks.classification.finetune import fine_tune
from trainer_job.tasks.classification.results import AdvancedResult
from trainer_job.tasks.classification.tuner import FineTuneConfig

LITE0 = "efficientnet-lite0"
SIZE = 224
CLASSES = ("daisy", "rose", "sunflower")
PER_CLASS = 8
ONE_EPOCH = FineTuneConfig(max_epochs=1)


@dataclass(frozen=True)
class Flowers:
    images: list[Image.Image]
    labels: np.ndarray
    regular: recipe.RegularResult

    @property
    def spec(self) -> TrainingSpec:
        return TrainingSpec.create(self.images, self.labels, False, LITE0, SIZE, seed=0)


@pytest.fixture(scope="module")
def flowers() -> Flowers:
    images: list[Image.Image] = []
    classes: list[int] = []
    for c, name in enumerate(CLASSES):
        images += photo_images(name, PER_CLASS)
        classes += [c] * PER_CLASS
    labels = np.eye(len(CLASSES), dtype=np.float32)[classes]
    spec = TrainingSpec.create(images, labels, False, LITE0, SIZE, seed=0)
    return Flowers(images, labels, recipe.train_regular(spec))


def run(flowers: Flowers, budget: float, config: FineTuneConfig = ONE_EPOCH) -> AdvancedResult:
    return fine_tune(flowers.spec, flowers.regular, budget_seconds=budget, config=config)


@pytest.fixture(scope="module")
def tuned(flowers: Flowers) -> AdvancedResult:
    return run(flowers, budget=300)


# The split and the rule, no network


def test_training_views_are_the_served_input_its_mirror_and_seeded_crops(
    flowers: Flowers,
) -> None:
    preprocessing = Preprocessing.for_size(SIZE)
    image = flowers.images[0]
    config = FineTuneConfig()

    def view(v: int, seed: int = 0, index: int = 0) -> np.ndarray:
        return tuner.training_view(image, preprocessing, v, seed, index, config)

    assert np.array_equal(view(0), preprocessing(image))
    assert np.array_equal(view(1), view(0)[:, :, ::-1])
    crop = view(2)
    assert crop.shape == (3, SIZE, SIZE) and crop.dtype == np.float32
    assert np.array_equal(crop, view(2))
    assert not np.array_equal(crop, view(3))
    assert not np.array_equal(crop, view(2, seed=1))
    assert not np.array_equal(crop, view(2, index=1))
    whole = FineTuneConfig(crop_scale=(1.0, 1.0), jitter=0.0)
    full = tuner.training_view(image, preprocessing, 2, 0, 0, whole)
    assert not np.array_equal(full, crop)
    # Without mirror images, view 1 is a random crop too.
    upright = tuner.training_view(image, preprocessing, 1, 0, 0, replace(config, mirror=False))
    assert upright.shape == (3, SIZE, SIZE)
    assert not np.array_equal(upright, view(1)) and not np.array_equal(upright, view(0))


def test_advanced_drops_the_mirror_image_when_regular_did(
    flowers: Flowers, monkeypatch: pytest.MonkeyPatch
) -> None:
    upright = replace(
        flowers.regular,
        cross_validation=replace(
            flowers.regular.cross_validation,
            chosen=replace(flowers.regular.cross_validation.chosen, views=1),
        ),
    )
    configs: list[FineTuneConfig] = []

    def capture(*args: object, config: FineTuneConfig = FineTuneConfig()) -> str:
        configs.append(args[-1] if isinstance(args[-1], FineTuneConfig) else config)
        return "advanced"

    monkeypatch.setattr(recipe, "fine_tune", capture)
    for result, mirror in ((upright, False), (flowers.regular, True)):
        monkeypatch.setattr(recipe, "train_regular", lambda spec, known, r=result: r)
        recipe.train_advanced(flowers.spec)
        assert configs[-1].mirror is mirror


def test_a_gain_counts_only_beyond_the_noise_of_the_paired_comparison() -> None:
    base = 0.2 * np.random.default_rng(0).random(40)
    assert not scoring.paired(np.zeros(40)).clear  # a tie
    sure = scoring.paired(0.05 + base)  # every image gains
    assert sure.z > scoring.NOISE_Z and sure.clear
    mixed = scoring.paired(np.where(np.arange(40) % 2 == 0, 0.3, -0.28) + 0.01 * base)
    assert mixed.loss_gain > 0 and abs(mixed.z) < scoring.NOISE_Z and not mixed.clear
    tiny = scoring.paired(1e-5 + 1e-6 * base)  # consistent, but float noise
    assert tiny.z > scoring.NOISE_Z and not tiny.clear
    assert sure.to_dict()["better"] is True and sure.to_dict()["images"] == 40


def test_models_are_compared_after_calibration() -> None:
    # The candidate is right on 36 of 40 images, the reference on 30 (both 0.97 on the tag
    # they pick when right, 0.45 on the true tag when wrong), but the candidate is timid (its
    # logits divided by 3, as label smoothing and averaging leave a fine-tuned ensemble): by
    # the raw loss it loses; calibrated by a temperature each, it wins clearly.
    labels = np.eye(2, dtype=np.float32)[[0, 1] * 20]

    def probabilities(right: int, temperature: float) -> np.ndarray:
        p = np.where(np.arange(40) < right, 0.97, 0.45)
        p = 1 / (1 + np.exp(-np.log(p / (1 - p)) / temperature))
        return np.where(labels > 0, p[:, None], 1 - p[:, None]).astype(np.float32)

    reference, candidate = probabilities(30, 1.0), probabilities(36, 3.0)
    raw = scoring.paired(
        scoring.image_losses(reference, labels, False)
        - scoring.image_losses(candidate, labels, False)
    )
    assert raw.loss_gain < 0
    calibrated = scoring.compare(reference, candidate, labels, False)
    assert calibrated.loss_gain > 0 and calibrated.clear
    assert not scoring.compare(candidate, reference, labels, False).clear
    # Calibration never hurts: the temperature grid holds 1.
    for p in (reference, candidate):
        assert (
            scoring.calibrated_losses(p, labels, False).mean()
            <= scoring.image_losses(p, labels, False).mean()
        )


def test_each_fold_is_judged_by_a_choice_made_without_it() -> None:
    # Three candidates (rows) over six images in three folds: candidate 2 is best on fold 0's
    # images only, candidate 1 on the others.
    fold = np.array([0, 0, 1, 1, 2, 2])
    losses = np.array(
        [
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            [0.9, 0.9, 0.5, 0.5, 0.5, 0.5],
            [0.0, 0.0, 0.6, 0.6, 0.6, 0.6],
        ]
    )
    served, per_fold = scoring.cross_choice(losses, fold)
    assert served == 2  # the lowest mean over every image (0.4 against 0.63)
    assert per_fold == [1, 2, 2]  # without fold 0, candidate 1; without 1 or 2, candidate 2
    # Near ties (within LOSS_MARGIN) go to the earlier candidate.
    near = np.array([[0.5, 0.5], [0.4995, 0.4995]])
    assert scoring.cross_choice(near, np.array([0, 1])) == (0, [0, 0])
    # The default (candidate 0) stands unless beaten beyond the noise.
    assert scoring.unless_clearly_beaten(losses[:, 2:]) == 1  # 0.5 against 1.0 on every image
    noisy = np.array([[0.5, 0.5, 0.5, 0.5], [0.1, 0.9, 0.1, 0.8]])  # lower mean, but noise
    assert noisy[1].mean() < noisy[0].mean() and scoring.unless_clearly_beaten(noisy) == 0


def test_the_epochs_are_the_whole_schedule_unless_an_earlier_one_is_clearly_better() -> None:
    # 30 images in three folds; each fold's run has a held-out curve (epoch 0 is the start).
    # The true tag's probability after epochs 1, 2, 3: on fold 0's images 0.9, 0.7, 0.7; on
    # the others 0.7 throughout. Without fold 0's images nothing beats the whole schedule (3);
    # with them, epoch 1 does on every one of them.
    labels = np.eye(2, dtype=np.float32)[np.arange(30) % 2]
    fold = np.arange(30) // 10
    folds = [np.flatnonzero(fold == k) for k in range(3)]

    def curve(*right: float) -> list[np.ndarray]:
        held = labels[:10]
        return [np.where(held > 0, p, 1 - p).astype(np.float32) for p in (0.5, *right)]

    curves = [curve(0.9, 0.7, 0.7), curve(0.7, 0.7, 0.7), curve(0.7, 0.7, 0.7)]
    runs = [SimpleNamespace(curve=c, multilabel=False) for c in curves]
    half = np.full(labels.shape, 0.5)
    reference = finetune.Reference(fold, folds, [], half, half, 0.5)
    alone = FineTuneConfig(ensemble=False, mirror=False)
    choice = finetune.choose_epochs(reference, runs, alone, labels)  # type: ignore[arg-type]
    assert choice.per_fold == [3, 1, 1]
    assert choice.served == 1
    np.testing.assert_array_equal(choice.probabilities[folds[0]], curves[0][3])
    np.testing.assert_array_equal(choice.probabilities[folds[1]], curves[1][1])
    # With the ensemble, each image's candidate is the mean with its Regular branch.
    both = finetune.choose_epochs(reference, runs, FineTuneConfig(mirror=False), labels)  # type: ignore[arg-type]
    expected = 0.5 * (curves[0][both.per_fold[0]] + 0.5)
    np.testing.assert_allclose(both.probabilities[folds[0]], expected)


def test_image_losses_are_the_cross_entropy_per_image() -> None:
    labels = np.eye(2, dtype=np.float32)
    probabilities = np.array([[0.8, 0.2], [0.4, 0.6]], dtype=np.float32)
    expected = -(np.log(0.8) + np.log(0.6)) / 2
    assert scoring.image_losses(probabilities, labels, False).mean() == pytest.approx(expected)
    binary = -(np.log(0.8) + np.log(0.8) + np.log(0.6) + np.log(0.6)) / 4
    assert scoring.image_losses(probabilities, labels, True).mean() == pytest.approx(binary)


# Fine-tuning real photos


def test_fine_tuning_is_deterministic_for_a_seed(flowers: Flowers, tuned: AdvancedResult) -> None:
    again = run(flowers, budget=300)
    assert tuned.steps == again.steps > 0 and tuned.epochs == again.epochs == 1
    assert tuned.stopped_by == "max-epochs"
    assert tuned.kept == again.kept and tuned.best_epoch == again.best_epoch
    assert tuned.fine_tuned is not None and again.fine_tuned is not None
    first, second = tuned.fine_tuned.state_dict(), again.fine_tuned.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert len(tuned.history) == 5  # one per fold
    for mine, theirs in zip(tuned.history, again.history, strict=True):
        assert [h.held_out_loss for h in mine] == [h.held_out_loss for h in theirs]
        assert mine[1].train_loss == theirs[1].train_loss
    assert tuned.fine_tuned_probabilities is not None
    assert again.fine_tuned_probabilities is not None
    assert np.array_equal(tuned.fine_tuned_probabilities, again.fine_tuned_probabilities)
    # Training moved the weights of the last three stages and of the head convolution, not
    # the frozen trunk.
    fresh = build_backbone(LITE0).state_dict()
    moved = {
        k
        for k, v in fresh.items()
        if not torch.allclose(first[f"extractor.{k}"], v, atol=0, rtol=0)
    }
    assert moved, "fine-tuning changed nothing"
    split = ensemble.stage_starts(tuned.fine_tuned.extractor.network)[-3]
    assert any(k.startswith(f"network._blocks.{split}.") for k in moved)
    assert all(k.startswith(("network._conv_head.", "network._blocks.")) for k in moved)
    assert all(int(k.split(".")[2]) >= split for k in moved if k.startswith("network._blocks."))


def test_the_split_head_is_the_starting_point_and_a_tie_keeps_regular(
    flowers: Flowers,
) -> None:
    frozen = FineTuneConfig(max_epochs=1, backbone_lr=0.0, head_lr=0.0, mirror=False)
    result = run(flowers, budget=300, config=frozen)
    assert result.steps > 0 and result.best_epoch == 1
    assert result.fine_tuned is not None and result.fine_tuned_probabilities is not None
    # Before training, each fold's network predicts what the Regular head trained on the same
    # folds predicts from the cached features; with a zero learning rate nothing moves, so the
    # ensemble of the "tuned" branch and the Regular branch (no mirror image here) predicts
    # the same: a tie (the losses differ by float noise only), and ties go to Regular.
    assert len(result.history) == 5
    for k, history in enumerate(result.history):
        held = result.fold == k
        assert history[0].held_out_score == scoring.score(
            result.regular_probabilities[held], flowers.labels[held], False
        )
    np.testing.assert_allclose(
        result.fine_tuned_probabilities, result.regular_probabilities, atol=1e-4, rtol=0
    )
    assert result.fine_tuned_score == result.regular_score
    assert result.comparison is not None and abs(result.comparison.loss_gain) < 1e-4
    assert result.kept == "Regular"
    fresh = build_backbone(LITE0).state_dict()
    tuned = result.fine_tuned.state_dict()
    assert all(torch.equal(tuned[f"extractor.{k}"], v) for k, v in fresh.items())
    # The served model is Regular's: its head was trained on every image.
    regular_weight, regular_bias = flowers.regular.head.folded()
    assert np.array_equal(result.net.linear.weight.numpy(), regular_weight)
    assert np.array_equal(result.net.linear.bias.numpy(), regular_bias)
    # Every image was scored out of fold, the folds stratified by tag.
    assert result.fold.shape == (len(flowers.images),)
    assert set(result.fold.tolist()) == set(range(5))
    for k in range(5):
        assert np.all(flowers.labels[result.fold == k].sum(axis=0) >= 1)


def test_a_kept_fine_tuning_is_trained_again_on_every_image(
    flowers: Flowers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring.Comparison, "clear", property(lambda self: True))
    refit = run(flowers, budget=300)
    once = run(flowers, budget=300, config=FineTuneConfig(max_epochs=1, refit=False))
    assert refit.kept == once.kept == "FineTuned"
    assert refit.refit_images == len(flowers.images) and once.refit_images == 0
    assert refit.net is refit.fine_tuned and once.net is once.fine_tuned
    # The decision is the folds' either way; the served network is the refit's.
    assert refit.fine_tuned_score == once.fine_tuned_score
    assert refit.fine_tuned_probabilities is not None and once.fine_tuned_probabilities is not None
    assert np.array_equal(refit.fine_tuned_probabilities, once.fine_tuned_probabilities)
    again, first = refit.net.state_dict(), once.net.state_dict()
    assert again.keys() == first.keys()
    differ = {k for k in first if not torch.equal(first[k], again[k])}
    assert "linear.weight" in differ and any(k.startswith("extractor.") for k in differ)
    assert not any(k.startswith(("regular_tail.", "regular_linear.")) for k in differ)
    # The history (held-out loss per epoch) is the folds'.
    for mine, theirs in zip(refit.history, once.history, strict=True):
        assert [h.held_out_loss for h in mine] == [h.held_out_loss for h in theirs]


def test_zero_budget_returns_regular_at_once(flowers: Flowers) -> None:
    result = run(flowers, budget=0)
    assert result.kept == "Regular" and result.stopped_by == "budget"
    assert result.epochs == 0 and result.steps == 0 and result.fine_tuned is None
    assert result.history == []  # no fold started
    assert 0.0 <= result.regular_score <= 1.0
    assert result.regular_probabilities.shape == (len(flowers.images), len(CLASSES))
    # The iteration reports Regular's own 5-fold cross-validation, the model served.
    probabilities, folds = artifacts.reported(flowers.regular, result)
    assert probabilities is flowers.regular.probabilities and folds is flowers.regular.folds


def test_the_metrics_describe_the_model_served(flowers: Flowers, tuned: AdvancedResult) -> None:
    regular = flowers.regular
    assert artifacts.reported(regular, None) == (regular.probabilities, regular.folds)
    kept = replace(tuned, kept="FineTuned")
    probabilities, folds = artifacts.reported(regular, kept)
    assert probabilities is kept.fine_tuned_probabilities and folds is kept.fold
    dropped = replace(tuned, kept="Regular")
    assert artifacts.reported(regular, dropped)[0] is regular.probabilities


def test_the_budget_stops_training_between_steps(
    flowers: Flowers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The budget's verdict, without a wall clock: three steps fit, then none (each fold
    # trains 19 or 20 images, one batch, so one step per epoch).
    verdicts = iter([True] * 3)
    monkeypatch.setattr(tuner.Tuner, "time_for", lambda self, items: next(verdicts, False))
    endless = FineTuneConfig(max_epochs=100, patience=100, batch_size=32)
    result = run(flowers, budget=300, config=endless)
    assert result.stopped_by == "budget" and result.kept == "Regular"
    first, second = result.history
    assert [h.epoch for h in first] == [0, 1, 2, 3]  # the start, then one record per step
    assert [h.epoch for h in second] == [0]  # the second fold had no time for a step
    assert result.fine_tuned is None and result.steps == 0


def test_the_kept_network_exports_to_onnx(
    flowers: Flowers, tuned: AdvancedResult, tmp_path: Path
) -> None:
    assert tuned.fine_tuned is not None and tuned.fine_tuned_probabilities is not None
    if tuned.kept == "FineTuned":
        assert tuned.net is tuned.fine_tuned
    else:
        regular_weight, _ = flowers.regular.head.folded()
        assert np.array_equal(tuned.net.linear.weight.numpy(), regular_weight)
    preprocessing = Preprocessing.for_size(SIZE)
    held = np.stack([preprocessing(image) for image in flowers.images])
    for name, net in (("fine_tuned", tuned.fine_tuned), ("kept", tuned.net)):
        assert not net.training and next(net.parameters()).device.type == "cpu"
        path = tmp_path / f"{name}.onnx"
        export_onnx(net, path, SIZE)
        assert verify_onnx(path, net, held) < 1e-4
    with torch.inference_mode():
        served = tuned.fine_tuned(torch.from_numpy(held)).numpy()
    assert served.shape == (len(flowers.images), len(CLASSES))
    np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-5)
    # The served network averages the tuned branch (its own head) and the frozen backbone
    # with the Regular head, each over the image and its mirror image.
    net = tuned.fine_tuned
    assert isinstance(net, ensemble.EnsembleNet) and net.mirror
    frozen = build_backbone(LITE0)
    expected = np.zeros_like(served)
    with torch.inference_mode():
        for x in (torch.from_numpy(held), torch.flip(torch.from_numpy(held), dims=[3])):
            branch = torch.softmax(net.linear(net.extractor(x)), dim=1).numpy()
            regular = flowers.regular.head.predict(frozen(x).numpy())
            expected += 0.25 * (branch + regular)
    np.testing.assert_allclose(served, expected, atol=1e-4, rtol=0)
    assert not np.allclose(branch, regular, atol=1e-3)  # the branches differ


def test_multilabel_fine_tuning_scores_mean_average_precision(flowers: Flowers) -> None:
    # Two overlapping tags on the same photos ("daisy or rose", "rose or sunflower"): the
    # features do not depend on the labels, so Regular reuses them.
    classes = flowers.labels.argmax(axis=1)
    labels = np.stack([classes <= 1, classes >= 1], axis=1).astype(np.float32)
    known = {i: flowers.regular.features[i] for i in range(len(flowers.images))}
    spec = TrainingSpec.create(flowers.images, labels, True, LITE0, SIZE, seed=0)
    regular = recipe.train_regular(spec, known_features=known)
    result = fine_tune(spec, regular, 300, config=ONE_EPOCH)
    assert result.metric == "meanAveragePrecision" and result.steps > 0
    assert result.fine_tuned is not None and result.fine_tuned.multilabel
    assert result.fine_tuned_probabilities is not None and result.fine_tuned_score is not None
    for probabilities in (result.regular_probabilities, result.fine_tuned_probabilities):
        assert probabilities.shape == (len(flowers.images), 2)
        assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert result.regular_score == scoring.score(result.regular_probabilities, labels, True)
    assert 0.0 <= result.fine_tuned_score <= 1.0
    comparison = scoring.compare(
        result.regular_probabilities, result.fine_tuned_probabilities, labels, True
    )
    assert (result.kept == "FineTuned") == comparison.clear
    assert result.comparison == comparison
    for k in range(int(result.fold.max()) + 1):  # every tag is represented in every fold
        assert np.all(labels[result.fold == k].sum(axis=0) >= 1)


def test_train_advanced_reuses_known_features(flowers: Flowers) -> None:
    known = {i: flowers.regular.features[i] for i in range(len(flowers.images))}
    spec = TrainingSpec.create(flowers.images, flowers.labels, False, LITE0, SIZE, 0, 0.0)
    regular, advanced = recipe.train_advanced(spec, known_features=known)
    assert regular.computed_indices == []
    assert np.array_equal(regular.features, flowers.regular.features)
    assert advanced.kept == "Regular" and advanced.steps == 0


def test_regular_depends_on_the_images_not_on_the_iterations_seed(flowers: Flowers) -> None:
    # The folds are seeded by the images (`split_seed`), so another iteration on the same
    # images (another seed) makes the same choices and trains the same head: Advanced serving
    # Regular serves what a Regular iteration serves.
    known = {i: flowers.regular.features[i] for i in range(len(flowers.images))}

    def regular(seed: int, split: int) -> recipe.RegularResult:
        spec = TrainingSpec.create(
            flowers.images, flowers.labels, False, LITE0, SIZE, seed, split_seed=split
        )
        return recipe.train_regular(spec, known_features=known)

    other_seed = regular(seed=7, split=0)
    assert np.array_equal(other_seed.cross_validation.fold, flowers.regular.cross_validation.fold)
    assert np.array_equal(other_seed.probabilities, flowers.regular.probabilities)
    assert np.array_equal(other_seed.head.folded()[0], flowers.regular.head.folded()[0])
    other_split = regular(seed=0, split=1)
    assert not np.array_equal(
        other_split.cross_validation.fold, flowers.regular.cross_validation.fold
    )
    ids = [f"image-{i}" for i in range(10)]
    assert split_seed(ids) == split_seed(ids[::-1]) != split_seed(ids[:-1])


def test_advanced_on_a_stacked_backbone_tunes_the_primary_and_serves_every_part(
    flowers: Flowers, tmp_path: Path
) -> None:
    # Regular reads both backbones of a stacked name (Lite0 twice keeps it cheap; the choice
    # forced): fine-tuning starts from heads on the primary's features only, and the served
    # ensemble's Regular branch reads the companion's features of the input and its mirror.
    name = f"{LITE0}+{LITE0}"
    spec = TrainingSpec.create(flowers.images, flowers.labels, False, name, SIZE, seed=0)
    features = np.concatenate([flowers.regular.features] * 2, axis=2)
    plain = recipe.train_regular(spec, known_features=dict(enumerate(features)))
    validation = plain.cross_validation
    both = next(c for c in validation.candidates if c.parts == 2 and c.views == 2)
    validation = replace(validation, chosen=both)
    head = train_head(validation.inputs(features), flowers.labels, False, l2=both.l2)
    regular = replace(plain, backbone=name, head=head, cross_validation=validation)
    assert validation.primary.parts == 1 and head.weight.shape[1] == 2560
    ref = finetune.reference(spec, regular, ONE_EPOCH)
    assert all(h.weight.shape[1] == 1280 for h in ref.heads)
    assert finetune.primary_head(spec, regular).weight.shape[1] == 1280
    result = fine_tune(spec, regular, budget_seconds=300, config=ONE_EPOCH)
    net = result.fine_tuned
    assert isinstance(net, ensemble.EnsembleNet) and len(net.companions) == 1
    assert net.backbone == name and result.net.backbone == name
    preprocessing = Preprocessing.for_size(SIZE)
    held = np.stack([preprocessing(image) for image in flowers.images[:6]])
    path = tmp_path / "stacked.onnx"
    export_onnx(net, path, SIZE)
    assert verify_onnx(path, net, held) < 1e-4
    frozen = build_backbone(name)
    expected = np.zeros((len(held), len(CLASSES)), dtype=np.float32)
    with torch.inference_mode():
        served = net(torch.from_numpy(held)).numpy()
        for x in (torch.from_numpy(held), torch.flip(torch.from_numpy(held), dims=[3])):
            branch = torch.softmax(net.linear(net.extractor(x)), dim=1).numpy()
            expected += 0.25 * (branch + head.predict(frozen(x).numpy()))
    np.testing.assert_allclose(served, expected, atol=1e-4, rtol=0)
