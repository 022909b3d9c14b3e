"""Fixtures for the analysis tests: a registered CNN version, videos with stored features, heads."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from inference.ml.quantise import quantise
from inference.models import ClientSession, FrameFeature, ModelVersion
from tests.inference.conftest import feature_extractor, model_artefacts, model_version, run_tfjs  # noqa: F401
from videos.models import Video


@pytest.fixture
def make_analysed_video(db) -> Callable[..., Video]:
    """A ready video of ``seconds`` at ``fps``, owned by a fresh user (no file: analysis reads features only)."""
    owner = get_user_model().objects.create_user("uploader", password="x" * 12)

    def _make(seconds: float = 10.0, fps: float = 25.0, title: str = "clip") -> Video:
        return Video.objects.create(
            owner=owner,
            title=title,
            status=Video.Status.READY,
            fps=fps,
            duration_ms=round(seconds * 1000),
            width=320,
            height=240,
        )

    return _make


@pytest.fixture
def store_features(db) -> Callable[..., list[FrameFeature]]:
    """``store_features(video, model_version, sample_ms, features_float32, is_server=False, status=...)``."""

    def _store(
        video: Video,
        version: ModelVersion,
        sample_ms: list[int],
        features: np.ndarray,
        is_server: bool = False,
        status: str = FrameFeature.Status.ACCEPTED,
    ) -> list[FrameFeature]:
        session = ClientSession.objects.create(
            video=video, model_version=version, is_server=is_server, backend="server" if is_server else "wasm"
        )
        codes = quantise(features)
        return FrameFeature.objects.bulk_create(
            FrameFeature(
                video=video,
                model_version=version,
                session=session,
                sample_ms=ms,
                vector=codes[index].tobytes(),
                backend=session.backend,
                status=status,
            )
            for index, ms in enumerate(sample_ms)
        )

    return _store
