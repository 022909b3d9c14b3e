"""Per-sample scores to flagged time segments ``[start_ms, end_ms, score]``.

What a moderator needs from a head is not a list of scores but the stretches of the video to
look at (AWS Rekognition's segments, Hive's per-time classes). A sample stands for the frame
shown from its time until the next sample time, so a run of samples at or above the threshold
becomes one interval. Pure functions: no Django, no TensorFlow.

The rules, applied in this order:

1. **Core and edges (hysteresis).** A segment needs at least one sample whose score is at or
   above ``threshold``; it then extends over neighbouring samples that stay at or above
   ``edge_threshold`` (defaults to ``threshold``), so a flagged scene is not cut at its fading
   edges. Both comparisons are inclusive: a score equal to the threshold counts.
2. **Merging.** Segments separated by at most ``max_gap_ms`` (missing samples included) merge
   into one whose score is the highest of the two.
3. **Minimum length.** Segments shorter than ``min_length_ms`` are dropped after merging.

Segments are clipped to ``[0, duration_ms]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Segment = tuple[int, int, float]


@dataclass(frozen=True)
class SegmentPolicy:
    """How a head's per-sample scores become segments; stored in the head version's config."""

    threshold: float
    edge_threshold: float | None = None
    max_gap_ms: int = 0
    min_length_ms: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {self.threshold}")
        if self.edge_threshold is not None and not 0.0 <= self.edge_threshold <= self.threshold:
            raise ValueError(f"edge_threshold must be within [0, threshold], got {self.edge_threshold}")
        if self.max_gap_ms < 0 or self.min_length_ms < 0:
            raise ValueError("max_gap_ms and min_length_ms must not be negative")

    @property
    def effective_edge_threshold(self) -> float:
        return self.threshold if self.edge_threshold is None else self.edge_threshold


def flagged_segments(
    sample_ms: Sequence[int],
    scores: Sequence[float],
    *,
    span_ms: int,
    duration_ms: int,
    policy: SegmentPolicy,
) -> list[Segment]:
    """Segments of the video where the head fires; ``span_ms`` is how long one sample stands for."""
    if len(sample_ms) != len(scores):
        raise ValueError(f"{len(sample_ms)} sample times but {len(scores)} scores")
    if span_ms <= 0:
        raise ValueError("span_ms must be positive")
    ordered = sorted(zip(sample_ms, scores, strict=True))
    runs = _runs_above_edge(ordered, span_ms, policy)
    intervals = [
        (start, min(end, duration_ms), top)
        for start, end, top, has_core in runs
        if has_core and min(end, duration_ms) > start
    ]
    merged = _merge_close(intervals, policy.max_gap_ms)
    return [(start, end, float(top)) for start, end, top in merged if end - start >= policy.min_length_ms]


def _runs_above_edge(
    ordered: list[tuple[int, float]], span_ms: int, policy: SegmentPolicy
) -> list[tuple[int, int, float, bool]]:
    """Maximal runs of time-contiguous samples at or above the edge threshold: (start, end, top score, has core).

    A sample covers ``[ms, min(ms + span_ms, next sample's ms))``; a sample below the edge threshold, or a
    hole in the samples, ends the run.
    """
    edge = policy.effective_edge_threshold
    runs: list[tuple[int, int, float, bool]] = []
    open_run = False
    for index, (ms, score) in enumerate(ordered):
        if score < edge:
            open_run = False
            continue
        next_ms = ordered[index + 1][0] if index + 1 < len(ordered) else ms + span_ms
        end = min(ms + span_ms, next_ms)
        is_core = score >= policy.threshold
        if open_run and ms <= runs[-1][1]:
            start, _end, top, has_core = runs[-1]
            runs[-1] = (start, end, max(top, score), has_core or is_core)
        else:
            runs.append((ms, end, score, is_core))
        open_run = True
    return runs


def _merge_close(intervals: list[tuple[int, int, float]], max_gap_ms: int) -> list[tuple[int, int, float]]:
    merged: list[tuple[int, int, float]] = []
    for start, end, top in intervals:
        if merged and start - merged[-1][1] <= max_gap_ms:
            prev_start, prev_end, prev_top = merged[-1]
            merged[-1] = (prev_start, max(prev_end, end), max(prev_top, top))
        else:
            merged.append((start, end, top))
    return merged


def top_frames(sample_ms: Sequence[int], scores: Sequence[float], count: int = 5) -> list[list[float]]:
    """The samples that drove a verdict, highest score first (ties: earlier first)."""
    ranked = sorted(zip(sample_ms, scores, strict=True), key=lambda item: (-item[1], item[0]))
    return [[int(ms), float(score)] for ms, score in ranked[:count]]
