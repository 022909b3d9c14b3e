"""Videos: the uploaded original, its web rendition and poster, and where it stands.

Two independent axes describe a video. ``status`` is the processing pipeline (uploading,
processing, ready, failed). ``visibility`` is the moderation state (published, held for
review, restricted, removed). Who may see a video is decided in one place,
``videos.selectors.can_view``, from both.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models

SLUG_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def generate_slug() -> str:
    return "".join(secrets.choice(SLUG_ALPHABET) for _ in range(11))


def original_path(instance: Video, filename: str) -> str:
    """Originals are stored under a server-generated name; the user's filename is kept only as a field."""
    return f"originals/{instance.storage_key}.{instance.container_extension or 'bin'}"


def rendition_name(media_key: uuid.UUID) -> str:
    """A rendition's name under MEDIA_ROOT, which is also its media URL's path under /media/ (videos.media_urls)."""
    return f"renditions/{media_key}.mp4"


def poster_name(media_key: uuid.UUID) -> str:
    return f"posters/{media_key}.jpg"


def rendition_path(instance: Video, filename: str) -> str:
    return rendition_name(instance.media_key)


def poster_path(instance: Video, filename: str) -> str:
    return poster_name(instance.media_key)


class Video(models.Model):
    class Status(models.TextChoices):
        UPLOADING = "uploading", "Uploading"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class Visibility(models.TextChoices):
        PUBLISHED = "published", "Published"
        HELD = "held", "Held for review"
        RESTRICTED = "restricted", "Restricted"
        REMOVED = "removed", "Removed"

    class Audience(models.TextChoices):
        PUBLIC = "public", "Public: listed on the home page and in search"
        UNLISTED = "unlisted", "Unlisted: anyone with the link, never listed"
        PRIVATE = "private", "Private: only you"

    slug = models.CharField(max_length=16, unique=True, default=generate_slug, editable=False)
    # Names the original, the moderation thumbnails and the view-count key; never changes.
    storage_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Names the rendition and poster, and so their signed URLs: replaced (services.revoke_media_urls) when the
    # video becomes less visible, which makes every URL issued before answer 404 at once.
    media_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="videos")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADING, db_index=True)
    failure_reason = models.TextField(blank=True)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PUBLISHED, db_index=True
    )
    visibility_reason = models.TextField(blank=True, help_text="Shown to viewers and the uploader when not published.")
    # The uploader's choice, independent of moderation: who may find and watch a published video.
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.PUBLIC)

    original_filename = models.CharField(max_length=255, blank=True)
    original = models.FileField(upload_to=original_path, max_length=255, blank=True)
    rendition = models.FileField(upload_to=rendition_path, max_length=255, blank=True)
    poster = models.FileField(upload_to=poster_path, max_length=255, blank=True)

    # Probed from the original with PyAV, never from the file name or Content-Type.
    container = models.CharField(max_length=64, blank=True)
    container_extension = models.CharField(max_length=8, blank=True)
    video_codec = models.CharField(max_length=32, blank=True)
    audio_codec = models.CharField(max_length=32, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    size_bytes = models.BigIntegerField(default=0)

    # Of the rendition, which is what browsers and the server analyse.
    rendition_width = models.PositiveIntegerField(null=True, blank=True)
    rendition_height = models.PositiveIntegerField(null=True, blank=True)
    rendition_fps = models.FloatField(null=True, blank=True, help_text="Constant frame rate of the rendition.")
    rendition_duration_ms = models.PositiveIntegerField(null=True, blank=True)

    view_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # Written by the transcoder while it works: a processing video whose heartbeat stops is swept
    # (re-queued, or failed after HYDRA_TRANSCODE_MAX_ATTEMPTS), see services.sweep_stuck_videos.
    transcode_attempts = models.PositiveSmallIntegerField(default=0)
    transcode_heartbeat_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Deleted by its uploader while it had a moderation record: kept, without media, for that record.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["visibility", "status", "-created_at"], name="video_listing_idx")]
        permissions = [("view_hidden_video", "Can view held and removed videos")]

    def __str__(self) -> str:
        return f"{self.title} ({self.slug})"

    @property
    def duration_seconds(self) -> float:
        return (self.duration_ms or 0) / 1000

    @property
    def is_playable(self) -> bool:
        return self.status == self.Status.READY and bool(self.rendition) and self.deleted_at is None

    @property
    def status_label(self) -> str:
        """The state in words, as the uploader reads it on "My videos"."""
        if self.status != self.Status.READY:
            if self.status == self.Status.FAILED:
                return f"Failed: {self.failure_reason}" if self.failure_reason else "Failed"
            return self.get_status_display()
        return self.get_visibility_display()
