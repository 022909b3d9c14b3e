"""Views counted as people understand them: once per viewer per video per day, never the uploader's own.

Views raise a case's queue priority, so a reload, the redirect back after a report or a script's HEAD
requests must not inflate them. The "seen today" marks live in the cache (Redis when ``REDIS_URL``, shared by
every process; memory on the embedded default) and expire with the day. They name a video by its
random storage key, never its row id, which a fresh database hands out again.
"""

from __future__ import annotations

import hashlib
from datetime import date

from django.core.cache import cache

from videos import services
from videos.models import Video

DAY_SECONDS = 24 * 3600


def viewer_key(*, user_id: int | None, ip_address: str | None) -> str:
    """A signed-in viewer is their account; anyone else their address (hashed: the cache holds no addresses)."""
    if user_id is not None:
        return f"user:{user_id}"
    return "ip:" + hashlib.sha256((ip_address or "unknown").encode()).hexdigest()[:32]


def count_view(video: Video, *, viewer: str, is_owner: bool, day: date) -> bool:
    """Count this view unless the uploader is watching or ``viewer`` was counted for ``video`` on ``day``."""
    if is_owner:
        return False
    if not cache.add(f"hydra:viewed:{video.storage_key}:{viewer}:{day.isoformat()}", 1, timeout=DAY_SECONDS):
        return False
    services.record_view(video)
    return True
