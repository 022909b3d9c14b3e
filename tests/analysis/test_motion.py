"""Motion descriptors from decoded frames (inference.ml.motion): exact integers, measured as a browser would."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from inference.ml import motion
from inference.ml.frames import decode_frames_at


def textured(size: int = motion.THUMBNAIL, seed: int = 0) -> np.ndarray:
    """A thumbnail with texture everywhere, so block matching has one clear answer."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size), dtype=np.uint8)


def test_thumbnail_is_the_rounded_integer_luma_mean_of_uneven_cells():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (77, 101, 3), dtype=np.uint8)  # cells of 1-2 rows and 1-2 columns
    size = 32
    thumbnail = motion.grey_thumbnail(rgb, size)
    red, green, blue = np.moveaxis(rgb.astype(int), -1, 0)
    luma = (77 * red + 150 * green + 29 * blue + 128) >> 8
    for i, j in [(0, 0), (5, 17), (31, 31), (16, 3)]:
        cell = luma[i * 77 // size : (i + 1) * 77 // size, j * 101 // size : (j + 1) * 101 // size]
        assert thumbnail[i, j] == (cell.sum() + cell.size // 2) // cell.size


def test_thumbnail_of_a_flat_colour_is_its_luma():
    rgb = np.empty((120, 160, 3), dtype=np.uint8)
    rgb[...] = (200, 100, 50)
    assert np.all(motion.grey_thumbnail(rgb) == (77 * 200 + 150 * 100 + 29 * 50 + 128) >> 8)


def test_thumbnail_refuses_frames_smaller_than_itself_and_non_uint8():
    with pytest.raises(ValueError, match="smaller"):
        motion.grey_thumbnail(np.zeros((40, 80, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        motion.grey_thumbnail(np.zeros((80, 80, 3), dtype=np.float32))


def test_block_matching_finds_a_shift_and_stays_at_rest_on_a_still_frame():
    first = textured()
    second = np.roll(first, (2, -3), axis=(0, 1))  # content moved 2 rows down and 3 columns left
    vectors, best, at_rest = motion.block_motion(first, second)
    interior = vectors[1:-1, 1:-1]
    assert np.all(interior[..., 0] == 2) and np.all(interior[..., 1] == -3)
    assert np.all(best[1:-1, 1:-1] == 0) and np.all(at_rest > 0)

    still, best, at_rest = motion.block_motion(first, first)
    assert not still.any() and not best.any() and not at_rest.any()


@pytest.mark.parametrize("shift, octant", [((0, 2), 0), ((-2, -2), 3), ((-2, 0), 2), ((0, -2), 4), ((2, 0), 6)])
def test_directions_are_octants_counter_clockwise_from_the_right(shift, octant):
    first = textured()
    counts = motion.pair_counts(first, np.roll(first, shift, axis=(0, 1)))  # (rows down, columns right)
    start = len(motion.DIFFERENCE_EDGES) + 1 + motion.CELLS**2 + motion.SEARCH + 1
    directions = counts[start : start + motion.DIRECTIONS]
    assert directions.argmax() == octant and directions[octant] >= 36  # of 64 blocks; borders match at random


def test_pair_counts_of_identical_frames_say_nothing_moved():
    frame = textured()
    counts = motion.pair_counts(frame, frame)
    assert counts.shape == (motion.PAIR_COUNT_SIZE,)
    assert counts[0] == frame.size and not counts[1 : len(motion.DIFFERENCE_EDGES) + 1].any()
    features = motion.pair_features(counts)
    assert np.isfinite(features).all()


def test_a_coherent_shift_reads_as_coherent_and_noise_as_chaos():
    first = textured()
    shifted = motion.pair_features(motion.pair_counts(first, np.roll(first, (0, 2), axis=(0, 1))))
    noisy = motion.pair_features(motion.pair_counts(first, textured(seed=7)))
    coherence = -3  # pair_features' order: ..., residual share, coherence, total displacement, disagreements
    residual_share = -4
    # the border blocks whose content left the picture match at random, so a shift stays below 1
    assert shifted[coherence] > 0.5 > 0.05 > noisy[coherence]
    assert shifted[residual_share] < 0.2 < noisy[residual_share]


def test_clip_thumbnails_are_the_browser_painted_frames_and_see_erratic_motion(make_video):
    calm = make_video("calm.mp4", seconds=1.0, fps=10, pattern="calm")
    erratic = make_video("erratic.mp4", seconds=1.0, fps=10, pattern="erratic")
    times, thumbnails = motion.clip_thumbnails(calm)
    assert len(times) == 10 and np.all(np.diff(times) > 0)
    painted = decode_frames_at(calm, [int(times[3])], seek_ahead_ms=None)[0]
    assert np.array_equal(thumbnails[3], motion.grey_thumbnail(painted))

    def energy(path):
        _, frames = motion.clip_thumbnails(path)
        rest = len(motion.DIFFERENCE_EDGES) + 1 + motion.CELLS**2 + motion.SEARCH + 1 + motion.DIRECTIONS
        return np.mean([motion.pair_counts(a, b)[rest] for a, b in itertools.pairwise(frames)])

    assert energy(erratic) > 3 * energy(calm)
