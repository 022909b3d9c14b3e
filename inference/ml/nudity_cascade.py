"""Nudity as a cascade: the cheap per-frame screen proposes segments, a larger network confirms them.

Measured on real harmless footage (docs/models.md), the screen (nsfwjs's MobileNetV2 head, P(porn) +
P(hentai) >= 0.7) flags about one surveillance clip in five, and neither a sustained-run rule nor a
calibrated threshold brings that near 1% without giving up what the screen catches. The screen stays
as it is (its sensitivity is untouched: every segment it finds is still a candidate); a candidate
segment stands only when ``min_confirmed`` of its samples are flagged by the screen *and* by the
confirmer (nsfwjs's InceptionV3, ``nsfw_confirm``), which the server runs on those frames only.
Pure: no Django, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from inference.ml.segments import Segment

DEFAULT_MIN_CONFIRMED = 2


def frames_to_confirm(sample_ms: Sequence[int], screen_scores: Sequence[float], threshold: float) -> list[int]:
    """The sample times the confirmer must score: those where the screen reached the threshold."""
    if len(sample_ms) != len(screen_scores):
        raise ValueError(f"{len(sample_ms)} sample times but {len(screen_scores)} scores")
    return [int(ms) for ms, score in zip(sample_ms, screen_scores, strict=True) if score >= threshold]


def confirmed_segments(
    segments: Sequence[Segment],
    confirm_scores: Mapping[int, float],
    threshold: float,
    min_confirmed: int = DEFAULT_MIN_CONFIRMED,
) -> list[Segment]:
    """The screen's segments in which at least ``min_confirmed`` screened samples also reach ``threshold``
    on the confirmer. ``confirm_scores`` maps each sample time of ``frames_to_confirm`` to its score; a
    screened sample the confirmer did not score counts as not confirmed."""
    if min_confirmed < 1:
        raise ValueError("min_confirmed must be at least 1")
    kept = []
    for start, end, top in segments:
        confirmed = sum(1 for ms, score in confirm_scores.items() if start <= ms < end and score >= threshold)
        if confirmed >= min_confirmed:
            kept.append((start, end, top))
    return kept
