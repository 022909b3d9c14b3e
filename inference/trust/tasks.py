"""Celery tasks of the trust layer: the server's own recomputations and the coverage deadline."""

from __future__ import annotations

import functools
import logging

import numpy as np
from celery import shared_task

from inference import selectors
from inference.models import ModelVersion
from inference.trust import backends, services
from videos.models import Video

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def recompute_samples(video_id: int, model_version_id: int) -> list[int]:
    """Compute with the server's CNN every sample queued for this video (disputes, spot checks, flags, gaps)."""
    from inference.services import compute_server_features

    video = Video.objects.filter(pk=video_id).first()
    if video is None or not video.rendition:
        return []
    model_version = ModelVersion.objects.get(pk=model_version_id)
    return services.run_recomputations(
        video, model_version, compute_server_features, functools.partial(_alternative_features, video, model_version)
    )


def _alternative_features(video: Video, model_version: ModelVersion, sample_ms: int) -> np.ndarray:
    """The server's features of one frame painted as other honest browsers paint it (float32[V, D])."""
    return _painted_features(video.rendition.path, str(selectors.model_artefacts(model_version).directory), sample_ms)


@functools.lru_cache(maxsize=256)
def _painted_features(path: str, artefact_dir: str, sample_ms: int) -> np.ndarray:
    """Cached per worker: a frame is painted once however many sessions are judged on it."""
    from inference.ml import cnn

    model = cnn.cached_feature_extractor(artefact_dir)
    return backends.alternative_features(path, [sample_ms], lambda rgb: cnn.compute_features(model, rgb))[:, 0]


@shared_task(acks_late=True)
def cover_video(video_id: int) -> list[int]:
    """The coverage deadline: the server computes whatever no session got accepted in time."""
    video = Video.objects.filter(pk=video_id).first()
    model_version = selectors.active_model_version()
    if video is None or model_version is None or not video.rendition:
        return []
    return services.cover_video(video, model_version, selectors.expected_sample_times(video))


def schedule_coverage(video: Video) -> None:
    """Start the coverage deadline of a video that just became ready.

    Tasks that run in-process (the embedded default) cannot wait: there a video is covered at
    once only when no viewer can reach it (held), otherwise its viewers' browsers analyse it.
    """
    countdown = services.coverage_countdown_seconds(video, len(selectors.expected_sample_times(video)))
    if countdown and cover_video.app.conf.task_always_eager:
        logger.info("tasks run in-process: no coverage deadline for video %s", video.pk)
        return
    cover_video.apply_async((video.pk,), countdown=countdown)
