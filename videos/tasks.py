"""Celery tasks of the videos app: thin wrappers around services."""

from celery import shared_task

from videos import services


@shared_task(name="videos.transcode_video", acks_late=True, reject_on_worker_lost=True)
def transcode_video(video_id: int) -> None:
    """Produce the rendition and poster of a video (idempotent, so a redelivered message is harmless).

    A worker process that dies mid-transcode, or a cold shutdown, hands the message back to the
    broker instead of acknowledging it; the service stops after HYDRA_TRANSCODE_MAX_ATTEMPTS starts,
    so a file that kills its worker cannot loop forever.
    """
    services.produce_rendition(video_id)


@shared_task(name="videos.sweep_stuck_videos")
def sweep_stuck_videos() -> dict[str, int]:
    """Periodic (CELERY_BEAT_SCHEDULE): re-queue or fail transcodes that died, remove their ``.part`` files."""
    result = services.sweep_stuck_videos()
    return {"requeued": len(result.requeued), "failed": len(result.failed), "removed_parts": result.removed_parts}
