"""Fixtures for the inference tests: the model artefacts are built once and cached on disk.

``make test`` runs ``manage.py build_models`` first, so the session fixture normally just
finds HYDRA_MODEL_ROOT/<hash>/; without it the first test that needs a model builds it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from inference.ml.artefacts import Artefacts, ensure_artefacts
from inference.models import ModelVersion
from inference.services import ensure_model_version

TFJS_RUNNER = Path(__file__).resolve().parents[2] / "inference" / "ml" / "tfjs_run.cjs"


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
def run_tfjs(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[str, np.ndarray]]:
    """``run_tfjs(frames_uint8, outputs, model_dir=... | nsfwjs_dir=...)``: layer outputs computed by TF.js in node."""
    workdir = tmp_path_factory.mktemp("tfjs")

    def _run(frames: np.ndarray, outputs: list[str], **source: str) -> dict[str, np.ndarray]:
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        frames_path, out_path, spec_path = workdir / "frames.u8", workdir / "out.json", workdir / "spec.json"
        frames.tofile(frames_path)
        spec = {"frames": str(frames_path), "shape": list(frames.shape), "outputs": outputs, "out": str(out_path)}
        spec.update({key: str(value) for key, value in source.items()})
        spec_path.write_text(json.dumps(spec))
        subprocess.run(["node", str(TFJS_RUNNER), str(spec_path)], check=True, capture_output=True, timeout=600)
        result = json.loads(out_path.read_text())["outputs"]
        return {name: np.asarray(values, dtype=np.float32) for name, values in result.items()}

    return _run
