"""Moderation's reactions to other apps' signals (connected in ModerationConfig.ready).

Receivers are idempotent, as inference's signals require: an analysis may run again and
send the same signal again.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from inference import signals as inference_signals
from videos import signals as video_signals
from videos.models import Video

from . import services, thumbnails


@receiver(inference_signals.verdict_flagged, dispatch_uid="moderation.open_case_for_verdict")
def queue_flagged_verdict(sender, verdict, **kwargs) -> None:
    services.open_case_for_verdict(verdict)


@receiver(inference_signals.video_cleared, dispatch_uid="moderation.clear_held_video")
def publish_cleared_video(sender, video, **kwargs) -> None:
    services.clear_held_video(video)


@receiver(post_delete, sender=Video, dispatch_uid="moderation.delete_frame_thumbnails")
def delete_frame_thumbnails(sender, instance: Video, **kwargs) -> None:
    """The case page's stills of a deleted video are removed once the deletion is committed."""
    transaction.on_commit(partial(thumbnails.delete_thumbnails, instance.storage_key), robust=True)


@receiver(video_signals.video_deleting, dispatch_uid="moderation.keep_record_of_deleted_video")
def keep_record_of_deleted_video(sender, video: Video, actor, **kwargs) -> bool:
    """An uploader's deletion never erases the moderation record: audited, and kept when there is one."""
    return services.record_video_deletion(video, actor=actor)


@receiver(video_signals.video_ready, dispatch_uid="moderation.start_coverage_deadline")
def start_coverage_deadline(sender, video: Video, **kwargs) -> None:
    """A ready video gets its coverage deadline (how long viewers' browsers have before the server analyses it)."""
    services.start_coverage_deadline(video)
