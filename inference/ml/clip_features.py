"""Every frame's CNN-chunk features of a labelled clip, computed once and cached on disk.

Measuring which sampling a head needs (1, 4, 8 frames per second, bursts around sample times) means
looking at the same clip at many rates. Decoding and running the CNN once per *frame* and choosing
frames afterwards costs one pass, whatever rates are tried. The features are quantised exactly like
browsers' (uint8 over [0, 6]), and frames are painted the browser's way (``frames.frame_to_rgb``),
so a head learns what it will later be fed.

The cache is one ``.npz`` per clip under a folder named by the CNN's content hash, keyed by the
file's sha256: a renamed file is not decoded again, and another CNN never reads these vectors.
Pure: no Django; Keras is imported only when something must be computed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from inference.ml import cnn
from inference.ml.frames import FrameDecodeError, decode_frames_at, frame_time_ms, frame_to_rgb, open_video_stream
from inference.ml.quantise import dequantise, quantise

DECODE_BATCH = 32


@dataclass(frozen=True)
class ClipFeatures:
    """One clip: the presentation time of every decoded frame (ascending) and its uint8 feature codes."""

    frame_ms: np.ndarray  # float64[N]
    codes: np.ndarray  # uint8[N, 1280]
    duration_ms: float

    @property
    def features(self) -> np.ndarray:
        return dequantise(self.codes)

    def nearest(self, times_ms: np.ndarray) -> np.ndarray:
        """Index of the frame whose time is nearest to each requested time (earlier frame on ties)."""
        times = np.asarray(times_ms, dtype=np.float64)
        right = np.clip(np.searchsorted(self.frame_ms, times), 0, len(self.frame_ms) - 1)
        left = np.clip(right - 1, 0, len(self.frame_ms) - 1)
        pick_left = np.abs(self.frame_ms[left] - times) <= np.abs(self.frame_ms[right] - times)
        return np.where(pick_left, left, right)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _rgb_batches(path: Path) -> Iterator[tuple[list[float], np.ndarray]]:
    """Every frame in decoding order, painted like the browser, in batches of ``DECODE_BATCH``."""
    with open_video_stream(path) as (container, stream):
        times: list[float] = []
        frames: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                times.append(frame_time_ms(frame))
                frames.append(frame_to_rgb(frame))
                if len(frames) == DECODE_BATCH:
                    yield times, np.stack(frames)
                    times, frames = [], []
        except av.error.FFmpegError as exc:
            raise FrameDecodeError(f"cannot decode {path}: {exc}") from exc
        if frames:
            yield times, np.stack(frames)


def compute_clip_features(path: Path, artefact_dir: Path, step_ms: float | None = None) -> ClipFeatures:
    """Run the CNN chunk on every frame of ``path`` (``step_ms=None``) or on the frame nearest to each multiple
    of ``step_ms`` (then ``frame_ms`` holds those multiples); features are quantised like browsers'."""
    model = cnn.cached_feature_extractor(str(artefact_dir))
    if step_ms is None:
        times: list[float] = []
        codes: list[np.ndarray] = []
        for batch_times, batch in _rgb_batches(Path(path)):
            times += batch_times
            codes.append(quantise(cnn.compute_features(model, batch)))
        if not times:
            raise FrameDecodeError(f"{path} has no decodable frames")
        order = np.argsort(times, kind="stable")
        frame_ms = np.asarray(times, dtype=np.float64)[order]
        step = float(np.median(np.diff(frame_ms))) if len(frame_ms) > 1 else 0.0
        return ClipFeatures(
            frame_ms=frame_ms, codes=np.concatenate(codes)[order], duration_ms=float(frame_ms[-1] + step)
        )
    if step_ms <= 0:
        raise ValueError("step_ms must be positive")
    duration_ms = _duration_ms(Path(path))
    grid = np.arange(0.0, duration_ms, step_ms)
    codes = [
        quantise(
            cnn.compute_features(model, decode_frames_at(path, grid[start : start + DECODE_BATCH].astype(int), None))
        )
        for start in range(0, len(grid), DECODE_BATCH)
    ]
    return ClipFeatures(frame_ms=grid, codes=np.concatenate(codes), duration_ms=duration_ms)


def _duration_ms(path: Path) -> float:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FrameDecodeError(f"{path} has no video stream")
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base * 1000)
            if container.duration is not None:
                return container.duration / 1000.0
    except (av.error.FFmpegError, OSError) as exc:
        raise FrameDecodeError(f"cannot open {path}: {exc}") from exc
    raise FrameDecodeError(f"{path} does not state its duration")


def cached_clip_features(path: Path, artefact_dir: Path, cache_dir: Path, step_ms: float | None = None) -> ClipFeatures:
    """``compute_clip_features``, read from ``cache_dir/<cnn hash>/<sha256>-<step>.npz`` when computed before."""
    folder = Path(cache_dir) / Path(artefact_dir).name
    suffix = "" if step_ms is None else f"-{step_ms:g}ms"
    target = folder / f"{file_sha256(Path(path))}{suffix}.npz"
    if target.exists():
        with np.load(target) as data:
            return ClipFeatures(frame_ms=data["frame_ms"], codes=data["codes"], duration_ms=float(data["duration_ms"]))
    clip = compute_clip_features(path, artefact_dir, step_ms)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{target.name}.partial"
    with open(partial, "wb") as handle:
        np.savez(handle, frame_ms=clip.frame_ms, codes=clip.codes, duration_ms=np.float64(clip.duration_ms))
    partial.rename(target)
    return clip


def phase_offsets_ms(interval_ms: int, count: int) -> list[float]:
    """``count`` evenly spaced starting offsets within one sample interval, the first at 0 ms."""
    if interval_ms <= 0 or count < 1:
        raise ValueError("interval_ms and count must be positive")
    return [k * interval_ms / count for k in range(count)]


def sampled_features(clip: ClipFeatures, interval_ms: float, phase_ms: float = 0.0) -> np.ndarray:
    """Features of the frames nearest to ``phase_ms, phase_ms + interval_ms, ...`` up to the last frame.

    With ``phase_ms = 0`` these are the frames a player picks at the site's sample times
    (``inference.sampling.sample_times_ms``: the frame nearest to each multiple of the interval).
    """
    times = np.arange(phase_ms, clip.frame_ms[-1] + 1e-6, interval_ms)
    if len(times) == 0:
        times = np.asarray([clip.frame_ms[0]])
    return clip.features[clip.nearest(times)]
