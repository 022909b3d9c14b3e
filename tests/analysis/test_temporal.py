"""The LSTM head on synthetic feature sequences, and the training report's figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference.ml.temporal import (
    TemporalConfig,
    build_temporal_model,
    load_temporal_head,
    make_windows,
    sample_scores,
    save_temporal_head,
    score_sequence,
    sequence_inputs,
    window_bounds,
)
from inference.ml.training import (
    LabelledSequence,
    TrainingOptions,
    binary_metrics,
    roc_auc,
    roc_points,
    split_sequences,
    train_temporal_head,
)

FEATURES = 16


def synthetic_sequence(label: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Same per-frame distribution for both labels; only how much neighbours differ tells them apart."""
    base = rng.uniform(1, 5, size=FEATURES)
    if label:
        steps = rng.normal(0, 1.5, size=(n, FEATURES))
        return np.clip(base + steps, 0, 6).astype(np.float32)
    drift = np.cumsum(rng.normal(0, 0.05, size=(n, FEATURES)), axis=0)
    noise_level = rng.normal(0, 1.5, size=(1, FEATURES))
    return np.clip(base + noise_level + drift, 0, 6).astype(np.float32)


def test_window_bounds_cover_the_tail_and_short_videos():
    assert window_bounds(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    assert window_bounds(11, 4, 3) == [(0, 4), (3, 7), (6, 10), (7, 11)]
    assert window_bounds(3, 5, 1) == [(0, 3)]
    assert window_bounds(0, 5, 1) == []


def test_difference_channel_is_the_change_from_the_previous_sample():
    features = np.array([[1.0, 2.0], [4.0, 2.0], [4.0, 0.0]], dtype=np.float32)
    both = sequence_inputs(features, "both")
    assert both.shape == (3, 4)
    np.testing.assert_array_equal(both[:, 2:], [[0, 0], [3, 0], [0, -2]])
    np.testing.assert_array_equal(sequence_inputs(features, "differences"), both[:, 2:])
    np.testing.assert_array_equal(sequence_inputs(features, "features"), features)


def test_short_videos_are_front_padded_with_a_still_first_sample():
    features = np.arange(6, dtype=np.float32).reshape(3, 2)
    windows, bounds = make_windows(features, TemporalConfig(window=5, stride=1))
    assert windows.shape == (1, 5, 4) and bounds == [(0, 3)]
    np.testing.assert_array_equal(windows[0, :3, :2], [[0, 1], [0, 1], [0, 1]])
    np.testing.assert_array_equal(windows[0, :3, 2:], np.zeros((3, 2)))


def test_a_sample_scores_the_highest_of_the_windows_containing_it():
    scores = sample_scores(6, [(0, 3), (2, 5), (3, 6)], np.array([0.2, 0.9, 0.4]))
    np.testing.assert_allclose(scores, [0.2, 0.2, 0.9, 0.9, 0.9, 0.4])


@pytest.mark.parametrize(
    "kwargs", [{"inputs": "pixels"}, {"window": 1}, {"window": 4, "stride": 5}, {"stride": 0}, {"dropout": 1.0}]
)
def test_bad_temporal_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        TemporalConfig(**kwargs)


def test_untrained_model_scores_every_sample_in_range_and_survives_a_save_round_trip(tmp_path):
    config = TemporalConfig(window=4, stride=2, projection_units=8, lstm_units=4)
    model = build_temporal_model(FEATURES * 2, config)
    features = synthetic_sequence(1, 9, np.random.default_rng(1))
    scores = score_sequence(model, features, config)
    assert scores.shape == (9,) and np.all((scores >= 0) & (scores <= 1))
    save_temporal_head(model, config, tmp_path / "head")
    loaded, loaded_config = load_temporal_head(tmp_path / "head")
    assert loaded_config == config
    np.testing.assert_allclose(score_sequence(loaded, features, loaded_config), scores, atol=1e-6)


def test_metrics_match_hand_computed_values():
    y_true = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    y_score = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.4, 0.7])
    metrics = binary_metrics(y_true, y_score, threshold=0.5)
    assert metrics["confusion_matrix"] == [[3, 1], [1, 3]]
    assert metrics["accuracy"] == 0.75 and metrics["precision"] == 0.75 and metrics["recall"] == 0.75
    # 16 positive/negative pairs, 14 ranked correctly (0.3 < 0.6 and 0.3 < 0.4 are wrong).
    assert roc_auc(y_true, y_score) == pytest.approx(14 / 16)
    fpr, tpr = roc_points(y_true, y_score)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1


def test_roc_auc_counts_ties_as_half():
    assert roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)


def test_split_is_by_sequence_stratified_and_refuses_too_few_clips():
    labels = [0] * 8 + [1] * 8
    split = split_sequences(labels, TrainingOptions(seed=3))
    parts = [split.train, split.validation, split.test]
    assert sorted(split.train + split.validation + split.test) == list(range(16))
    for part in parts:
        assert {labels[i] for i in part} == {0, 1}
    with pytest.raises(ValueError, match="at least 3"):
        split_sequences([0, 0, 0, 1, 1], TrainingOptions())
    with pytest.raises(ValueError, match="both labels"):
        split_sequences([1, 1, 1, 1], TrainingOptions())


def test_training_on_difference_inputs_learns_motion_alone(tmp_path):
    """Both labels look alike frame by frame; only the change between neighbours tells them apart."""
    rng = np.random.default_rng(7)
    sequences = [
        LabelledSequence(key=f"{label}-{i}", label=label, features=synthetic_sequence(label, 8, rng))
        for label in (0, 1)
        for i in range(12)
    ]
    config = TemporalConfig(window=4, stride=2, inputs="differences", projection_units=16, lstm_units=8, dropout=0.1)
    report = train_temporal_head(sequences, config, tmp_path / "v1", TrainingOptions(max_epochs=60, batch_size=8))
    assert report["test_clips"]["accuracy"] >= 0.8
    assert report["test_windows"]["roc_auc"] >= 0.8
    assert report["sequences"] == {"train": 14, "validation": 4, "test": 6}
    assert 1 <= report["best_epoch"] <= report["epochs_run"] <= 60
    written = json.loads((tmp_path / "v1" / "report.json").read_text())
    assert written["test_windows"]["confusion_matrix"] == report["test_windows"]["confusion_matrix"]
    assert (tmp_path / "v1" / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "v1" / "model.keras").exists()
