"""Celery tasks of the trust layer: the server's own recomputations and the coverage deadline."""

from __future__ import annotations

from celery import shared_task

from inference import selectors
from inference.models import ModelVersion
from inference.services import settlement
from videos.models import Video


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def recompute_samples(video_id: int, model_version_id: int) -> list[int]:
    """Compute with the server's CNN every sample queued for this video (disputes, spot checks, flags, gaps)."""
    video = Video.objects.filter(pk=video_id).first()
    if video is None or not video.rendition:
        return []
    model_version = ModelVersion.objects.get(pk=model_version_id)
    return settlement.settle_recomputations(video, model_version)


@shared_task(acks_late=True)
def cover_video(video_id: int) -> list[int]:
    """The coverage deadline: the server computes whatever no session got accepted in time."""
    video = Video.objects.filter(pk=video_id).first()
    model_version = selectors.active_model_version()
    if video is None or model_version is None or not video.rendition:
        return []
    return settlement.cover_video(video, model_version)
