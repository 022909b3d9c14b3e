"""The shipped violence head: a linear classifier over pooled windows of frame features, in numpy.

Measured on the fight-surveillance clips (Aktı, Tataroğlu and Ekenel, IPTA 2019; see docs/models.md),
a window of consecutive samples described by the mean of its features, their spread, and how much
they change from one sample to the next (mean absolute difference: motion, as in Sudhakaran & Lanz
2017) separates fights from ordinary footage as well as the LSTM did and trains in a second,
deterministically. It runs without TensorFlow: the server scores it like the nudity head.

A video's samples are cut into windows of ``window`` samples every ``stride`` samples exactly like the
LSTM's (``temporal.window_bounds``; a short video is front-padded with its first sample, whose change
then reads as "no motion"), each window gets one probability, and a sample's score is the highest
probability of the windows that contain it (``temporal.sample_scores``).

Training takes labelled sequences at the site's sample interval. Because a viewer's samples can start
anywhere in a scene, training draws each clip at several phases of the sampling grid (the same clip
seen from 0 ms, 250 ms, 500 ms ...): more windows of the same footage, never across clips.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.ml.temporal import sample_scores, window_bounds

WEIGHTS_FILE = "pooled_head.npz"
STATISTICS = ("mean", "std", "absdiff")
# Combinations of replicas one window's most severe score describes at most (``PooledHead.most_severe_score``):
# exact up to 6 replicas per sample for the shipped window of 3, up to 2 for a window of 8 (4/s).
SEVERE_COMBINATIONS = 256


@dataclass(frozen=True)
class PooledConfig:
    """Shape of the pooled head; stored beside its weights and in the head version's config."""

    window: int = 3
    stride: int = 1
    statistics: tuple[str, ...] = STATISTICS
    regularisation: float = 0.01  # inverse L2 strength (scikit-learn's C) on standardised descriptors

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError("window must hold at least 2 samples (motion needs two)")
        if not 1 <= self.stride <= self.window:
            raise ValueError("stride must be between 1 and window")
        unknown = set(self.statistics) - set(STATISTICS)
        if unknown or not self.statistics:
            raise ValueError(f"statistics must be a non-empty subset of {STATISTICS}, got {self.statistics}")
        if self.regularisation <= 0:
            raise ValueError("regularisation must be positive")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PooledConfig:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        if "statistics" in known:
            known["statistics"] = tuple(known["statistics"])
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["statistics"] = list(self.statistics)
        return data


def describe_window(window: np.ndarray, statistics: tuple[str, ...]) -> np.ndarray:
    """One descriptor for ``window[W, D]``: the chosen statistics concatenated in ``STATISTICS`` order."""
    return describe_windows(window[np.newaxis], statistics)[0]


def describe_windows(windows: np.ndarray, statistics: tuple[str, ...]) -> np.ndarray:
    """``describe_window`` of each of ``windows[M, W, D]`` at once: ``[M, K]``."""
    parts = []
    for name in STATISTICS:
        if name not in statistics:
            continue
        if name == "mean":
            parts.append(windows.mean(axis=1))
        elif name == "std":
            parts.append(windows.std(axis=1))
        else:
            parts.append(np.abs(np.diff(windows, axis=1)).mean(axis=1))
    return np.concatenate(parts, axis=1).astype(np.float32)


def window_descriptors(features: np.ndarray, config: PooledConfig) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Descriptors ``[M, K]`` of a sequence's windows and the sample ranges they cover."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"expected a non-empty [samples, features] array, got shape {features.shape}")
    bounds = window_bounds(len(features), config.window, config.stride)
    descriptors = []
    for start, end in bounds:
        chunk = features[start:end]
        missing = config.window - len(chunk)
        if missing:
            chunk = np.concatenate([np.repeat(chunk[:1], missing, axis=0), chunk], axis=0)
        descriptors.append(describe_window(chunk, config.statistics))
    return np.stack(descriptors), bounds


