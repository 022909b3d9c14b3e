"""Queries about videos, and the one rule for who may see a video.

``can_view`` is consulted by every URL that shows a video or serves its files (player
page, rendition, poster). The rule, from both axes of ``Video``:

- moderators see everything, media included;
- removed: nobody else sees the media; the player page shows everyone a removal notice;
- held for review: the owner and moderators only;
- restricted (age-gated/unlisted): signed-in users only, never listed;
- published: everyone, once the rendition is ready (before that, the owner only);
- and the uploader's audience on top: private videos only for the owner and moderators, unlisted ones
  for anyone with the link, and only public ones are listed (home page, search).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from videos.models import Video

MODERATOR_PERMISSIONS = ("moderation.view_case", "videos.view_hidden_video")


MAX_SEARCH_WORDS = 8  # a search is a few words; more only costs the database


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
    if video.status != Video.Status.READY or video.audience == Video.Audience.PRIVATE:
        return False
    if video.visibility == Video.Visibility.PUBLISHED:
        return True
    if video.visibility == Video.Visibility.RESTRICTED:
        return user.is_authenticated
    return False


def published_videos() -> QuerySet[Video]:
    """Videos anyone may watch and that are listed publicly, newest first."""
    return Video.objects.filter(
        status=Video.Status.READY,
        visibility=Video.Visibility.PUBLISHED,
        audience=Video.Audience.PUBLIC,
        deleted_at__isnull=True,
    ).select_related("owner")


def search_published_videos(query: str) -> QuerySet[Video]:
    """Listed videos whose title, description or uploader's name contains every word of ``query``."""
    videos = published_videos()
    for word in query.split()[:MAX_SEARCH_WORDS]:
        videos = videos.filter(
            Q(title__icontains=word) | Q(description__icontains=word) | Q(owner__username__iexact=word)
        )
    return videos


def videos_owned_by(user: AbstractBaseUser) -> QuerySet[Video]:
    """The user's videos, without those they deleted (a deleted video with a moderation record stays as a row)."""
    return Video.objects.filter(owner=user, deleted_at__isnull=True)


def video_by_slug(slug: str) -> Video | None:
    return Video.objects.select_related("owner").filter(slug=slug, deleted_at__isnull=True).first()


def rendition_timing(video: Video) -> tuple[float | None, int | None]:
    """Frame rate and duration of what browsers play and the server decodes: the rendition's, once known
    (it may differ from the original's, e.g. a 120 fps upload plays at 60), else the probed original's."""
    return video.rendition_fps or video.fps, video.rendition_duration_ms or video.duration_ms
