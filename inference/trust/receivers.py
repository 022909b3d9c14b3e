"""The trust layer's reactions to other apps' signals (imported by InferenceConfig.ready)."""

from __future__ import annotations

from django.dispatch import receiver

from inference.trust import tasks
from videos.signals import video_ready


@receiver(video_ready, dispatch_uid="inference.trust.start_coverage_deadline")
def start_coverage_deadline(sender, video, **kwargs) -> None:
    """A ready video gets its deadline: after it the server covers whatever no viewer did."""
    tasks.schedule_coverage(video)
