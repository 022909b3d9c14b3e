"""bench.violence_motion on tiny inputs, so it cannot rot: the JavaScript port's exactness, the pairing rules and
the cross-validation pipeline, never the figures on the dataset."""

from __future__ import annotations

import itertools

import numpy as np

from bench import violence_motion
from inference.ml import motion


def test_the_javascript_port_gives_numpys_integers_on_uneven_frames():
    rng = np.random.default_rng(3)
    first = rng.integers(0, 256, (77, 101, 3), dtype=np.uint8)
    wide = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    frames = [first, np.roll(first, (3, -2), axis=(0, 1)), wide, np.roll(wide, (-5, 7), axis=(0, 1))]
    checked = violence_motion.javascript_check(frames, [(0, 1), (2, 3), (1, 0)])
    assert checked["thumbnails_identical"] and checked["pair_counts_identical"]
    assert set(checked["js_thumbnail_ms_by_frame_size"]) == {"101x77", "320x240"}


def synthetic_clip(label: int, seed: int, frames: int = 50) -> violence_motion.Clip:
    """A 2-s clip at 25 fps: fights jump around, calm clips drift by one pixel now and then."""
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 256, (motion.THUMBNAIL, motion.THUMBNAIL), dtype=np.uint8)
    thumbnails = []
    for index in range(frames):
        shift = rng.integers(-4, 5, 2) if label else np.asarray([0, index // 10])
        thumbnails.append(np.roll(scene, tuple(shift), axis=(0, 1)))
    thumbnails = np.stack(thumbnails)
    consecutive = np.stack([motion.pair_counts(a, b) for a, b in itertools.pairwise(thumbnails)])
    return violence_motion.Clip(
        key=f"clip{seed}",
        label=label,
        cnn=rng.uniform(0, 6, (8, 16)).astype(np.float32),  # no signal in the CNN part
        frame_ms=np.arange(frames) * 40.0,
        thumbnails=thumbnails,
        consecutive=consecutive,
    )


def test_a_sample_pairs_with_the_frame_after_it_or_before_it_at_the_end():
    clip = synthetic_clip(1, seed=0)
    assert np.array_equal(violence_motion.sample_pairs(clip, 0, 40, 1000), clip.consecutive[:1])
    expected = motion.pair_counts(clip.thumbnails[25], clip.thumbnails[28])
    assert np.array_equal(violence_motion.sample_pairs(clip, 1000, 120, 1000)[0], expected)
    last = clip.frame_ms[-1]
    backwards = motion.pair_counts(clip.thumbnails[-1], clip.thumbnails[-2])
    assert np.array_equal(violence_motion.sample_pairs(clip, last, 120, 1000)[0], backwards)
    every = violence_motion.sample_pairs(clip, 1000, violence_motion.EVERY_FRAME, 250)
    assert np.array_equal(every, clip.consecutive[25:31])  # frames 25 .. 31 (1000 .. 1240 ms): six pairs


def test_cross_validation_learns_motion_and_reports_the_stack_weights():
    clips = [synthetic_clip(index % 2, seed=index) for index in range(20)]
    variant = violence_motion.Variant("test", 250, 4, 1, violence_motion.EVERY_FRAME, "stack")
    row = violence_motion.cross_validate(clips, variant)
    assert row["balanced_accuracy_mean"] == 1.0 and len(row["balanced_accuracy_folds"]) == violence_motion.FOLDS
    assert len(row["stack_weights_cnn_motion"]) == violence_motion.FOLDS
    assert all(motion_weight > 0.3 for _cnn_weight, motion_weight in row["stack_weights_cnn_motion"])  # CNN: noise
