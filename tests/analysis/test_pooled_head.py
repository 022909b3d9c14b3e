"""The pooled violence head (inference.ml.violence) and its k-fold training (inference.ml.pooled_training): pure."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from inference.heads import HeadScores, PooledRunner, measured_quality, per_frame_most_severe
from inference.ml.clip_features import ClipFeatures, phase_offsets_ms, sampled_features
from inference.ml.pooled_training import (
    PhasedClip,
    balanced_accuracy,
    calibration_table,
    cross_validate,
    stratified_folds,
    train_and_report,
)
from inference.ml.violence import (
    SEVERE_COMBINATIONS,
    PooledConfig,
    PooledHead,
    describe_window,
    load_pooled_head,
    window_descriptors,
)

FEATURES = 16


def synthetic_clips(per_label: int, seed: int = 0) -> list[PhasedClip]:
    """Fights move (features jump between samples), calm clips drift; the means are identical by design."""
    rng = np.random.default_rng(seed)
    clips = []
    for index in range(2 * per_label):
        label = index % 2
        phases = []
        for _phase in range(3):
            base = rng.uniform(1.0, 2.0, FEATURES)
            jitter = 0.8 if label else 0.05
            phases.append(np.clip(base + rng.normal(0, jitter, (6, FEATURES)), 0, 6).astype(np.float32))
        clips.append(PhasedClip(key=f"clip{index:02d}", label=label, phases=tuple(phases)))
    return clips


def test_config_refuses_shapes_that_cannot_work():
    with pytest.raises(ValueError, match="at least 2"):
        PooledConfig(window=1)
    with pytest.raises(ValueError, match="stride"):
        PooledConfig(window=3, stride=4)
    with pytest.raises(ValueError, match="statistics"):
        PooledConfig(statistics=("median",))
    with pytest.raises(ValueError, match="regularisation"):
        PooledConfig(regularisation=0)
    config = PooledConfig(window=4, stride=2, statistics=("mean", "absdiff"), regularisation=0.5)
    assert PooledConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_descriptors_pool_each_window_and_pad_short_runs_with_no_motion():
    features = np.arange(5 * 2, dtype=np.float32).reshape(5, 2)
    descriptor = describe_window(features[:3], ("mean", "std", "absdiff"))
    np.testing.assert_allclose(descriptor[:2], [2.0, 3.0])
    np.testing.assert_allclose(descriptor[2:4], features[:3].std(axis=0))
    np.testing.assert_allclose(descriptor[4:], [2.0, 2.0])

    descriptors, bounds = window_descriptors(features, PooledConfig(window=3))
    assert bounds == [(0, 3), (1, 4), (2, 5)] and descriptors.shape == (3, 6)

    # One sample padded to a window of three: no spread, no motion.
    short, short_bounds = window_descriptors(features[:1], PooledConfig(window=3))
    assert short_bounds == [(0, 1)]
    np.testing.assert_allclose(short[0], [0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="non-empty"):
        window_descriptors(np.zeros((0, 2)), PooledConfig())


def test_stratified_folds_hold_every_clip_once_with_both_labels_and_refuse_too_few():
    labels = np.array([0] * 12 + [1] * 8)
    folds = stratified_folds(labels, 4, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(20))
    assert all(labels[fold].sum() == 2 and (labels[fold] == 0).sum() == 3 for fold in folds)
    assert [f.tolist() for f in folds] == [f.tolist() for f in stratified_folds(labels, 4, seed=3)]
    with pytest.raises(ValueError, match="needs 5"):
        stratified_folds(np.array([0] * 10 + [1] * 4), 5, seed=0)


def test_balanced_accuracy_and_calibration_are_the_textbook_figures():
    y = np.array([1, 1, 1, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.2, 0.6, 0.1, 0.7])
    # recall 3/4, specificity 1/2
    assert balanced_accuracy(y, scores, 0.5) == pytest.approx(0.625)
    table = calibration_table(y, scores, bins=2)
    assert [row["count"] for row in table["bins"]] == [2, 4]
    assert table["bins"][1]["positive_rate"] == pytest.approx(0.75)
    assert table["brier"] == pytest.approx(np.mean((scores - y) ** 2), abs=1e-4)


def test_cross_validation_learns_motion_and_is_deterministic(tmp_path):
    clips = synthetic_clips(10)
    config = PooledConfig(window=3, regularisation=0.1)
    first = cross_validate(clips, config, folds=5, seed=0)
    assert first["balanced_accuracy_mean"] >= 0.9
    assert first["out_of_fold"]["roc_auc"] >= 0.9
    assert len(first["folds"]) == 5 and sum(fold["clips"] for fold in first["folds"]) == 20
    [[tn, fp], [fn, tp]] = first["out_of_fold"]["confusion_matrix"]
    assert tn + fp + fn + tp == 20
    assert cross_validate(clips, config, folds=5, seed=0)["out_of_fold_scores"] == first["out_of_fold_scores"]

    report = train_and_report(clips, config, tmp_path / "v1", folds=5, seed=0)
    assert (tmp_path / "v1" / "roc.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "v1" / "report.json").read_text())["folds"] == report["folds"]
    head = load_pooled_head(tmp_path / "v1")
    moving, calm = clips[1].phases[0], clips[0].phases[0]
    assert head.score(moving).max() > 0.5 > head.score(calm).max()


def test_training_refuses_a_single_label():
    clips = [c for c in synthetic_clips(6) if c.label == 1]
    with pytest.raises(ValueError, match="both labels"):
        cross_validate(clips, PooledConfig())


def test_the_runner_scores_unbroken_runs_separately(tmp_path):
    clips = synthetic_clips(10)
    train_and_report(clips, PooledConfig(window=3, regularisation=0.1), tmp_path / "v1", folds=2)
    runner = PooledRunner(head=load_pooled_head(tmp_path / "v1"))
    calm, moving = clips[0].phases[0][:3], clips[1].phases[0][:3]
    together = np.concatenate([calm, moving])
    # One run: windows straddle the boundary. With a hole between the two runs they never do.
    with_hole = runner.score(together, np.array([0, 1, 2, 10, 11, 12])).scores
    alone = np.concatenate([runner.head.score(calm), runner.head.score(moving)])
    np.testing.assert_allclose(with_hole, alone, rtol=1e-6)
    assert with_hole[:3].max() < 0.5 < with_hole[3:].min()


def test_sampled_features_pick_the_frame_nearest_each_phase_of_the_grid():
    frame_ms = np.arange(0, 2000, 40.0)
    codes = np.repeat(np.arange(len(frame_ms), dtype=np.uint8)[:, None], 3, axis=1)
    clip = ClipFeatures(frame_ms=frame_ms, codes=codes, duration_ms=2000.0)
    assert phase_offsets_ms(1000, 4) == [0.0, 250.0, 500.0, 750.0]
    at_zero = sampled_features(clip, 1000, 0.0)
    at_quarter = sampled_features(clip, 1000, 250.0)
    step = 6.0 / 255.0
    np.testing.assert_allclose(at_zero[:, 0] / step, [0, 25], atol=1e-3)
    # 250 ms lies between frames 6 (240 ms) and 7 (280 ms): the nearer one, 240 ms.
    np.testing.assert_allclose(at_quarter[:, 0] / step, [6, 31], atol=1e-3)
    with pytest.raises(ValueError):
        phase_offsets_ms(0, 4)


def test_measured_quality_states_each_kind_of_report_in_one_line():
    pooled = {
        "folds": [{}] * 5,
        "balanced_accuracy_mean": 0.6667,
        "balanced_accuracy_std": 0.0186,
        "clips": {"total": 240},
        "operating_point": {"threshold": 0.9, "precision": 0.729, "recall": 0.358},
    }
    assert measured_quality(pooled) == (
        "5-fold balanced accuracy 0.667 ± 0.019 on 240 clips; at threshold 0.9: precision 0.73, recall 0.36"
    )
    assert measured_quality({"test_clips": {"accuracy": 0.8, "n": 5}}) == "held-out accuracy 0.800 on 5 clips"
    assert measured_quality({}) == "no training report (weights from their package)"


def random_head(seed: int = 3, window: int = 3) -> PooledHead:
    rng = np.random.default_rng(seed)
    size = 3 * FEATURES
    return PooledHead(
        config=PooledConfig(window=window),
        mean=rng.normal(0, 1, size).astype(np.float32),
        scale=rng.uniform(0.5, 2.0, size).astype(np.float32),
        coef=rng.normal(0, 1, size).astype(np.float32),
        intercept=-1.0,
    )


@pytest.mark.parametrize("samples", [2, 5])
def test_the_most_severe_score_is_the_best_combination_of_replicas_per_window(samples):
    """Exact, not greedy: each window's probability is the highest over every choice of one replica per sample, so
    it is never below what any one replica per sample (an honest one) gives; one replica each is plain scoring."""
    head = random_head()
    rng = np.random.default_rng(7)
    replicas = [rng.uniform(0, 3, (int(rng.integers(1, 4)), FEATURES)).astype(np.float32) for _ in range(samples)]
    severe = head.most_severe_score(replicas)
    every_choice = [
        head.score(np.stack([options[i] for options, i in zip(replicas, choice, strict=True)]))
        for choice in itertools.product(*(range(len(r)) for r in replicas))
    ]
    np.testing.assert_allclose(severe, np.max(every_choice, axis=0), rtol=1e-6)
    first = [r[:1] for r in replicas]
    np.testing.assert_allclose(head.most_severe_score(first), head.score(np.concatenate(first)))


def test_a_window_with_too_many_combinations_keeps_the_replicas_that_raise_it_most_through_the_mean():
    head = random_head()
    rng = np.random.default_rng(8)
    crowded = rng.uniform(0, 3, (SEVERE_COMBINATIONS // 4 + 6, FEATURES)).astype(np.float32)  # x 2 x 2 > the limit
    through_mean = crowded @ (head.coef[:FEATURES] / head.scale[:FEATURES])
    kept = crowded[np.argsort(-through_mean)[: SEVERE_COMBINATIONS // 4]]
    others = [rng.uniform(0, 3, (2, FEATURES)).astype(np.float32) for _ in range(2)]
    np.testing.assert_allclose(head.most_severe_score([crowded, *others]), head.most_severe_score([kept, *others]))


def test_runners_score_the_most_severe_replica_per_head_kind():
    """The pooled runner scores each unbroken run on its own; a per-frame head keeps each sample's highest score."""
    head = random_head()
    rng = np.random.default_rng(9)
    replicas = [rng.uniform(0, 3, (2, FEATURES)).astype(np.float32) for _ in range(6)]
    positions = np.array([0, 1, 2, 5, 6, 7])
    scores = PooledRunner(head).score_most_severe(replicas, positions).scores
    np.testing.assert_allclose(scores[:3], head.most_severe_score(replicas[:3]))
    np.testing.assert_allclose(scores[3:], head.most_severe_score(replicas[3:]))

    class Brightness:
        def score(self, features: np.ndarray, positions: np.ndarray) -> HeadScores:
            return HeadScores(scores=features.mean(axis=1))

    per_frame = per_frame_most_severe(Brightness(), replicas, positions).scores
    np.testing.assert_allclose(per_frame, [r.mean(axis=1).max() for r in replicas], rtol=1e-6)


