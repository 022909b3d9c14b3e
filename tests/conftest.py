"""Fixtures shared by every test package. Videos are generated with PyAV, never downloaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from videos.synthetic import write_video


@pytest.fixture
def media_root(tmp_path: Path, settings) -> Path:
    """Each test writes media to its own folder."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """``make_video(name="clip.mp4", seconds=3, pattern="bars", ...)`` writes a clip and returns its path."""

    def _make(name: str = "clip.mp4", **kwargs) -> Path:
        return write_video(tmp_path / "inputs" / name, **kwargs)

    return _make
