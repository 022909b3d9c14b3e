"""Decode the sampled frames of a video and convert them to RGB the way the browser does.

The browser draws a ``<video>`` frame into a canvas and reads it back with
``tf.browser.fromPixels``. Headless Chromium converts YUV 4:2:0 to RGB with libyuv's
fixed-point row functions and nearest-neighbour chroma (each chroma sample covers its 2x2
pixels). PyAV's default conversion (swscale) is about one level darker, which costs up to
0.006 of cosine on the features; emulating libyuv here gives pixel-identical frames.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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


_FRACTION_BITS = 6


@dataclass(frozen=True)
class _Luma:
    """libyuv's luma term per level, offset so that sums stay non-negative; after the shift, ``zero`` means 0."""

    table: np.ndarray
    zero: int


@functools.cache
def _luma(constants: YuvConstants) -> _Luma:
    """The luma table, with an offset (a multiple of 64) that keeps every channel's sum in uint16.

    The sums are taken modulo 2**16, where wrap-around in the terms cancels out; what must fit is
    the true sum plus the offset over all levels (-17544..34098 for BT.2020's blue, the widest).
    """
    levels = np.arange(256, dtype=np.int64)
    luma = ((levels * 0x0101 * constants.yg) >> 16) + constants.yb
    chroma = levels - 128
    red, blue = chroma * constants.vr, chroma * constants.ub
    green_u, green_v = -chroma * constants.ug, -chroma * constants.vg
    lowest = luma.min() + min(red.min(), blue.min(), green_u.min() + green_v.min())
    highest = luma.max() + max(red.max(), blue.max(), green_u.max() + green_v.max())
    zero = -(int(lowest) >> _FRACTION_BITS)
    offset = zero << _FRACTION_BITS
    if highest + offset > 0xFFFF:
        raise ValueError(f"{constants.name}: sums span {lowest}..{highest}, more than uint16 holds")
    return _Luma((luma + offset).astype(np.uint16), zero)


def _even_sized(plane: np.ndarray) -> np.ndarray:
    """The plane, with its last row and column repeated where odd, so 2x2 blocks tile it."""
    height, width = plane.shape
    if height % 2 == 0 and width % 2 == 0:
        return plane
    return np.pad(plane, ((0, height % 2), (0, width % 2)), mode="edge")


def _repeat_columns(half: np.ndarray) -> np.ndarray:
    """int16[h, w] -> uint16[h, 2w] modulo 2**16, each value twice (as uint32, x * 0x10001 holds x in both halves)."""
    return (half.view(np.uint16).astype(np.uint32) * 0x10001).view(np.uint16)


def i420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, constants: YuvConstants) -> np.ndarray:
    """libyuv's I420ToARGB in numpy: uint8 planes (chroma at half size) -> uint8[H, W, 3] RGB.

    Runs for every frame the server checks, so it avoids int32 temporaries: luma comes from a
    table, chroma terms are computed once per 2x2 block in int16, and the sums stay in uint16
    (``_luma`` proves they fit). Bit-identical to libyuv's formula.
    """
    luma = _luma(constants)
    height, width = y.shape
    half_h, half_w = (height + 1) // 2, (width + 1) // 2
    luma_pairs = np.take(luma.table, _even_sized(y)).reshape(half_h, 2, 2 * half_w)
    u = u[:half_h, :half_w].astype(np.int16) - 128
    v = v[:half_h, :half_w].astype(np.int16) - 128
    chroma_terms = (v * constants.vr, -(u * constants.ug + v * constants.vg), u * constants.ub)
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    total = np.empty_like(luma_pairs)
    for channel, chroma in enumerate(chroma_terms):
        # Each chroma row serves the two luma rows of its block.
        np.add(luma_pairs, _repeat_columns(chroma)[:, None, :], out=total)
        np.right_shift(total, _FRACTION_BITS, out=total)
        np.clip(total, luma.zero, luma.zero + 255, out=total)
        painted = total.reshape(2 * half_h, 2 * half_w)[:height, :width]
        np.subtract(painted, luma.zero, out=rgb[..., channel], casting="unsafe")
    return rgb


def yuv_plane(frame: av.VideoFrame, index: int, height: int, width: int) -> np.ndarray:
    """One plane of a planar YUV frame as uint8[height, width] (a view: the line padding is cut off)."""
    plane = frame.planes[index]
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
    return rows[:height, :width]


