"""Training a temporal head on labelled feature sequences, with an honest report.

Sequences (one per labelled clip or moderated video) are split into train, validation and
held-out test sets *by sequence*, stratified by label, so windows of one clip never sit on both
sides of a split. Validation drives early stopping; the test set is only used for the report:
accuracy, precision, recall, F1, ROC-AUC and the confusion matrix over held-out windows, the same
figures per clip (a clip's score is its highest window score, as a verdict's is), and a PNG of
the ROC curve (matplotlib, Agg backend: no display needed). Pure: no Django.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.ml.temporal import (
    TemporalConfig,
    build_temporal_model,
    make_windows,
    save_temporal_head,
    score_windows,
)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
# Folder names that mean "the category applies" in public datasets (RWF-2000: Fight/NonFight; Hockey Fights: fi/no).
POSITIVE_FOLDER_NAMES = {"fight", "fights", "fi", "violence", "violent", "positive", "yes"}
REPORT_FILE = "report.json"
ROC_FILE = "roc.png"
MIN_SEQUENCES_PER_LABEL = 3


@dataclass(frozen=True)
class LabelledSequence:
    """One clip's features in time order and its label (1: the category applies, 0: it does not)."""

    key: str
    label: int
    features: np.ndarray


@dataclass(frozen=True)
class TrainingOptions:
    test_fraction: float = 0.25
    validation_fraction: float = 0.2
    max_epochs: int = 80
    patience: int = 10
    batch_size: int = 16
    seed: int = 0
    decision_threshold: float = 0.5


@dataclass
class SequenceSplit:
    train: list[int] = field(default_factory=list)
    validation: list[int] = field(default_factory=list)
    test: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: int


