"""Receivers: moderation reacts to other apps' events without them importing moderation."""

from __future__ import annotations

from videos.models import Video

from . import services


def apply_publication_policy(sender, video: Video, **kwargs) -> None:
    """``videos.signals.video_ready``: hold the new video if HYDRA_PUBLICATION_POLICY is "hold"."""
    services.on_video_ready(video)
