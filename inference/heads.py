"""The head registry: how a head version's stored weights turn feature vectors into scores.

A category is data (a ``Head`` row and its ``HeadVersion`` rows); the code that computes its
scores is a *runner* named in the version's ``config["runner"]``. Adding a category is
registering a head and a version with an existing runner (a new nsfw-like dense head, another
LSTM trained with ``train_head``); a new kind of network is one ``@register_runner`` function
here, never an edit of the analysis pipeline. A runner scores plain features (``score``) and
samples that hold several agreeing replicas (``score_most_severe``: the choice that pushes the
decision furthest towards flagging; ``per_frame_most_severe`` does it for a head that scores each
sample alone).

Runners are loaded once per worker process and cached by weights path (a version's weights never
change once written). The Keras runner imports TensorFlow only when it is first used, inside a
worker: the web process never loads it.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from django.conf import settings

from inference.ml.nsfw_head import NsfwHead, load_nsfw_head
from inference.ml.temporal import load_temporal_head, score_sequence
from inference.models import HeadVersion


@dataclass(frozen=True)
class HeadScores:
    """Per-sample scores in [0, 1] (the category's probability), and optionally every class's."""

    scores: np.ndarray
    class_scores: list[dict[str, float]] = field(default_factory=list)


class HeadRunner(Protocol):
    def score(self, features: np.ndarray, positions: np.ndarray) -> HeadScores:
        """Score ``features[N, D]`` (time order); ``positions`` are the samples' indices among all sample times."""

    def score_most_severe(self, replicas: Sequence[np.ndarray], positions: np.ndarray) -> HeadScores:
        """Score N samples, each with its agreeing replicas ``[R_i, D]``, choosing those that push towards flagging.

        A lie can then hide content only if every agreeing replica of the samples concerned lies
        (docs/trust.md, defence 10); a replica that raises a false flag is stopped by the server's
        confirmation of every flag.
        """


RunnerLoader = Callable[[Path, dict], HeadRunner]
RUNNERS: dict[str, RunnerLoader] = {}


class UnknownRunnerError(LookupError):
    pass


def register_runner(name: str) -> Callable[[RunnerLoader], RunnerLoader]:
    """Decorator: ``loader(weights_path, config) -> HeadRunner`` becomes available as ``config["runner"] = name``."""

    def decorate(loader: RunnerLoader) -> RunnerLoader:
        RUNNERS[name] = loader
        return loader

    return decorate


def weights_location(head_version: HeadVersion) -> Path:
    return Path(settings.HYDRA_MODEL_ROOT) / head_version.weights_path


def load_runner(head_version: HeadVersion) -> HeadRunner:
    runner = head_version.config.get("runner", "")
    if runner not in RUNNERS:
        raise UnknownRunnerError(f"{head_version}: unknown runner {runner!r}; known: {sorted(RUNNERS)}")
    return _cached_runner(runner, str(weights_location(head_version)), json.dumps(head_version.config, sort_keys=True))


@functools.lru_cache(maxsize=32)
def _cached_runner(runner: str, weights: str, config_json: str) -> HeadRunner:
    return RUNNERS[runner](Path(weights), json.loads(config_json))


# --- Built-in runners ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassSumRunner:
    """A softmax classifier (nsfwjs's dense head); the score is the sum of the positive classes' probabilities."""

    predict: Callable[[np.ndarray], np.ndarray]
    class_names: tuple[str, ...]
    positive_classes: tuple[str, ...]

    def score(self, features: np.ndarray, positions: np.ndarray) -> HeadScores:
        probabilities = self.predict(features)
        columns = [self.class_names.index(name) for name in self.positive_classes]
        scores = np.clip(probabilities[:, columns].sum(axis=1), 0.0, 1.0)
        class_scores = [
            {name: round(float(p), 5) for name, p in zip(self.class_names, row, strict=True)} for row in probabilities
        ]
        return HeadScores(scores=scores.astype(np.float32), class_scores=class_scores)

    def score_most_severe(self, replicas: Sequence[np.ndarray], positions: np.ndarray) -> HeadScores:
        """Each sample scored by its replica with the highest class sum."""
        return per_frame_most_severe(self, replicas, positions)


def per_frame_most_severe(runner: HeadRunner, replicas: Sequence[np.ndarray], positions: np.ndarray) -> HeadScores:
    """``score_most_severe`` of a head that scores each sample alone: every replica scored, the highest kept."""
    counts = [len(r) for r in replicas]
    every = runner.score(np.concatenate(replicas), positions.repeat(counts))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    chosen = starts + np.array([np.argmax(every.scores[s : s + n]) for s, n in zip(starts, counts, strict=True)])
    class_scores = [every.class_scores[i] for i in chosen] if every.class_scores else []
    return HeadScores(scores=every.scores[chosen], class_scores=class_scores)


@functools.lru_cache(maxsize=8)
def nsfw_head(weights: Path) -> NsfwHead:
    """nsfwjs's dense head, loaded once per process whoever asks: the nudity runner and trust's agreement."""
    return load_nsfw_head(weights)


@register_runner("nsfwjs_dense")
def load_nsfwjs_dense(weights: Path, config: dict) -> ClassSumRunner:
    head = nsfw_head(weights)
    unknown = set(config["positive_classes"]) - set(head.class_names)
    if unknown:
        raise ValueError(f"positive classes {sorted(unknown)} are not among {head.class_names}")
    return ClassSumRunner(head.predict, head.class_names, tuple(config["positive_classes"]))


@dataclass(frozen=True)
class TemporalRunner:
    """The LSTM over sliding windows; windows never span a hole in the samples (missing features)."""

    model: object
    config: object

    def score(self, features: np.ndarray, positions: np.ndarray) -> HeadScores:
        scores = np.zeros(len(features), dtype=np.float32)
        for start, end in contiguous_runs(positions):
            scores[start:end] = score_sequence(self.model, features[start:end], self.config)
        return HeadScores(scores=scores)

    def score_most_severe(self, replicas: Sequence[np.ndarray], positions: np.ndarray) -> HeadScores:
        """The first replica of each sample: an LSTM's windows have no bound on a lie, so every window of it is
        borderline and its samples are computed by the server whoever holds them (``window_near_threshold``)."""
        return self.score(np.stack([r[0] for r in replicas]), positions)


def contiguous_runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges over which ``positions`` increase by exactly one."""
    if len(positions) == 0:
        return []
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    edges = [0, *breaks.tolist(), len(positions)]
    return list(itertools.pairwise(edges))


@register_runner("keras_lstm")
def load_keras_lstm(weights: Path, config: dict) -> TemporalRunner:
    model, temporal_config = load_temporal_head(weights)
    return TemporalRunner(model=model, config=temporal_config)


@dataclass(frozen=True)
class PooledRunner:
    """The pooled linear head over sliding windows (numpy, no TensorFlow); windows never span a hole."""

    head: object

    def score(self, features: np.ndarray, positions: np.ndarray) -> HeadScores:
        scores = np.zeros(len(features), dtype=np.float32)
        for start, end in contiguous_runs(positions):
            scores[start:end] = self.head.score(features[start:end])
        return HeadScores(scores=scores)

    def score_most_severe(self, replicas: Sequence[np.ndarray], positions: np.ndarray) -> HeadScores:
        """Each window scored by the combination of its samples' replicas with the highest probability."""
        scores = np.zeros(len(replicas), dtype=np.float32)
        for start, end in contiguous_runs(positions):
            scores[start:end] = self.head.most_severe_score(replicas[start:end])
        return HeadScores(scores=scores)


@register_runner("pooled_linear")
def load_pooled_linear(weights: Path, config: dict) -> PooledRunner:
    from inference.ml.violence import load_pooled_head

    return PooledRunner(head=load_pooled_head(weights))


def measured_quality(metrics: dict) -> str:
    """One line on how well a version was measured to work, for the admin and ``rollback_head``.

    The LSTM's report has one held-out split (``test_clips``); the pooled head's has k-fold cross-validation
    and the operating point at the head's threshold. nsfwjs's nudity head comes with no report of ours.
    """
    if "balanced_accuracy_mean" in metrics:
        line = (
            f"{len(metrics['folds'])}-fold balanced accuracy {metrics['balanced_accuracy_mean']:.3f} "
            f"± {metrics['balanced_accuracy_std']:.3f} on {metrics['clips']['total']} clips"
        )
        operating = metrics.get("operating_point")
        if operating:
            line += (
                f"; at threshold {operating['threshold']:g}: precision {operating['precision']:.2f}, "
                f"recall {operating['recall']:.2f}"
            )
        return line
    clips = metrics.get("test_clips")
    if clips:
        return f"held-out accuracy {clips['accuracy']:.3f} on {clips['n']} clips"
    return "no training report (weights from their package)"
