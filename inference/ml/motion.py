"""Cheap motion descriptors from decoded frames, in integer arithmetic a browser can reproduce exactly.

The CNN chunk's pooled 1280-d vector says what is in a frame, not how the people in it move; on the
fight-surveillance clips (Aktı, Tataroğlu and Ekenel, IPTA 2019) heads on it stop near 0.70 balanced
accuracy (docs/models.md). These descriptors measure motion directly between a sample frame and a
partner frame a few tens of milliseconds later, from the same RGB pixels the CNN chunk gets
(``frames.frame_to_rgb``: Chromium's own conversion), using only integer operations whose result does
not depend on evaluation order, so a browser's JavaScript and the server's numpy give identical integers.

1. ``grey_thumbnail``: luma ``(77 R + 150 G + 29 B + 128) >> 8`` of every pixel, box-averaged (rounded
   integer mean) over a ``THUMBNAIL`` x ``THUMBNAIL`` grid of cells whose edges are ``floor(i * H / S)``;
   the aspect ratio is squashed as the CNN's own resize does.
2. ``pair_counts``: for two thumbnails, a histogram of absolute grey differences, the summed difference in
   each of ``CELLS`` x ``CELLS`` cells, and block matching (``BLOCK`` px blocks, every displacement within
   ``SEARCH`` px, least sum of absolute differences, ties to the smallest displacement): how many blocks
   moved how far and in which of 8 directions, the residual left after compensation, the net and total
   displacement (coherent walking against chaotic fighting), and how many neighbouring block pairs moved
   differently. ``PAIR_COUNT_SIZE`` non-negative integers (signed for the net displacement), all below 2**31.
3. ``pair_features``: those counts as scale-free numbers (shares, per-pixel energies, sorted cell
   energies) for a classifier; pooling over a window happens like the CNN features' (mean, spread, max,
   change).

No Django, no TensorFlow: numpy, and PyAV to decode a clip.
"""

from __future__ import annotations

import functools
from pathlib import Path

import av
import numpy as np

from inference.ml.frames import FrameDecodeError, frame_time_ms, frame_to_rgb, open_video_stream

THUMBNAIL = 64
LUMA_WEIGHTS = (77, 150, 29)  # BT.601 luma in 8-bit fixed point; sums to 256
DIFFERENCE_EDGES = (2, 4, 8, 16, 32, 64)  # |grey difference| histogram bins: [0, 2), [2, 4), ..., [64, 256)
CELLS = 4
BLOCK = 8
SEARCH = 4
DIRECTIONS = 8
PAIR_COUNT_SIZE = (len(DIFFERENCE_EDGES) + 1) + CELLS * CELLS + (SEARCH + 1) + DIRECTIONS + 2 + 3 + 1


def grey_thumbnail(rgb: np.ndarray, size: int = THUMBNAIL) -> np.ndarray:
    """uint8[size, size]: integer luma of ``rgb`` (uint8[H, W, 3]) averaged over a size x size grid, rounded."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8[H, W, 3], got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    if height < size or width < size:
        raise ValueError(f"a {width}x{height} frame is smaller than the {size}x{size} thumbnail")
    weights = np.asarray(LUMA_WEIGHTS, dtype=np.uint32)
    luma = ((rgb.astype(np.uint32) @ weights + 128) >> 8).astype(np.uint32)
    rows = (np.arange(size + 1) * height) // size
    cols = (np.arange(size + 1) * width) // size
    sums = np.add.reduceat(np.add.reduceat(luma, rows[:-1], axis=0), cols[:-1], axis=1).astype(np.int64)
    counts = np.diff(rows)[:, None] * np.diff(cols)[None, :]
    return ((sums + counts // 2) // counts).astype(np.uint8)


@functools.cache
def _displacements(search: int) -> np.ndarray:
    """int[(2s+1)^2, 2] (dy, dx), ordered by |dy| + |dx|, then dy, then dx: the first least SAD wins ties."""
    span = range(-search, search + 1)
    return np.asarray(sorted(((dy, dx) for dy in span for dx in span), key=lambda d: (abs(d[0]) + abs(d[1]), d)))


def block_motion(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ``BLOCK`` x ``BLOCK`` block of ``first``: its displacement into ``second``, best SAD, SAD at rest.

    Returns int[B, B, 2] (dy, dx), int[B, B], int[B, B]. Displacements that would leave the thumbnail are
    not candidates (border blocks search only inwards).
    """
    a = first.astype(np.int32)
    size = a.shape[0]
    blocks = size // BLOCK
    padded = np.full((size + 2 * SEARCH, size + 2 * SEARCH), -1, dtype=np.int32)
    padded[SEARCH : SEARCH + size, SEARCH : SEARCH + size] = second
    candidates = _displacements(SEARCH)
    sads = np.empty((len(candidates), blocks, blocks), dtype=np.int64)
    for index, (dy, dx) in enumerate(candidates):
        moved = padded[SEARCH + dy : SEARCH + dy + size, SEARCH + dx : SEARCH + dx + size]
        difference = np.abs(moved - a).reshape(blocks, BLOCK, blocks, BLOCK).sum(axis=(1, 3))
        outside = (moved < 0).reshape(blocks, BLOCK, blocks, BLOCK).any(axis=(1, 3))
        sads[index] = np.where(outside, np.iinfo(np.int64).max, difference)
    best = np.argmin(sads, axis=0)  # first minimum: the smallest displacement among ties
    at_rest = int(np.flatnonzero((candidates == 0).all(axis=1))[0])
    return candidates[best], np.take_along_axis(sads, best[None], axis=0)[0], sads[at_rest]