@dataclass(frozen=True)
class PooledHead:
    """Standardisation and L2 logistic regression over window descriptors."""

    config: PooledConfig
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def window_probabilities(self, descriptors: np.ndarray) -> np.ndarray:
        logits = ((descriptors - self.mean) / self.scale) @ self.coef + self.intercept
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Per-sample scores for one unbroken run of samples in time order."""
        descriptors, bounds = window_descriptors(features, self.config)
        return sample_scores(len(features), bounds, self.window_probabilities(descriptors))

    def most_severe_score(self, replicas: Sequence[np.ndarray]) -> np.ndarray:
        """Per-sample scores for one unbroken run when each sample has agreeing replicas ``[R_i, D]``.

        Each window scores the combination of its samples' replicas that gives the highest
        probability (exactly: every combination is described, as ``window_descriptors`` pads and
        describes one), so a window scores at least what any one honest replica per sample gives
        it: a lie hides a window only if every replica of one of its samples lies. Beyond
        ``SEVERE_COMBINATIONS`` a window's samples with the most replicas drop those that raise
        the window logit least through the mean (the linear part of the descriptor).
        """
        window = self.config.window
        ranked = [self._ranked(np.asarray(r, dtype=np.float32)) for r in replicas]
        bounds = window_bounds(len(ranked), window, self.config.stride)
        best = np.empty(len(bounds), dtype=np.float32)
        for index, (start, end) in enumerate(bounds):
            options = _within_combinations(ranked[start:end], SEVERE_COMBINATIONS)
            choices = np.array(list(itertools.product(*(range(len(o)) for o in options))))
            windows = np.stack([options[i][choices[:, i]] for i in range(len(options))], axis=1)
            missing = window - windows.shape[1]
            if missing:
                windows = np.concatenate([np.repeat(windows[:, :1], missing, axis=1), windows], axis=1)
            best[index] = self.window_probabilities(describe_windows(windows, self.config.statistics)).max()
        return sample_scores(len(ranked), bounds, best)

    def _ranked(self, replicas: np.ndarray) -> np.ndarray:
        """The replicas, those that raise the window logit most through the mean first."""
        if len(replicas) == 1 or "mean" not in self.config.statistics:
            return replicas
        size = replicas.shape[1]  # the mean comes first in the descriptor (STATISTICS order)
        return replicas[np.argsort(-(replicas @ (self.coef[:size] / self.scale[:size])), kind="stable")]

    def save(self, directory: Path, report: dict[str, Any] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / WEIGHTS_FILE, "wb") as handle:
            np.savez(
                handle,
                config=np.array(json.dumps(self.config.to_dict())),
                mean=self.mean.astype(np.float32),
                scale=self.scale.astype(np.float32),
                coef=self.coef.astype(np.float32),
                intercept=np.float32(self.intercept),
            )


def _within_combinations(options: list[np.ndarray], limit: int) -> list[np.ndarray]:
    """Ranked ``options`` cut, longest first, until their combinations number at most ``limit``."""
    options = list(options)
    while math.prod(len(o) for o in options) > limit:
        longest = max(range(len(options)), key=lambda i: len(options[i]))
        options[longest] = options[longest][:-1]
    return options


def load_pooled_head(path: Path) -> PooledHead:
    """Load ``pooled_head.npz`` (``path`` is the file or the folder that holds it)."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    with np.load(path) as data:
        return PooledHead(
            config=PooledConfig.from_dict(json.loads(str(data["config"]))),
            mean=data["mean"],
            scale=data["scale"],
            coef=data["coef"],
            intercept=float(data["intercept"]),
        )


def fit_pooled_head(descriptors: np.ndarray, labels: np.ndarray, config: PooledConfig, seed: int = 0) -> PooledHead:
    """Fit standardisation + L2 logistic regression (lbfgs: deterministic for a given input), classes balanced."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(descriptors, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if set(np.unique(y)) != {0, 1}:
        raise ValueError(f"training needs both labels (0 and 1); found {sorted(set(y.tolist()))}")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    model = LogisticRegression(
        C=config.regularisation, class_weight="balanced", max_iter=2000, random_state=seed, solver="lbfgs"
    )
    model.fit((x - mean) / scale, y)
    return PooledHead(
        config=config,
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        coef=model.coef_[0].astype(np.float32),
        intercept=float(model.intercept_[0]),
    )
