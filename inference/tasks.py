"""Celery tasks of the inference app: thin wrappers that translate a message into a service call."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from inference.models import HeadVersion, ModelVersion
from inference.services import flag_confirmation, settlement
from videos.models import Video

logger = logging.getLogger(__name__)

# The tasks replace their own rows, so they are safe to run twice: acknowledged late (a worker that
# dies mid-task leaves the message to another) and retried with backoff on transient database
# errors (a lost connection, another analysis holding the video's lock).
RETRY_DATABASE_ERRORS = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 6,
}


@shared_task(**RETRY_DATABASE_ERRORS)
def analyse_video_task(video_id: int) -> dict[str, float]:
    """Recompute a video's verdicts. Safe to run twice or to retry: the service replaces its own rows.

    Database errors (a lost connection, another analysis holding the video's lock) are transient and
    retried with exponential backoff; a video deleted meanwhile is simply skipped.
    """
    video = Video.objects.filter(pk=video_id).first()
    if video is None:
        logger.info("video %s is gone; nothing to analyse", video_id)
        return {}
    verdicts = settlement.analyse_and_announce(video)
    return {verdict.head_version.head.category: verdict.score for verdict in verdicts}


@shared_task(**RETRY_DATABASE_ERRORS)
def settle_video_task(video_id: int, model_version_id: int) -> int:
    """Judge and analyse the features viewers stored for a video since the last pass (``settlement.settle_video``).

    Returns the number of verdicts the pass stored (0 when no coverage step was reached).
    """
    video = Video.objects.filter(pk=video_id).first()
    model_version = ModelVersion.objects.filter(pk=model_version_id).first()
    if video is None or model_version is None:
        logger.info("video %s or model version %s is gone; nothing to settle", video_id, model_version_id)
        return 0
    return len(settlement.settle_video(video, model_version))


@shared_task(**RETRY_DATABASE_ERRORS)
def confirm_flag_task(video_id: int, head_version_id: int) -> list[int]:
    """The confirmer scores a flag's frames (``flag_confirmation.score_flagged_frames``), then the video is
    analysed again, which confirms or withdraws the flag. Returns the sample times scored."""
    video = Video.objects.filter(pk=video_id).first()
    head_version = HeadVersion.objects.select_related("head").filter(pk=head_version_id).first()
    if video is None or head_version is None:
        logger.info("video %s or head version %s is gone; no flag to confirm", video_id, head_version_id)
        return []
    scored = flag_confirmation.score_flagged_frames(video, head_version)
    settlement.analyse_and_announce(video)
    return scored
