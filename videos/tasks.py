"""Celery tasks of the videos app: thin wrappers around services."""

from celery import shared_task

from videos import services


@shared_task(name="videos.transcode_video", acks_late=True)
def transcode_video(video_id: int) -> None:
    """Produce the rendition and poster of a video (idempotent, so a redelivered message is harmless)."""
    services.produce_rendition(video_id)


@shared_task(name="videos.sweep_stuck_videos")
def sweep_stuck_videos() -> dict[str, int]:
    """Periodic (CELERY_BEAT_SCHEDULE): re-queue or fail transcodes that died, remove their ``.part`` files."""
    result = services.sweep_stuck_videos()
    return {"requeued": len(result.requeued), "failed": len(result.failed), "removed_parts": result.removed_parts}
