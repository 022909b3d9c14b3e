"""Which frames of a video are analysed.

A sample is named by the presentation time, in whole milliseconds, of one frame of the
rendition: one frame every ``interval_ms``, snapped to a frame boundary. The browser seeks
to the middle of that frame (``sample_ms + frame_ms / 2``) so that it lands on exactly
that frame; the server decodes the frame whose timestamp is nearest to ``sample_ms``.
"""

from __future__ import annotations

import math


def frame_duration_ms(fps: float) -> float:
    if not fps or fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"a positive frame rate is needed, got {fps!r}")
    return 1000.0 / fps


def sample_times_ms(duration_ms: int, fps: float, interval_ms: int) -> list[int]:
    """Presentation times of the sampled frames, in ascending order, first frame included."""
    if interval_ms <= 0:
        raise ValueError("interval_ms must be positive")
    frame_ms = frame_duration_ms(fps)
    n_frames = max(1, math.floor(duration_ms / frame_ms + 1e-6))
    times: list[int] = []
    k = 0
    while True:
        index = round(k * interval_ms / frame_ms)
        if index >= n_frames:
            return times
        times.append(round(index * frame_ms))
        k += 1


def seek_time_seconds(sample_ms: int, fps: float) -> float:
    """Where a browser seeks to show the sampled frame: the middle of its display interval."""
    return (sample_ms + frame_duration_ms(fps) / 2) / 1000.0
