"""Queries about videos, and the one rule for who may see a video.

``can_view`` is consulted by every URL that shows a video or serves its files (player
page, rendition, poster). The rule, from both axes of ``Video``:

- moderators see everything, media included;
- removed: nobody else sees the media; the player page shows everyone a removal notice;
- held for review: the owner and moderators only;
- restricted (age-gated/unlisted): signed-in users only, never listed;
- published: everyone, once the rendition is ready (before that, the owner only).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from videos.models import Video

MODERATOR_PERMISSIONS = ("moderation.view_case", "videos.view_hidden_video")


def is_moderator(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user.is_authenticated and user.is_active and any(user.has_perm(perm) for perm in MODERATOR_PERMISSIONS)


def is_owner(user: AbstractBaseUser | AnonymousUser, video: Video) -> bool:
    return user.is_authenticated and video.owner_id == user.pk


def can_view(user: AbstractBaseUser | AnonymousUser, video: Video) -> bool:
    """Whether ``user`` may watch ``video``: see its player and fetch its rendition and poster."""
    if video.deleted_at is not None:
        return False
    if is_moderator(user):
        return True
    if video.visibility == Video.Visibility.REMOVED:
        return False
    if is_owner(user, video):
        return True
    if video.status != Video.Status.READY:
        return False
    if video.visibility == Video.Visibility.PUBLISHED:
        return True
    if video.visibility == Video.Visibility.RESTRICTED:
        return user.is_authenticated
    return False


def published_videos() -> QuerySet[Video]:
    """Videos anyone may watch and that are listed publicly, newest first."""
    return Video.objects.filter(
        status=Video.Status.READY, visibility=Video.Visibility.PUBLISHED, deleted_at__isnull=True
    ).select_related("owner")


def videos_owned_by(user: AbstractBaseUser) -> QuerySet[Video]:
    """The user's videos, without those they deleted (a deleted video with a moderation record stays as a row)."""
    return Video.objects.filter(owner=user, deleted_at__isnull=True)


def video_by_slug(slug: str) -> Video | None:
    return Video.objects.select_related("owner").filter(slug=slug, deleted_at__isnull=True).first()


def rendition_timing(video: Video) -> tuple[float | None, int | None]:
    """Frame rate and duration of what browsers play and the server decodes: the rendition's, once known
    (it may differ from the original's, e.g. a 120 fps upload plays at 60), else the probed original's."""
    return video.rendition_fps or video.fps, video.rendition_duration_ms or video.duration_ms
