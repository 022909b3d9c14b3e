"""Training the pooled violence head with a fixed, stated protocol: stratified k-fold cross-validation over clips.

240 clips are too few for one held-out split to say much (one split of 60 clips moves balanced
accuracy by several points from seed to seed), so the report is k-fold: every clip is scored exactly
once by a head that never saw it, the figures are given per fold (their spread) and over all
out-of-fold scores (accuracy, balanced accuracy, precision, recall, ROC AUC, confusion matrix,
calibration). The shipped weights are then fitted on every clip with the same settings.

A clip is given as several sequences: the same footage sampled at the site's interval from several
phases of the sampling grid. Training uses all of them (augmentation); evaluation scores only the
first (phase 0, what a player sampling from the start of the clip sends), and a clip's score is its
highest window probability, as a verdict's is. Pure: no Django.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.ml.training import ROC_FILE, binary_metrics, write_roc_png
from inference.ml.violence import PooledConfig, PooledHead, fit_pooled_head, window_descriptors

REPORT_FILE = "report.json"
CALIBRATION_BINS = 5


@dataclass(frozen=True)
class PhasedClip:
    """One labelled clip sampled at the site's interval from several phases; ``phases[0]`` starts at 0 ms."""

    key: str
    label: int
    phases: tuple[np.ndarray, ...]


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Clip indices of each test fold: each label shuffled with ``seed`` and dealt round-robin."""
    labels = np.asarray(labels, dtype=int)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(folds)]
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        if len(members) < folds:
            raise ValueError(f"label {label} has {len(members)} clip(s); {folds}-fold cross-validation needs {folds}")
        for position, index in enumerate(rng.permutation(members)):
            parts[position % folds].append(int(index))
    return [np.asarray(sorted(part)) for part in parts]


def _training_set(clips: list[PhasedClip], indices: np.ndarray, config: PooledConfig) -> tuple[np.ndarray, np.ndarray]:
    descriptors, labels = [], []
    for index in indices:
        for sequence in clips[index].phases:
            windows, _bounds = window_descriptors(sequence, config)
            descriptors.append(windows)
            labels += [clips[index].label] * len(windows)
    return np.concatenate(descriptors), np.asarray(labels)


def clip_score(head: PooledHead, clip: PhasedClip) -> float:
    """The clip's verdict score: its highest window probability at phase 0."""
    return float(head.score(clip.phases[0]).max())


def fit_on_clips(clips: list[PhasedClip], indices: np.ndarray, config: PooledConfig, seed: int) -> PooledHead:
    descriptors, labels = _training_set(clips, indices, config)
    return fit_pooled_head(descriptors, labels, config, seed=seed)


def balanced_accuracy(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> float:
    y_true = np.asarray(y_true, dtype=int)
    predicted = np.asarray(y_score) >= threshold
    return float(0.5 * (predicted[y_true == 1].mean() + (~predicted[y_true == 0]).mean()))


def calibration_table(y_true: np.ndarray, y_score: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Reliability per equal-width score bin (mean score, observed positive rate, count) and the Brier score."""
    y_true = np.asarray(y_true, dtype=float)
    y_score = np.asarray(y_score, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(y_score, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        rows.append(
            {
                "bin": [round(float(edges[b]), 2), round(float(edges[b + 1]), 2)],
                "count": int(members.sum()),
                "mean_score": round(float(y_score[members].mean()), 4) if members.any() else None,
                "positive_rate": round(float(y_true[members].mean()), 4) if members.any() else None,
            }
        )
    return {"bins": rows, "brier": round(float(np.mean((y_score - y_true) ** 2)), 4)}


def cross_validate(
    clips: list[PhasedClip], config: PooledConfig, folds: int = 5, seed: int = 0, threshold: float = 0.5
) -> dict[str, Any]:
    """Out-of-fold clip scores and the report's figures (per fold and pooled)."""
    labels = np.asarray([clip.label for clip in clips], dtype=int)
    if set(labels.tolist()) != {0, 1}:
        raise ValueError("training needs clips of both labels")
    scores = np.zeros(len(clips))
    per_fold = []
    for fold, test in enumerate(stratified_folds(labels, folds, seed)):
        train = np.setdiff1d(np.arange(len(clips)), test)
        head = fit_on_clips(clips, train, config, seed)
        scores[test] = [clip_score(head, clips[index]) for index in test]
        fold_metrics = binary_metrics(labels[test], scores[test], threshold)
        per_fold.append(
            {
                "fold": fold,
                "clips": len(test),
                "balanced_accuracy": round(balanced_accuracy(labels[test], scores[test], threshold), 4),
                "accuracy": round(fold_metrics["accuracy"], 4),
                "roc_auc": round(fold_metrics["roc_auc"], 4),
            }
        )
    pooled = binary_metrics(labels, scores, threshold)
    balanced = [fold["balanced_accuracy"] for fold in per_fold]
    return {
        "protocol": (
            f"{folds}-fold stratified cross-validation over clips (seed {seed}); train on the other folds with "
            f"{len(clips[0].phases)} sampling phases per clip, score held-out clips at phase 0 (highest window)"
        ),
        "folds": per_fold,
        "balanced_accuracy_mean": round(float(np.mean(balanced)), 4),
        "balanced_accuracy_std": round(float(np.std(balanced)), 4),
        "balanced_accuracy_range": [min(balanced), max(balanced)],
        "out_of_fold": {**pooled, "balanced_accuracy": balanced_accuracy(labels, scores, threshold)},
        "calibration": calibration_table(labels, scores),
        "out_of_fold_scores": {clip.key: round(float(score), 5) for clip, score in zip(clips, scores, strict=True)},
    }


def train_and_report(
    clips: list[PhasedClip],
    config: PooledConfig,
    output_dir: Path,
    folds: int = 5,
    seed: int = 0,
    threshold: float = 0.5,
    operating_threshold: float | None = None,
    title: str = "violence",
) -> dict[str, Any]:
    """Cross-validate, fit the final head on every clip, write weights, ``report.json`` and the ROC PNG.

    Figures are at ``threshold`` (0.5: the classifier's own decision, classes balanced); the out-of-fold
    figures are repeated at ``operating_threshold``, the head's threshold where a verdict flags.
    """
    started = time.perf_counter()
    report = cross_validate(clips, config, folds=folds, seed=seed, threshold=threshold)
    head = fit_on_clips(clips, np.arange(len(clips)), config, seed)
    labels = np.asarray([clip.label for clip in clips])
    scores = np.asarray([report["out_of_fold_scores"][clip.key] for clip in clips])
    output_dir.mkdir(parents=True, exist_ok=True)
    head.save(output_dir)
    write_roc_png(labels, scores, output_dir / ROC_FILE, f"{title}: {folds}-fold out-of-fold clips")
    if operating_threshold is not None:
        operating = binary_metrics(labels, scores, operating_threshold)
        report["operating_point"] = {
            **operating,
            "balanced_accuracy": balanced_accuracy(labels, scores, operating_threshold),
        }
    report.update(
        {
            "config": config.to_dict(),
            "clips": {"total": len(clips), "positive": int(labels.sum()), "negative": int(len(labels) - labels.sum())},
            "threshold": threshold,
            "seed": seed,
            "train_seconds": round(time.perf_counter() - started, 2),
            "roc_png": ROC_FILE,
        }
    )
    (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return report
