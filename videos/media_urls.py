"""Signed, expiring media URLs: who may fetch a rendition or poster is decided once, when the URL is issued.

The page (or API response) that shows a video checks ``selectors.can_view`` and issues URLs of the form
``/media/renditions/<media key>.mp4?token=…&expires=…``. Each Range request for those bytes then checks only
the signature and the expiry, with no database read: nginx does it with its ``secure_link`` module in
production (``HYDRA_MEDIA_SERVER = "nginx"``, hydra_site/deploy/nginx-site.conf), Django does it on the
embedded default (``videos.views.media_file``). Both apply the one rule written here:

    token = base64url(md5(f"{expires}{path} {secret}")), unpadded; refused once ``expires`` (Unix seconds) has passed

which is exactly what ``secure_link_md5 "$secure_link_expires$uri <secret>"`` computes, so the two servers agree
on every URL. MD5 is the only digest ``secure_link`` offers; the secret comes last and every signed message
(expiry and path) is chosen by the server, so a forgery needs a preimage, not a collision.

Revocation is by renaming, so it too needs no database read per request: a URL names the file by the video's
``media_key``. Deleting a video deletes its files; restricting or removing it (any change moderation's
``_set_visibility`` makes to a visibility other than published) gives it a new ``media_key`` and renames its
files to match (``services.revoke_media_urls``).
Either way every URL issued before answers 404 at once on both servers, and viewers who may still watch get new
URLs from the page. Otherwise a URL lasts ``HYDRA_MEDIA_URL_SECONDS`` plus the video's own length (so a viewer who
watches straight through is not cut off mid-video).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import time
import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.urls import reverse
from django.utils.crypto import salted_hmac

from videos import selectors
from videos.models import Video, poster_name, rendition_name


class MediaFile(enum.Enum):
    """The files of a video that viewers fetch: (model field, URL name, content type). Originals never are."""

    RENDITION = ("rendition", "videos:rendition", "video/mp4")
    POSTER = ("poster", "videos:poster", "image/jpeg")

    def __init__(self, field_name: str, url_name: str, content_type: str) -> None:
        self.field_name = field_name
        self.url_name = url_name
        self.content_type = content_type

    def stored_name(self, media_key: uuid.UUID) -> str:
        """The file's name under MEDIA_ROOT; its URL is /media/ and this name."""
        return rendition_name(media_key) if self is MediaFile.RENDITION else poster_name(media_key)


# What both servers answer (403) to a URL whose token is missing, forged, for another file, or expired.
REFUSED_MESSAGE = "This media link is not valid or has expired: reload the page."


class MediaUrlRefused(Exception):
    """The URL's token is missing, forged, for another file, or expired."""


def media_url_secret() -> str:
    """The secret nginx and Django sign with: ``HYDRA_MEDIA_URL_SECRET``, or one derived from SECRET_KEY.

    Derived rather than SECRET_KEY itself, because it is written into nginx's configuration.
    """
    return settings.HYDRA_MEDIA_URL_SECRET or salted_hmac("hydra.media-url", "secret").hexdigest()


def _token(path: str, expires: str) -> str:
    digest = hashlib.md5(f"{expires}{path} {media_url_secret()}".encode(), usedforsecurity=True).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def expiry_for(video: Video, now: float) -> int:
    """When URLs issued at ``now`` expire: the lifetime plus the video's length, on a step of a quarter lifetime
    so that pages rendered within one step share URLs (and the browser's cache of posters)."""
    lifetime = settings.HYDRA_MEDIA_URL_SECONDS
    step = max(1, lifetime // 4)
    return int(now) // step * step + lifetime + (video.rendition_duration_ms or video.duration_ms or 0) // 1000


def signed_path(path: str, expires: int) -> str:
    return f"{path}?{urlencode({'token': _token(path, str(expires)), 'expires': expires})}"


def issue(video: Video, media: MediaFile, *, now: float | None = None) -> str:
    """The signed URL (path and query) of ``video``'s ``media`` file. Call only after ``can_view``."""
    path = reverse(media.url_name, kwargs={"key": video.media_key})
    return signed_path(path, expiry_for(video, time.time() if now is None else now))


def url_for_viewer(user: AbstractBaseUser | AnonymousUser, video: Video, media: MediaFile) -> str | None:
    """The signed URL of ``video``'s ``media`` for ``user``, or None when they may not see it or it has none."""
    if video.status != Video.Status.READY or not getattr(video, media.field_name):
        return None
    if not selectors.can_view(user, video):
        return None
    return issue(video, media)


def check(path: str, token: str | None, expires: str | None, *, now: float | None = None) -> None:
    """Raise ``MediaUrlRefused`` unless ``token`` signs ``path`` until ``expires`` and that has not passed."""
    if not token or not expires or not (expires.isascii() and expires.isdigit()):
        raise MediaUrlRefused
    if not hmac.compare_digest(token.encode(), _token(path, expires).encode()):
        raise MediaUrlRefused
    if int(expires) < int(time.time() if now is None else now):  # as nginx: valid through its last second
        raise MediaUrlRefused
