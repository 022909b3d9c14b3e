"""When follow-up work runs: receivers that turn signals into Celery tasks (connected in InferenceConfig.ready).

Use cases never queue tasks themselves (the tasks call them: that would be an import cycle).
They send signals once their change is committed (``inference.signals``), and the receivers
here decide when the matching task runs:

- ``features_stored``: one settlement pass per video and window (``request_settlement``);
- ``recomputation_requested``: the server computes the queued samples (``recompute_samples``);
- ``accepted_features_changed``: the video's verdicts are computed again (``analyse_video_task``);
- ``flag_confirmation_requested``: the confirmer scores a flag's frames (``confirm_flag_task``);
- ``coverage_deadline_set`` (sent by moderation, which sets the deadline when a video is ready and
  brings it forward): the server covers the video's gaps by then (``schedule_coverage``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.dispatch import receiver
from django.utils import timezone

from inference import selectors, signals
from inference.tasks import analyse_video_task, confirm_flag_task, settle_video_task
from inference.trust import tasks as trust_tasks
from inference.trust.services import coverage_countdown_seconds
from videos.models import Video

logger = logging.getLogger(__name__)

SETTLEMENT_MARGIN_SECONDS = 0.25
_settlements_requested: dict[tuple[int, int], int] = {}  # (video, model version) -> window, this process
_SETTLEMENTS_REMEMBERED = 10_000


def settlement_window(now: float) -> int:
    """Time is cut into windows of HYDRA_SETTLE_DELAY_SECONDS; one pass per video follows each window with batches."""
    return int(now // settings.HYDRA_SETTLE_DELAY_SECONDS)


def request_settlement(video_id: int, model_version_id: int) -> None:
    """Make sure a settlement pass of the video runs after the current window (called once a batch is committed).

    A pass has a fixed cost (a lock, a few queries, perhaps an analysis) whatever the number of new
    features, so every batch stored in one window, by any viewer on any process, shares the pass
    queued for just after that window's end: it sees them all, since each was committed before it
    asked. The first batch of a window sets a Redis key (SET NX) and queues the pass; later batches
    find the key, and within one process do not even ask Redis (remembered per window). Tasks that
    run in-process (the embedded default) cannot be delayed: there every batch settles at once.
    """
    if settle_video_task.app.conf.task_always_eager:
        settle_video_task.apply_async((video_id, model_version_id))
        return
    now = time.time()
    window = settlement_window(now)
    video_key = (video_id, model_version_id)
    if _settlements_requested.get(video_key) == window:
        return
    if len(_settlements_requested) >= _SETTLEMENTS_REMEMBERED:
        _settlements_requested.clear()
    _settlements_requested[video_key] = window
    delay = settings.HYDRA_SETTLE_DELAY_SECONDS
    if cache.add(f"hydra:settle:{video_id}:{model_version_id}:{window}", True, timeout=delay + 60):
        countdown = (window + 1) * delay - now + SETTLEMENT_MARGIN_SECONDS
        settle_video_task.apply_async((video_id, model_version_id), countdown=countdown)


def schedule_coverage(video: Video, due_at: datetime) -> None:
    """Make sure the server has covered the video's gaps by ``due_at`` (its coverage deadline).

    A deadline is only ever brought forward, so a task queued for an earlier deadline runs first
    and a later one finds nothing left to do. Tasks that run in-process (the embedded default)
    cannot wait: there a video is covered at once only when it is due now (held, or touched by a
    case), otherwise its viewers' browsers analyse it.
    """
    seconds_left = (due_at - timezone.now()).total_seconds()
    countdown = coverage_countdown_seconds(len(selectors.expected_sample_times(video)), seconds_left)
    if countdown and trust_tasks.cover_video.app.conf.task_always_eager:
        logger.info("tasks run in-process: no coverage deadline for video %s", video.pk)
        return
    # A task delayed past the broker's visibility timeout is handed to a second worker while the first
    # still holds it (Celery's Redis caveat); a long wait is made of hops, each of which re-plans the rest.
    hop = min(countdown, settings.HYDRA_TRUST_COVERAGE_HOP_SECONDS)
    trust_tasks.cover_video.apply_async((video.pk,), {"due_at": due_at.isoformat()}, countdown=hop)


@receiver(signals.features_stored, dispatch_uid="inference.request_settlement")
def settle_stored_features(sender, video_id: int, model_version_id: int, **kwargs) -> None:
    request_settlement(video_id, model_version_id)


@receiver(signals.recomputation_requested, dispatch_uid="inference.recompute_samples")
def recompute_queued_samples(sender, video_id: int, model_version_id: int, **kwargs) -> None:
    trust_tasks.recompute_samples.delay(video_id, model_version_id)


@receiver(signals.accepted_features_changed, dispatch_uid="inference.analyse_again")
def analyse_again(sender, video_id: int, **kwargs) -> None:
    analyse_video_task.delay(video_id)


@receiver(signals.flag_confirmation_requested, dispatch_uid="inference.confirm_flag")
def confirm_flag(sender, video_id: int, head_version_id: int, **kwargs) -> None:
    confirm_flag_task.delay(video_id, head_version_id)


@receiver(signals.coverage_deadline_set, dispatch_uid="inference.schedule_coverage")
def cover_by_deadline(sender, video: Video, due_at: datetime, **kwargs) -> None:
    """By the deadline (set or brought forward by moderation) the server has covered whatever no viewer did."""
    schedule_coverage(video, due_at)
