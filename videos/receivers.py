"""The videos app's reactions to its own signals (connected in VideosConfig.ready)."""

from __future__ import annotations

from django.dispatch import receiver

from videos import tasks
from videos.models import Video
from videos.signals import transcoding_requested


@receiver(transcoding_requested, dispatch_uid="videos.queue_transcoding")
def queue_transcoding(sender, video: Video, **kwargs) -> None:
    tasks.transcode_video.delay(video.pk)
