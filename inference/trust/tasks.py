"""Celery tasks of the trust layer: the server's own recomputations and the coverage deadline."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from inference import selectors
from inference.models import ModelVersion
from inference.services import settlement
from inference.trust.services import coverage_countdown_seconds
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
def cover_video(video_id: int, due_at: str | None = None) -> list[int]:
    """The coverage deadline: the server computes whatever no session got accepted in time.

    With ``due_at`` (ISO 8601) a task that runs before the server must start on it waits one more hop
    (``HYDRA_TRUST_COVERAGE_HOP_SECONDS``, within the broker's visibility timeout) instead.
    """
    video = Video.objects.filter(pk=video_id).first()
    model_version = selectors.active_model_version()
    if video is None or model_version is None or not video.rendition:
        return []
    if due_at is not None:
        seconds_left = (datetime.fromisoformat(due_at) - timezone.now()).total_seconds()
        countdown = coverage_countdown_seconds(len(selectors.expected_sample_times(video)), seconds_left)
        if countdown > 0:
            hop = min(countdown, settings.HYDRA_TRUST_COVERAGE_HOP_SECONDS)
            cover_video.apply_async((video_id,), {"due_at": due_at}, countdown=hop)
            return []
    return settlement.cover_video(video, model_version)