def test_past_the_combination_cap_a_crowd_of_replicas_can_push_the_honest_one_out_of_a_window():
    """Why a crowded window is never peer-carried (``trust.services.confirm_borderline_windows``): replicas that
    rank above the honest one through the mean but lower the window through its motion drop it from every sample."""
    size = 3 * FEATURES
    coef = np.zeros(size, dtype=np.float32)
    coef[0] = 1.0  # the mean of feature 0 raises the window a little ...
    coef[2 * FEATURES] = -10.0  # ... its motion (absdiff) lowers it a lot
    head = PooledHead(
        config=PooledConfig(window=3),
        mean=np.zeros(size, dtype=np.float32),
        scale=np.ones(size, dtype=np.float32),
        coef=coef,
        intercept=0.0,
    )
    honest = np.zeros((3, FEATURES), dtype=np.float32)
    crowd = 8  # 9 replicas per sample: 729 combinations, cut to 6 x 6 x 7
    replicas = []
    for t, lifted in enumerate([0.1, 1.1, 0.1]):
        liars = np.zeros((crowd, FEATURES), dtype=np.float32)
        liars[:, 0] = lifted
        replicas.append(np.concatenate([liars, honest[t : t + 1]]))
    assert np.prod([len(r) for r in replicas]) > SEVERE_COMBINATIONS
    assert np.all(head.most_severe_score(replicas) < head.score(honest))