def find_labelled_videos(folder: Path, positive: str | None = None) -> list[LabelledFile]:
    """Video files under ``folder`` labelled by the name of the folder that holds them.

    Two label folder names must occur (at any depth, so RWF-2000's ``train/Fight`` and ``val/Fight`` both
    count); ``positive`` names the one where the category applies, else a well-known name decides.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    names = sorted({p.parent.name for p in files if p.parent != folder})
    if len(names) != 2:
        raise ValueError(
            f"{folder} must hold videos in exactly two label folders (e.g. Fight/ and NonFight/); "
            f"found {names or 'none'}"
        )
    if positive is None:
        known = [name for name in names if name.lower() in POSITIVE_FOLDER_NAMES]
        if len(known) != 1:
            raise ValueError(f"say which of {names} is the positive label (--positive-label)")
        positive = known[0]
    if positive not in names:
        raise ValueError(f"positive label {positive!r} is not one of the label folders {names}")
    return [LabelledFile(path=p, label=int(p.parent.name == positive)) for p in files if p.parent != folder]


def split_sequences(labels: list[int], options: TrainingOptions) -> SequenceSplit:
    """Stratified split by sequence; every label gets at least one sequence in each part."""
    rng = np.random.default_rng(options.seed)
    split = SequenceSplit()
    for label in sorted(set(labels)):
        members = [i for i, value in enumerate(labels) if value == label]
        if len(members) < MIN_SEQUENCES_PER_LABEL:
            raise ValueError(
                f"label {label} has {len(members)} clip(s); at least {MIN_SEQUENCES_PER_LABEL} are needed "
                "for a train, validation and held-out test split"
            )
        order = [members[i] for i in rng.permutation(len(members))]
        n_test = max(1, round(len(order) * options.test_fraction))
        n_validation = max(1, round((len(order) - n_test) * options.validation_fraction))
        n_validation = min(n_validation, len(order) - n_test - 1)
        split.test += order[:n_test]
        split.validation += order[n_test : n_test + n_validation]
        split.train += order[n_test + n_validation :]
    if len(set(labels)) != 2:
        raise ValueError(f"training needs both labels (0 and 1); found {sorted(set(labels))}")
    return split


def roc_points(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    y_true = np.asarray(y_true, dtype=int)
    y_score = np.asarray(y_score, dtype=float)
    positives, negatives = int(y_true.sum()), int(len(y_true) - y_true.sum())
    if positives == 0 or negatives == 0:
        raise ValueError("a ROC curve needs both positive and negative examples")
    order = np.argsort(-y_score, kind="mergesort")
    scores, truth = y_score[order], y_true[order]
    distinct = np.where(np.diff(scores))[0]
    cut = np.r_[distinct, len(scores) - 1]
    tps = np.cumsum(truth)[cut]
    fps = (cut + 1) - tps
    return np.r_[0.0, fps / negatives], np.r_[0.0, tps / positives]


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    fpr, tpr = roc_points(y_true, y_score)
    return float(np.trapezoid(tpr, fpr))


def binary_metrics(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC-AUC (None with one class only) and ``[[tn, fp], [fn, tp]]``."""
    y_true = np.asarray(y_true, dtype=int)
    predicted = (np.asarray(y_score, dtype=float) >= threshold).astype(int)
    tp = int(((predicted == 1) & (y_true == 1)).sum())
    tn = int(((predicted == 0) & (y_true == 0)).sum())
    fp = int(((predicted == 1) & (y_true == 0)).sum())
    fn = int(((predicted == 0) & (y_true == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    has_both = 0 < y_true.sum() < len(y_true)
    return {
        "n": len(y_true),
        "accuracy": (tp + tn) / len(y_true) if len(y_true) else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "roc_auc": roc_auc(y_true, y_score) if has_both else None,
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "threshold": threshold,
    }


def write_roc_png(y_true: np.ndarray, y_score: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fpr, tpr = roc_points(y_true, y_score)
    figure, axes = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    axes.plot(fpr, tpr, color="#c0392b", linewidth=2, label=f"ROC (AUC = {np.trapezoid(tpr, fpr):.3f})")
    axes.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1, label="chance")
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="False positive rate", ylabel="True positive rate", title=title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _windows_and_labels(
    sequences: list[LabelledSequence], indices: list[int], config: TemporalConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of the chosen sequences, their labels, and which sequence each came from."""
    windows, labels, owners = [], [], []
    for index in indices:
        sequence_windows, _bounds = make_windows(sequences[index].features, config)
        windows.append(sequence_windows)
        labels += [sequences[index].label] * len(sequence_windows)
        owners += [index] * len(sequence_windows)
    return np.concatenate(windows), np.asarray(labels, dtype=np.float32), np.asarray(owners)


def _class_weights(labels: np.ndarray) -> dict[int, float]:
    counts = {label: int((labels == label).sum()) for label in (0, 1)}
    return {label: len(labels) / (2 * count) for label, count in counts.items() if count}


def train_temporal_head(
    sequences: list[LabelledSequence],
    config: TemporalConfig,
    output_dir: Path,
    options: TrainingOptions | None = None,
    title: str = "temporal head",
) -> dict[str, Any]:
    """Train, evaluate on held-out clips, save weights + report + ROC PNG into ``output_dir``; return the report."""
    import keras

    options = options or TrainingOptions()
    split = split_sequences([sequence.label for sequence in sequences], options)
    keras.utils.set_random_seed(options.seed)
    x_train, y_train, _ = _windows_and_labels(sequences, split.train, config)
    x_val, y_val, _ = _windows_and_labels(sequences, split.validation, config)
    x_test, y_test, test_owner = _windows_and_labels(sequences, split.test, config)

    model = build_temporal_model(x_train.shape[2], config)
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=options.patience, restore_best_weights=True)
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=options.max_epochs,
        batch_size=options.batch_size,
        class_weight=_class_weights(y_train),
        callbacks=[stopper],
        shuffle=True,
        verbose=0,
    )
    train_seconds = time.perf_counter() - started

    test_scores = score_windows(model, x_test)
    clip_scores = np.asarray([test_scores[test_owner == index].max() for index in split.test])
    clip_labels = np.asarray([sequences[index].label for index in split.test])
    output_dir.mkdir(parents=True, exist_ok=True)
    save_temporal_head(model, config, output_dir)
    write_roc_png(y_test, test_scores, output_dir / ROC_FILE, f"{title}: held-out windows")

    report = {
        "config": config.to_dict(),
        "options": asdict(options),
        "sequences": {part: len(getattr(split, part)) for part in ("train", "validation", "test")},
        "windows": {"train": len(x_train), "validation": len(x_val), "test": len(x_test)},
        "held_out_test_keys": sorted(sequences[index].key for index in split.test),
        "epochs_run": len(history.history["loss"]),
        "best_epoch": int(np.argmin(history.history["val_loss"])) + 1,
        "train_seconds": round(train_seconds, 3),
        "test_windows": binary_metrics(y_test, test_scores, options.decision_threshold),
        "test_clips": binary_metrics(clip_labels, clip_scores, options.decision_threshold),
        "roc_png": ROC_FILE,
    }
    (output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2))
    return report
