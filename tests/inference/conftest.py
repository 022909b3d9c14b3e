"""Fixtures for the inference tests: the model artefacts are built once and cached on disk.

``make test`` runs ``manage.py build_models`` first, so the session fixture normally just
finds HYDRA_MODEL_ROOT/<hash>/; without it the first test that needs a model builds it.
"""

from __future__ import annotations

import pytest
from django.conf import settings

from inference.ml.artefacts import Artefacts, ensure_artefacts
from inference.models import ModelVersion
from inference.services.registry import ensure_model_version


@pytest.fixture(scope="session")
def model_artefacts() -> Artefacts:
    return ensure_artefacts(settings.HYDRA_MODEL_ROOT, settings.HYDRA_NSFWJS_DIR)


@pytest.fixture
def model_version(db, model_artefacts: Artefacts) -> ModelVersion:
    """The active model version, registered in the test database."""
    return ensure_model_version()


@pytest.fixture(scope="session")
def feature_extractor(model_artefacts: Artefacts):
    """The server's Keras CNN chunk, loaded once per test session."""
    from inference.ml import cnn

    return cnn.cached_feature_extractor(str(model_artefacts.directory))


@pytest.fixture(scope="session")
def run_tfjs():
    """``run_tfjs(frames_uint8, outputs, model_dir=... | nsfwjs_dir=...)``: layer outputs computed by TF.js in node."""
    from inference.ml.tfjs import run_tfjs as run

    return run
