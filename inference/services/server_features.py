"""The server's own features: the frames browsers analyse, decoded, computed and stored by the server itself.

PyAV decodes the frame nearest each sample time, once, in time order, and converts it exactly as
the browser does; the server's CNN runtime (``inference.ml.server_cnn``: the Keras model's .tflite
on one TFLite thread, loaded once per process) computes its features;
they are stored under the video's server session, accepted by definition. The same path serves
disputes, spot checks, flags, the coverage deadline and training clips. ``alternative_features``
also paints a frame as other honest browsers do (``inference.trust.paintings``). Everything here
runs in Celery workers or management commands, never on the websocket path.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inference import selectors
from inference.ml import server_cnn
from inference.ml.quantise import quantise
from inference.models import ClientSession, FrameFeature, ModelVersion
from inference.trust import paintings
from videos.models import Video


def features_at(path: str | Path, sample_ms: Sequence[int], artefact_dir: str | Path) -> np.ndarray:
    """float32[N, feature_size] features of the file's frames at these times (``server_cnn.features_at``)."""
    return server_cnn.features_at(path, [int(ms) for ms in sample_ms], artefact_dir)


def compute_server_features(
    video: Video, sample_ms: Sequence[int], model_version: ModelVersion | None = None
) -> np.ndarray:
    """float32[N, feature_size] features of the video's rendition at the given sample times, in order."""
    model_version = model_version or selectors.active_model_version()
    if model_version is None:
        raise ValueError("no active model version: run `manage.py build_models`")
    if not video.rendition:
        raise ValueError(f"video {video.pk} has no rendition to analyse")
    if not sample_ms:
        return np.zeros((0, model_version.feature_size), dtype=np.float32)
    return features_at(video.rendition.path, sample_ms, selectors.model_artefact_dir(model_version))


def alternative_features(video: Video, model_version: ModelVersion, sample_ms: int) -> np.ndarray:
    """The server's features of one frame painted as other honest browsers paint it (float32[V, D])."""
    return _painted_features(video.rendition.path, str(selectors.model_artefact_dir(model_version)), sample_ms)


@functools.lru_cache(maxsize=256)
def _painted_features(path: str, artefact_dir: str, sample_ms: int) -> np.ndarray:
    """Cached per worker: a frame is painted once however many sessions are judged on it."""
    return paintings.alternative_features(
        path, [sample_ms], functools.partial(server_cnn.features_of_rgb, artefact_dir)
    )[:, 0]


def server_session(video: Video, model_version: ModelVersion) -> ClientSession:
    session, _ = ClientSession.objects.get_or_create(
        video=video, model_version=model_version, is_server=True, defaults={"backend": "server"}
    )
    return session


def store_server_features(
    video: Video, model_version: ModelVersion, sample_ms: Sequence[int], features: np.ndarray
) -> None:
    """Store the server's own (quantised) features; they are accepted by definition."""
    session = server_session(video, model_version)
    codes = quantise(features)
    FrameFeature.objects.bulk_create(
        [
            FrameFeature(
                video=video,
                model_version=model_version,
                session=session,
                sample_ms=t,
                vector=codes[i].tobytes(),
                backend="server",
                status=FrameFeature.Status.ACCEPTED,
            )
            for i, t in enumerate(sample_ms)
        ],
        ignore_conflicts=True,
    )