def _direction(vectors: np.ndarray) -> np.ndarray:
    """Octant 0-7 of each non-zero (dy, dx), counter-clockwise from +x (octant k covers [45k, 45k + 45) degrees),
    by integer comparisons only."""
    dy, dx = vectors[..., 0], vectors[..., 1]
    up = -dy  # image rows grow downwards
    upper = (up > 0) | ((up == 0) & (dx > 0))  # [0, 180) degrees
    x, y = np.where(upper, dx, -dx), np.where(upper, up, -up)  # the lower half turned by 180 degrees
    quarter = np.where(x > 0, np.where(x > y, 0, 1), np.where(-x < y, 2, 3))
    return np.where(upper, 0, 4) + quarter


def pair_counts(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """int64[PAIR_COUNT_SIZE]: the integer motion summary of a thumbnail pair (see the module docstring)."""
    if first.shape != second.shape or first.shape[0] != first.shape[1] or first.shape[0] % (BLOCK * CELLS):
        raise ValueError(f"thumbnails must be equal squares, a multiple of {BLOCK * CELLS} px: {first.shape}")
    difference = np.abs(second.astype(np.int32) - first.astype(np.int32))
    size = difference.shape[0]
    histogram = np.bincount(np.digitize(difference.ravel(), DIFFERENCE_EDGES), minlength=len(DIFFERENCE_EDGES) + 1)
    cell = size // CELLS
    cells = difference.reshape(CELLS, cell, CELLS, cell).sum(axis=(1, 3)).ravel()
    vectors, best, at_rest = block_motion(first, second)
    reach = np.abs(vectors).max(axis=-1)
    moving = reach > 0
    magnitudes = np.bincount(reach.ravel(), minlength=SEARCH + 1)
    directions = np.bincount(_direction(vectors[moving]), minlength=DIRECTIONS)
    net = vectors[moving].sum(axis=0)
    total = int(np.abs(vectors).sum())
    horizontal = (vectors[:, 1:] != vectors[:, :-1]).any(axis=-1) & (moving[:, 1:] | moving[:, :-1])
    vertical = (vectors[1:] != vectors[:-1]).any(axis=-1) & (moving[1:] | moving[:-1])
    return np.concatenate(
        [
            histogram,
            cells,
            magnitudes,
            directions,
            [int(at_rest.sum()), int(best.sum())],
            [int(net[0]), int(net[1]), total],
            [int(horizontal.sum() + vertical.sum())],
        ]
    ).astype(np.int64)


def pair_features(counts: np.ndarray, size: int = THUMBNAIL) -> np.ndarray:
    """float32[..., K]: ``pair_counts`` (any leading shape) as scale-free numbers for a classifier."""
    counts = np.asarray(counts, dtype=np.float64)
    pixels = float(size * size)
    blocks = float((size // BLOCK) ** 2)
    at = 0

    def take(n: int) -> np.ndarray:
        nonlocal at
        part = counts[..., at : at + n]
        at += n
        return part

    histogram = take(len(DIFFERENCE_EDGES) + 1) / pixels
    cells = np.sort(take(CELLS * CELLS), axis=-1)[..., ::-1] / (pixels / CELLS**2)
    magnitudes = take(SEARCH + 1) / blocks
    directions = take(DIRECTIONS)
    moving = np.maximum(directions.sum(axis=-1, keepdims=True), 1.0)
    rest, best = np.moveaxis(take(2), -1, 0)
    net_y, net_x, total = np.moveaxis(take(3), -1, 0)
    (disagreements,) = np.moveaxis(take(1), -1, 0)
    energy = rest / pixels
    return np.concatenate(
        [
            histogram,
            np.log1p(cells),
            magnitudes,
            np.sort(directions, axis=-1)[..., ::-1] / moving,  # how concentrated the directions are
            np.stack(
                [
                    np.log1p(energy),
                    np.log1p(best / pixels),
                    best / np.maximum(rest, 1.0),  # what block matching cannot explain
                    np.hypot(net_y, net_x) / np.maximum(total, 1.0),  # coherence of the motion
                    total / blocks,
                    disagreements / (2 * np.sqrt(blocks) * (np.sqrt(blocks) - 1)),
                ],
                axis=-1,
            ),
        ],
        axis=-1,
    ).astype(np.float32)


def clip_thumbnails(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of a clip in presentation order: float64[N] times (ms) and uint8[N, S, S] grey thumbnails,
    from the frames as the browser paints them (``frames.frame_to_rgb``)."""
    times, thumbnails = [], []
    with open_video_stream(path) as (container, stream):
        try:
            for frame in container.decode(stream):
                times.append(frame_time_ms(frame))
                thumbnails.append(grey_thumbnail(frame_to_rgb(frame)))
        except av.error.FFmpegError as exc:
            raise FrameDecodeError(f"cannot decode {path}: {exc}") from exc
    if not times:
        raise FrameDecodeError(f"{path} has no decodable frames")
    order = np.argsort(times, kind="stable")
    return np.asarray(times, dtype=np.float64)[order], np.stack(thumbnails)[order]
