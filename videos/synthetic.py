"""Small videos made locally with PyAV, for the demo data and the tests.

Nothing is downloaded: every clip is drawn frame by frame. Patterns are deterministic
for a given seed so tests can rely on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

PATTERNS = ("bars", "calm", "erratic", "noise", "warm")


def _frame_rgb(pattern: str, index: int, fps: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    t = index / fps
    yy, xx = np.mgrid[0:height, 0:width]
    if pattern == "bars":
        # Colour bars that scroll slowly, with a moving box so every second looks different.
        bar = ((xx + int(t * 40)) * 7 // max(width, 1)) % 7
        palette = np.array(
            [
                [235, 235, 235],
                [235, 235, 16],
                [16, 235, 235],
                [16, 235, 16],
                [235, 16, 235],
                [235, 16, 16],
                [16, 16, 235],
            ],
            dtype=np.uint8,
        )
        img = palette[bar]
        bx = int((t * 0.25 % 1.0) * (width - width // 4))
        by = height // 3
        img[by : by + height // 4, bx : bx + width // 4] = [40, 40, 40]
        return img
    if pattern == "calm":
        # A slow gradient drift: little change between neighbouring frames.
        phase = t * 0.3
        r = 128 + 90 * np.sin(xx / width * 3.0 + phase)
        g = 128 + 90 * np.sin(yy / height * 3.0 + phase * 0.7)
        b = np.full_like(r, 150.0)
        return np.stack([r, g, b], axis=-1).astype(np.uint8)
    if pattern == "erratic":
        # Fast, jerky shapes jumping around: large change between neighbouring frames.
        img = np.full((height, width, 3), 30, dtype=np.uint8)
        for _ in range(6):
            cx, cy = rng.integers(0, width), rng.integers(0, height)
            rad = int(rng.integers(max(2, height // 10), max(3, height // 3)))
            colour = rng.integers(0, 256, size=3, dtype=np.uint8)
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < rad**2
            img[mask] = colour
        return img
    if pattern == "noise":
        return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    if pattern == "warm":
        # Soft skin-toned ellipses drifting on pink: no person in it, yet the nsfwjs nudity head scores these
        # frames about 0.9-0.97 (as "hentai"), so the demo has a video that real analysis flags.
        shapes = np.random.default_rng(7)
        img = np.empty((height, width, 3))
        img[:] = (200.0, 80.0, 120.0)
        for _ in range(8):
            phase = shapes.random() * 6.0
            cx = shapes.integers(0, width) + 20.0 * np.sin(t + phase)  # each shape sways a little
            cy = shapes.integers(0, height)
            rx, ry = shapes.integers(width // 10, width // 3), shapes.integers(height // 6, height // 2)
            reach = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
            shade = np.clip(1.1 - 0.4 * reach, 0.0, 1.0)[..., None]
            img = np.where((reach < 1)[..., None], np.array([240.0, 180.0, 160.0]) * shade, img)
        return img.clip(0, 255).astype(np.uint8)
    raise ValueError(f"unknown pattern {pattern!r}; choose one of {PATTERNS}")


def iter_frames(pattern: str, seconds: float, fps: int, width: int, height: int, seed: int = 0) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    for index in range(round(seconds * fps)):
        yield _frame_rgb(pattern, index, fps, width, height, rng)


def write_video(
    path: str | Path,
    *,
    seconds: float = 3.0,
    fps: int = 24,
    width: int = 320,
    height: int = 240,
    pattern: str = "bars",
    seed: int = 0,
    codec: str = "libx264",
    audio: bool = False,
    container_format: str | None = None,
) -> Path:
    """Encode a synthetic clip and return its path. ``codec`` may be libx264, mpeg4, libvpx-vp9..."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        audio_stream = None
        if audio:
            audio_stream = container.add_stream("aac", rate=44100)
            audio_stream.layout = "mono"
        for frame_rgb in iter_frames(pattern, seconds, fps, width, height, seed):
            frame = av.VideoFrame.from_ndarray(frame_rgb, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _write_tone(container, audio_stream, seconds)
    return path


def _write_tone(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float) -> None:
    rate = 44100
    samples_per_frame = 1024
    total = int(seconds * rate)
    for start in range(0, total, samples_per_frame):
        n = min(samples_per_frame, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_audio_only(path: str | Path, seconds: float = 2.0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=44100)
        stream.layout = "mono"
        _write_tone(container, stream, seconds)
    return path
