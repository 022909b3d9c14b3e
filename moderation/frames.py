"""Poster-size stills of a video's sampled frames for the case page, cut from the rendition with PyAV.

Cached on disk under MEDIA_ROOT (never served publicly: only the staff-only admin view
reads them), so each frame is decoded once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import av
from django.conf import settings

from videos.models import Video

THUMBNAIL_WIDTH = 320


class FrameUnavailable(Exception):
    """The video has no rendition or the time is outside it."""


def thumbnail_dir(storage_key: uuid.UUID | str) -> Path:
    return Path(settings.MEDIA_ROOT) / "moderation" / "frames" / str(storage_key)


def thumbnail_path(video: Video, sample_ms: int) -> Path:
    return thumbnail_dir(video.storage_key) / f"{sample_ms}.jpg"


def delete_thumbnails(storage_key: uuid.UUID | str) -> None:
    """Forget a deleted video's stills (they are copies of its frames, so they go with it)."""
    shutil.rmtree(thumbnail_dir(storage_key), ignore_errors=True)


def frame_thumbnail(video: Video, sample_ms: int) -> Path:
    """The JPEG of the rendition frame nearest to ``sample_ms`` (how the server picks a sample's frame)."""
    path = thumbnail_path(video, sample_ms)
    if path.is_file():
        return path
    if not video.rendition or sample_ms < 0 or (video.duration_ms is not None and sample_ms > video.duration_ms):
        raise FrameUnavailable(f"no frame at {sample_ms} ms")
    image = _decode_nearest(Path(video.rendition.path), sample_ms / 1000)
    image.thumbnail((THUMBNAIL_WIDTH, THUMBNAIL_WIDTH * 4))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".jpg", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        image.save(out, format="JPEG", quality=82)
    os.replace(tmp, path)  # atomic: a concurrent request never reads half a file
    return path


def _decode_nearest(rendition: Path, target_s: float):
    try:
        with av.open(str(rendition)) as container:
            stream = container.streams.video[0]
            container.seek(int(target_s / stream.time_base), stream=stream, backward=True)
            best = None
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                if best is None or abs(frame.time - target_s) < abs(best.time - target_s):
                    best = frame
                if frame.time > target_s:
                    break
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        raise FrameUnavailable(str(exc)) from exc
    if best is None:
        raise FrameUnavailable(f"no frame near {target_s:.3f} s")
    return best.to_image()