def i420_to_rgb_at(
    y: np.ndarray, u: np.ndarray, v: np.ndarray, rows: np.ndarray, cols: np.ndarray, constants: YuvConstants
) -> np.ndarray:
    """``i420_to_rgb(y, u, v, constants)[np.ix_(rows, cols)]``, converting only those pixels.

    The CNN's resize reads at most two rows and two columns per output pixel (448 x 448 of a 720p
    frame's 720 x 1280), so the server converts only those. Same arithmetic as ``i420_to_rgb``
    (each pixel takes the chroma of its 2x2 block; int16 chroma terms, uint16 sums), so the same bits.
    Rows are picked before columns: two cheap copies instead of one 2-D fancy index.
    """
    luma = _luma(constants)
    luma_terms = np.take(luma.table, y[rows][:, cols])
    block_rows, block_cols = rows // 2, cols // 2
    u = u[block_rows][:, block_cols].astype(np.int16) - 128
    v = v[block_rows][:, block_cols].astype(np.int16) - 128
    chroma_terms = (v * constants.vr, -(u * constants.ug + v * constants.vg), u * constants.ub)
    rgb = np.empty((len(rows), len(cols), 3), dtype=np.uint8)
    total = np.empty_like(luma_terms)
    for channel, chroma in enumerate(chroma_terms):
        np.add(luma_terms, chroma.view(np.uint16), out=total)
        np.right_shift(total, _FRACTION_BITS, out=total)
        np.clip(total, luma.zero, luma.zero + 255, out=total)
        np.subtract(total, luma.zero, out=rgb[..., channel], casting="unsafe")
    return rgb


def _browser_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, YuvConstants]:
    """The Y, U, V planes of a frame (reformatted to 4:2:0 if needed) and the matrix Chromium converts them with."""
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
    return (
        yuv_plane(frame, 0, height, width),
        yuv_plane(frame, 1, half_h, half_w),
        yuv_plane(frame, 2, half_h, half_w),
        constants,
    )


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB of a decoded frame as headless Chromium paints it."""
    return i420_to_rgb(*_browser_planes(frame))


def frame_to_rgb_at(frame: av.VideoFrame, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``frame_to_rgb(frame)[np.ix_(rows, cols)]``: only the pixels at these rows and columns."""
    y, u, v, constants = _browser_planes(frame)
    return i420_to_rgb_at(y, u, v, rows, cols, constants)


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


@contextmanager
def open_video_stream(path: str | Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream]]:
    """The container and first video stream of ``path``; ``FrameDecodeError`` if it cannot be opened or has none."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise FrameDecodeError(f"cannot open {path}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise FrameDecodeError(f"{path} has no video stream")
        yield container, container.streams.video[0]


def decode_frames_at(
    path: str | Path,
    sample_ms: Iterable[int],
    seek_ahead_ms: float | None = 500,
    convert: Callable[[av.VideoFrame], np.ndarray] = frame_to_rgb,
    thread_type: str = "AUTO",
) -> np.ndarray:
    """uint8[N, H, W, 3]: for each sample time, the RGB of the frame whose pts is nearest to it.

    Frames keep their native size (resizing to the CNN input happens in preprocessing, as in
    the browser). ``seek_ahead_ms=None`` decodes strictly in order. ``convert`` paints a decoded
    frame (the trust layer passes other browsers' conversions). ``thread_type`` is FFmpeg's: frame threads
    ("AUTO") decode ahead, work a seek throws away; "SLICE" decodes only what is asked for.
    """
    requested = [int(ms) for ms in sample_ms]
    if any(ms < 0 for ms in requested):
        raise ValueError("sample times must not be negative")
    with open_video_stream(path) as (container, stream):
        stream.thread_type = thread_type
        reader = _NearestFrameReader(container, stream, seek_ahead_ms)
        by_time = {}
        try:
            for target in sorted(set(requested)):
                by_time[target] = convert(reader.frame_at(target))
        except av.error.FFmpegError as exc:
            raise FrameDecodeError(f"cannot decode {path}: {exc}") from exc
    if not requested:
        return np.zeros((0, stream.height, stream.width, 3), dtype=np.uint8)
    return np.stack([by_time[ms] for ms in requested])
