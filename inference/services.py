"""Use cases of the inference app: each function is one thing the site does."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from django.conf import settings
from django.db import transaction

from inference import selectors
from inference.ml.artefacts import Artefacts, ensure_artefacts
from inference.models import ModelVersion
from videos.models import Video

logger = logging.getLogger(__name__)

# --- Model registry and the server's own features (ml helper) -----------------------------------

SERVER_FEATURE_BATCH = 32


def ensure_model_version() -> ModelVersion:
    """Build the artefacts of the installed nsfwjs model if missing, register them and make them active.

    Idempotent: a second call finds the directory on disk and the row in the database.
    Building (seconds, imports TensorFlow) happens outside the transaction.
    """
    artefacts = ensure_artefacts(settings.HYDRA_MODEL_ROOT, settings.HYDRA_NSFWJS_DIR)
    return _register_model_version(artefacts)


@transaction.atomic
def _register_model_version(artefacts: Artefacts) -> ModelVersion:
    manifest = artefacts.manifest
    model_version, created = ModelVersion.objects.get_or_create(
        content_hash=artefacts.content_hash,
        defaults={
            "name": manifest["name"],
            "feature_size": manifest["feature_size"],
            "preprocessing": manifest["preprocessing"],
            "quantisation": manifest["quantisation"],
            "artefact_dir": artefacts.directory.name,
        },
    )
    if not model_version.is_active:
        ModelVersion.objects.select_for_update().filter(is_active=True).update(is_active=False)
        model_version.is_active = True
        model_version.save(update_fields=["is_active"])
        logger.info("model version %s is now active%s", model_version, " (new)" if created else "")
    return model_version


def compute_server_features(
    video: Video, sample_ms: Sequence[int], model_version: ModelVersion | None = None
) -> np.ndarray:
    """float32[N, feature_size] features of the video's rendition at the given sample times, in order.

    The server's own path for the frames browsers analyse: PyAV decodes the frame nearest
    each sample time, converts it to RGB as the browser does, and the Keras CNN (loaded once
    per process) computes its features, a batch of frames at a time to bound memory.
    """
    from inference.ml import cnn, frames

    model_version = model_version or selectors.active_model_version()
    if model_version is None:
        raise ValueError("no active model version: run `manage.py build_models`")
    if not video.rendition:
        raise ValueError(f"video {video.pk} has no rendition to analyse")
    artefact_dir = selectors.model_artefacts(model_version).directory
    model = cnn.cached_feature_extractor(str(artefact_dir))
    times = [int(ms) for ms in sample_ms]
    batches = [
        cnn.compute_features(
            model, frames.decode_frames_at(video.rendition.path, times[start : start + SERVER_FEATURE_BATCH])
        )
        for start in range(0, len(times), SERVER_FEATURE_BATCH)
    ]
    if not batches:
        return np.zeros((0, model_version.feature_size), dtype=np.float32)
    return np.concatenate(batches, axis=0)
