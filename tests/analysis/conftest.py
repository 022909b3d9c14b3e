"""Fixtures for the analysis tests: a registered CNN version, videos with stored features, heads."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from inference.ml.quantise import quantise
from inference.models import ClientSession, FrameFeature, ModelVersion
from inference.services import registry
from tests.inference import conftest as inference_fixtures
from videos.models import Video

# The CNN artefacts, the registered model version, the Keras CNN and TF.js runner of the inference tests.
model_artefacts = inference_fixtures.model_artefacts
model_version = inference_fixtures.model_version
feature_extractor = inference_fixtures.feature_extractor
run_tfjs = inference_fixtures.run_tfjs


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


@pytest.fixture
def model_root(tmp_path: Path, settings, model_artefacts) -> Path:
    """A private HYDRA_MODEL_ROOT that still holds the built CNN artefacts (linked), so head weights land here."""
    root = tmp_path / "models"
    root.mkdir()
    os.symlink(model_artefacts.directory, root / model_artefacts.directory.name)
    settings.HYDRA_MODEL_ROOT = root
    return root


@pytest.fixture
def default_heads(model_root, model_version):
    return registry.ensure_default_heads(model_version)
