"""Decode the sampled frames of a video and convert them to RGB the way the browser does.

The browser draws a ``<video>`` frame into a canvas and reads it back with
``tf.browser.fromPixels``. Headless Chromium converts YUV 4:2:0 to RGB with libyuv's
fixed-point row functions and nearest-neighbour chroma (each chroma sample covers its 2x2
pixels). PyAV's default conversion (swscale) is about one level darker, which costs up to
0.006 of cosine on the features; emulating libyuv here gives pixel-identical frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

# libyuv row_common.cc: YuvPixel with its per-matrix constants (the "LIBYUV_UNLIMITED" variants
# are off in Chromium, so UB is capped at 128). Values are 6-bit fixed point; YB includes +32 to round.
_AVCOL_SPC_BT709 = 1
_AVCOL_SPC_BT470BG = 5
_AVCOL_SPC_SMPTE170M = 6
_AVCOL_SPC_BT2020_NCL = 9
_AVCOL_SPC_BT2020_CL = 10
_AVCOL_RANGE_JPEG = 2
_UNSPECIFIED = (0, 2)  # AVCOL_*_RESERVED0 / AVCOL_*_UNSPECIFIED
UNTAGGED_HD_MIN_HEIGHT = 720


@dataclass(frozen=True)
class YuvConstants:
    name: str
    yg: int
    yb: int
    ub: int
    ug: int
    vg: int
    vr: int


BT601 = YuvConstants("bt601", yg=18997, yb=-1160, ub=128, ug=25, vg=52, vr=102)
BT709 = YuvConstants("bt709", yg=18997, yb=-1160, ub=128, ug=14, vg=34, vr=115)
BT2020 = YuvConstants("bt2020", yg=19003, yb=-1160, ub=128, ug=12, vg=42, vr=107)
JPEG = YuvConstants("bt601-full", yg=16320, yb=32, ub=113, ug=22, vg=46, vr=90)
F709 = YuvConstants("bt709-full", yg=16320, yb=32, ub=119, ug=12, vg=30, vr=101)
F2020 = YuvConstants("bt2020-full", yg=16320, yb=32, ub=120, ug=11, vg=37, vr=94)


class FrameDecodeError(ValueError):
    """The file has no decodable video stream."""


def yuv_constants(matrix: int, color_range: int, height: int, primaries: int, transfer: int) -> YuvConstants:
    """The matrix Chromium picks for a frame (arguments are FFmpeg's AVCOL_* values).

    Chromium trusts the tags only when primaries, transfer and matrix are all specified
    (measured: a BT.709 matrix tag alone is ignored); otherwise it guesses from the height:
    BT.709 from 720 lines up, BT.601 below.
    """
    full = color_range == _AVCOL_RANGE_JPEG
    tagged = primaries not in _UNSPECIFIED and transfer not in _UNSPECIFIED and matrix not in _UNSPECIFIED
    if not tagged:
        matrix = _AVCOL_SPC_BT709 if height >= UNTAGGED_HD_MIN_HEIGHT else _AVCOL_SPC_SMPTE170M
    if matrix in (_AVCOL_SPC_BT470BG, _AVCOL_SPC_SMPTE170M):
        return JPEG if full else BT601
    if matrix in (_AVCOL_SPC_BT2020_NCL, _AVCOL_SPC_BT2020_CL):
        return F2020 if full else BT2020
    return F709 if full else BT709


def i420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, constants: YuvConstants) -> np.ndarray:
    """libyuv's I420ToARGB in numpy: uint8 planes (chroma at half size) -> uint8[H, W, 3] RGB."""
    height, width = y.shape
    u_full = np.repeat(np.repeat(u, 2, axis=0), 2, axis=1)[:height, :width].astype(np.int32) - 128
    v_full = np.repeat(np.repeat(v, 2, axis=0), 2, axis=1)[:height, :width].astype(np.int32) - 128
    y1 = ((y.astype(np.uint32) * 0x0101 * constants.yg) >> 16).astype(np.int32) + constants.yb
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[..., 0] = np.clip((y1 + v_full * constants.vr) >> 6, 0, 255)
    rgb[..., 1] = np.clip((y1 - (u_full * constants.ug + v_full * constants.vg)) >> 6, 0, 255)
    rgb[..., 2] = np.clip((y1 + u_full * constants.ub) >> 6, 0, 255)
    return rgb


def _plane(frame: av.VideoFrame, index: int, height: int, width: int) -> np.ndarray:
    plane = frame.planes[index]
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
    return rows[:height, :width]


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB of a decoded frame as headless Chromium paints it."""
    constants = yuv_constants(
        int(frame.colorspace),
        int(frame.color_range),
        frame.height,
        primaries=int(frame.color_primaries),
        transfer=int(frame.color_trc),
    )
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    height, width = frame.height, frame.width
    half_h, half_w = (height + 1) // 2, (width + 1) // 2
    return i420_to_rgb(
        _plane(frame, 0, height, width), _plane(frame, 1, half_h, half_w), _plane(frame, 2, half_h, half_w), constants
    )


def frame_time_ms(frame: av.VideoFrame) -> float:
    return float(frame.pts * frame.time_base * 1000)


class _NearestFrameReader:
    """Finds, for ascending target times, the frame whose pts is nearest to each.

    Decodes in order, and seeks forward (to the keyframe before the target) when the next
    target is far ahead. If a seek ever lands behind what was already decoded (sparse
    keyframes), seeking would re-decode the same stretch again and again, so it stops.
    """

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, seek_ahead_ms):
        self._container = container
        self._stream = stream
        self._seek_ahead_ms = seek_ahead_ms
        self._can_seek = seek_ahead_ms is not None
        self._frames: Iterator[av.VideoFrame] = container.decode(stream)
        self._behind: av.VideoFrame | None = None
        self._ahead: av.VideoFrame | None = None

    def _position_ms(self) -> float:
        frame = self._ahead or self._behind
        return frame_time_ms(frame) if frame is not None else 0.0

    def _seek(self, target_ms: int) -> None:
        position = self._position_ms()
        offset = int(target_ms / 1000 / self._stream.time_base)
        self._container.seek(offset, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)
        self._behind = None
        self._ahead = next(self._frames, None)
        if self._ahead is None or frame_time_ms(self._ahead) <= position:
            self._can_seek = False

    def frame_at(self, target_ms: int) -> av.VideoFrame:
        if self._can_seek and target_ms - self._position_ms() > self._seek_ahead_ms:
            self._seek(target_ms)
        while True:
            if self._ahead is not None and frame_time_ms(self._ahead) >= target_ms:
                break
            if self._ahead is not None:
                self._behind = self._ahead
            self._ahead = next(self._frames, None)
            if self._ahead is None:
                break
        candidates = [frame for frame in (self._behind, self._ahead) if frame is not None]
        if not candidates:
            raise FrameDecodeError("the video has no decodable frames")
        return min(candidates, key=lambda frame: (abs(frame_time_ms(frame) - target_ms), frame_time_ms(frame)))


def decode_frames_at(path: str | Path, sample_ms: Iterable[int], seek_ahead_ms: float | None = 500) -> np.ndarray:
    """uint8[N, H, W, 3]: for each sample time, the RGB of the frame whose pts is nearest to it.

    Frames keep their native size (resizing to the CNN input happens in preprocessing, as in
    the browser). ``seek_ahead_ms=None`` decodes strictly in order.
    """
    requested = [int(ms) for ms in sample_ms]
    if any(ms < 0 for ms in requested):
        raise ValueError("sample times must not be negative")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise FrameDecodeError(f"cannot open {path}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise FrameDecodeError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        reader = _NearestFrameReader(container, stream, seek_ahead_ms)
        by_time = {}
        try:
            for target in sorted(set(requested)):
                by_time[target] = frame_to_rgb(reader.frame_at(target))
        except av.error.FFmpegError as exc:
            raise FrameDecodeError(f"cannot decode {path}: {exc}") from exc
    if not requested:
        return np.zeros((0, stream.height, stream.width, 3), dtype=np.uint8)
    return np.stack([by_time[ms] for ms in requested])
