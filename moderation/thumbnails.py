"""Poster-size stills of a video's sampled frames for the case page, cut from the rendition.

Decoded by the analysis's own ``decode_frames_at`` (the same frame, in the same colours, that
the CNN saw), and only for the video's sample times. Cached on disk under MEDIA_ROOT (never
served publicly: only the staff-only admin view reads them), so each frame is decoded once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from PIL import Image

from inference.ml.frames import FrameDecodeError, decode_frames_at
from inference.selectors import expected_sample_times
from videos.models import Video

THUMBNAIL_WIDTH = 320


class FrameUnavailable(Exception):
    """The video has no rendition, or the time is not one of its samples."""


def thumbnail_dir(storage_key: uuid.UUID | str) -> Path:
    return Path(settings.MEDIA_ROOT) / "moderation" / "frames" / str(storage_key)


def thumbnail_path(video: Video, sample_ms: int) -> Path:
    return thumbnail_dir(video.storage_key) / f"{sample_ms}.jpg"


def delete_thumbnails(storage_key: uuid.UUID | str) -> None:
    """Forget a deleted video's stills (they are copies of its frames, so they go with it)."""
    shutil.rmtree(thumbnail_dir(storage_key), ignore_errors=True)


def frame_thumbnail(video: Video, sample_ms: int) -> Path:
    """The JPEG of the rendition frame analysed for ``sample_ms`` (one of the video's sample times)."""
    path = thumbnail_path(video, sample_ms)
    if path.is_file():
        return path
    if not video.rendition or sample_ms not in expected_sample_times(video):
        raise FrameUnavailable(f"no sampled frame at {sample_ms} ms")
    try:
        rgb = decode_frames_at(video.rendition.path, [sample_ms])[0]
    except (FrameDecodeError, OSError) as exc:
        raise FrameUnavailable(str(exc)) from exc
    image = Image.fromarray(rgb)
    image.thumbnail((THUMBNAIL_WIDTH, THUMBNAIL_WIDTH * 4))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".jpg", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        image.save(out, format="JPEG", quality=82)
    os.replace(tmp, path)  # atomic: a concurrent request never reads half a file
    return path
