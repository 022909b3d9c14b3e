"""Use cases that change videos: ingest an upload, produce its rendition, delete it.

Files and rows change together or not at all: a rejected or failed upload leaves nothing
on disk or in the database, and a rendition appears under its final name only once it is
complete (written under a temporary name, then renamed atomically). The original is kept
after transcoding so the rendition can be rebuilt (for instance with new settings) and
the server can re-analyse from the source if needed.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from videos import media
from videos.models import Video, poster_name, poster_path, rendition_name, rendition_path
from videos.signals import transcoding_requested, video_deleting, video_ready
from videos.uploads import format_limit, too_large_message

logger = logging.getLogger(__name__)

# Where the poster is taken from: one second in, or the middle of shorter videos.
POSTER_AT_SECONDS = 1.0

# Shown to the uploader; the error itself (with server paths) goes to the log only.
CONVERSION_FAILED = (
    "We could not convert this video for playback. The file may be damaged or in a format we cannot read."
)


class UploadRejected(Exception):
    """An upload Hydra will not keep; ``message`` is written for the person who sent it."""

    def __init__(self, code: str, message: str, *, too_large: bool = False, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.too_large = too_large
        self.rate_limited = rate_limited


# Longest original file name kept (characters); the rest of a longer name is dropped, its extension first.
MAX_FILENAME_CHARS = 255


HELD_FOR_REVIEW_REASON = "Held for review: new uploads are checked by automatic analysis before they are public."


def _initial_visibility() -> tuple[str, str]:
    """HYDRA_PUBLICATION_POLICY, applied once, at upload: with "hold" the video is never public before
    analysis clears it (``moderation.services.clear_held_video`` publishes it then)."""
    if settings.HYDRA_PUBLICATION_POLICY == "hold":
        return Video.Visibility.HELD, HELD_FOR_REVIEW_REASON
    return Video.Visibility.PUBLISHED, ""


def _probe_upload(upload: File) -> media.ProbeResult:
    if upload.size == 0:
        raise UploadRejected("empty", "The file is empty (0 bytes).")
    if upload.size > settings.HYDRA_MAX_UPLOAD_BYTES:
        raise UploadRejected("too_large", too_large_message(), too_large=True)
    source = upload.temporary_file_path() if hasattr(upload, "temporary_file_path") else upload
    if source is upload:
        upload.seek(0)
    limits = media.FrameLimits(
        max_frames=settings.HYDRA_MAX_RENDITION_FRAMES, max_duplication=settings.HYDRA_MAX_FRAME_DUPLICATION
    )
    try:
        return media.probe(source, max_duration_seconds=settings.HYDRA_MAX_DURATION_SECONDS, frame_limits=limits)
    except media.MediaRejected as exc:
        raise UploadRejected(exc.code, exc.message) from exc
    finally:
        if source is upload:
            upload.seek(0)


def check_upload_allowance(owner: AbstractBaseUser, size_bytes: int) -> None:
    """Per-user limits on uploads (HYDRA_UPLOADS_PER_HOUR, HYDRA_UPLOAD_QUOTA_BYTES): sign-up is open, and every
    upload costs a transcode and an analysis, so one account cannot queue unbounded work or fill the disk.

    Counted from the videos table: videos kept as tombstones count towards the hourly rate, and
    the quota is what the user holds now (deleting a video frees its share).
    """
    recent = Video.objects.filter(owner=owner, created_at__gte=timezone.now() - timezone.timedelta(hours=1)).count()
    if recent >= settings.HYDRA_UPLOADS_PER_HOUR:
        raise UploadRejected(
            "rate_limited",
            f"You have uploaded {recent} videos in the last hour; the limit is {settings.HYDRA_UPLOADS_PER_HOUR}. "
            "Try again later.",
            rate_limited=True,
        )
    held = Video.objects.filter(owner=owner, deleted_at__isnull=True).aggregate(total=Sum("size_bytes"))["total"] or 0
    if held + size_bytes > settings.HYDRA_UPLOAD_QUOTA_BYTES:
        raise UploadRejected(
            "quota_exceeded",
            f"Your videos take {format_limit(held)} and this file {format_limit(size_bytes)}; each account may keep "
            f"{format_limit(settings.HYDRA_UPLOAD_QUOTA_BYTES)}. Delete a video to make room.",
            too_large=True,
        )


def kept_filename(name: str) -> str:
    """The uploader's file name as stored: its last path part, at most ``MAX_FILENAME_CHARS`` characters.

    Shortened from the extension side first (a 250-character "extension" is not one), so the
    readable stem survives; only ever shown back to its uploader.
    """
    base = os.path.basename(name or "").replace("\x00", "")
    if len(base) <= MAX_FILENAME_CHARS:
        return base
    stem, extension = os.path.splitext(base)
    if len(extension) > 16:
        stem, extension = base, ""
    return stem[: MAX_FILENAME_CHARS - len(extension)] + extension


def description_problem(description: str) -> str | None:
    """Why ``description`` cannot be stored (HYDRA_MAX_DESCRIPTION_CHARS), or None: one rule for upload and edit."""
    if len(description) > settings.HYDRA_MAX_DESCRIPTION_CHARS:
        return (
            f"The description is {len(description):,} characters; at most "
            f"{settings.HYDRA_MAX_DESCRIPTION_CHARS:,} are allowed."
        )
    return None


def ingest_upload(
    *, owner: AbstractBaseUser, upload: File, title: str = "", description: str = "", audience: str = "public"
) -> Video:
    """Probe ``upload`` and store it as a new video of ``owner``, then queue its transcoding.

    Raises ``UploadRejected`` (nothing stored) unless the file is a whole, readable video
    within the size, duration and frame limits and the owner's upload allowance.
    """
    if problem := description_problem(description):
        raise UploadRejected("description_too_long", problem)
    check_upload_allowance(owner, upload.size or 0)
    probed = _probe_upload(upload)
    visibility, visibility_reason = _initial_visibility()
    filename = kept_filename(upload.name or "")
    video = Video(
        owner=owner,
        title=(title.strip() or Path(filename).stem or "Untitled video")[:200],
        description=description.strip(),
        status=Video.Status.PROCESSING,
        visibility=visibility,
        visibility_reason=visibility_reason,
        audience=audience,
        original_filename=filename,
        container=probed.container,
        container_extension=probed.extension,
        video_codec=probed.video_codec,
        audio_codec=probed.audio_codec,
        width=probed.width,
        height=probed.height,
        fps=probed.fps,
        duration_ms=probed.duration_ms,
        size_bytes=upload.size,
    )
    try:
        with transaction.atomic():
            video.original.save("original", upload, save=False)
            video.save()
            transaction.on_commit(partial(_queue_transcoding, video), robust=True)
    except BaseException:
        if video.original.name:
            default_storage.delete(video.original.name)
        raise
    logger.info("Ingested video %s (%s, %s bytes)", video.slug, probed.video_codec, upload.size)
    video.refresh_from_db()  # tasks running in-process may already have transcoded it
    return video


def _queue_transcoding(video: Video) -> None:
    """Hand the video to a worker; if the broker cannot be reached, say so on the video instead of leaving it.

    The task is queued by the receiver of ``transcoding_requested`` (``videos.receivers``): the task
    calls this module, so this module does not import it. A receiver's error reaches the ``except``.
    """
    try:
        transcoding_requested.send(sender=Video, video=video)
    except Exception:
        logger.exception("Could not queue transcoding of video %s", video.slug)
        _mark_failed(video, "The video could not be queued for conversion; please upload it again later.")


def _temporary_path(final_name: str) -> Path:
    """A unique sibling of ``final_name`` in the same directory, so the final rename is atomic."""
    final = Path(default_storage.path(final_name))
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.with_name(f".{final.stem}.{uuid.uuid4().hex}.part")


def _mark_failed(video: Video, reason: str) -> None:
    """Record the failure (a no-op if the video was deleted meanwhile) and reflect it on ``video``."""
    video.status, video.failure_reason, video.processed_at = Video.Status.FAILED, reason, timezone.now()
    Video.objects.filter(pk=video.pk).update(
        status=video.status, failure_reason=reason, processed_at=video.processed_at, updated_at=video.processed_at
    )


def produce_rendition(video_id: int) -> Video | None:
    """Transcode the original of video ``video_id`` into its rendition and poster, and mark it ready.

    Safe to run twice (a task redelivered after a crash): a ready video is left alone and
    each run writes its own temporary files. On failure the video is marked failed with the
    reason and no rendition or poster is left behind.
    """
    video = Video.objects.filter(pk=video_id).first()
    if video is None or video.status == Video.Status.READY:
        return video
    if not video.original or not default_storage.exists(video.original.name):
        _mark_failed(video, "The uploaded file is missing, so the video could not be converted.")
        return video
    if video.transcode_attempts >= settings.HYDRA_TRANSCODE_MAX_ATTEMPTS:
        # Redelivered after killing its worker this many times (reject_on_worker_lost): stop the loop.
        _mark_failed(video, STUCK_FAILURE.format(attempts=video.transcode_attempts))
        return video
    rendition_tmp, poster_tmp = _temporary_path(rendition_path(video, "")), _temporary_path(poster_path(video, ""))
    Video.objects.filter(pk=video.pk).update(
        transcode_attempts=F("transcode_attempts") + 1, transcode_heartbeat_at=timezone.now()
    )
    try:
        info = media.transcode(
            default_storage.path(video.original.name),
            rendition_tmp,
            max_height=settings.HYDRA_RENDITION_MAX_HEIGHT,
            keyframe_seconds=settings.HYDRA_RENDITION_KEYFRAME_SECONDS,
            on_progress=partial(_heartbeat, video.pk),
        )
        media.write_poster(rendition_tmp, poster_tmp, at_seconds=min(POSTER_AT_SECONDS, info.duration_ms / 2000))
    except media.MediaRejected as exc:  # a limit only the whole decode can check (every frame's size)
        logger.warning("Transcoding video %s refused: %s", video.slug, exc.message)
        rendition_tmp.unlink(missing_ok=True)
        poster_tmp.unlink(missing_ok=True)
        _mark_failed(video, exc.message)
        return video
    except Exception:
        logger.exception("Transcoding video %s failed", video.slug)
        rendition_tmp.unlink(missing_ok=True)
        poster_tmp.unlink(missing_ok=True)
        _mark_failed(video, CONVERSION_FAILED)
        return video
    return _store_rendition(video.pk, info, rendition_tmp, poster_tmp)


def _heartbeat(video_id: int, frames_written: int) -> None:
    Video.objects.filter(pk=video_id).update(transcode_heartbeat_at=timezone.now())


@dataclass(frozen=True)
class SweepResult:
    requeued: tuple[str, ...]
    failed: tuple[str, ...]
    removed_parts: int


STUCK_FAILURE = (
    "The conversion of this video stopped {attempts} times without finishing (the server restarted or ran out of "
    "resources). Please upload it again; if it keeps failing, export it in a common format (MP4, H.264)."
)


def sweep_stuck_videos() -> SweepResult:
    """Re-queue, or fail, videos whose transcoding stopped without a word (a worker killed mid-transcode,
    a lost queue message), and remove the ``.part`` files such crashes leave behind.

    A transcode writes a heartbeat every few hundred frames; a processing video without one for
    HYDRA_TRANSCODE_STUCK_SECONDS is stuck. It is queued again until it has been tried
    HYDRA_TRANSCODE_MAX_ATTEMPTS times, then failed with a reason its uploader can read.
    Safe to run at any time and from several processes (rows are locked, skipping those taken).
    """
    cutoff = timezone.now() - timezone.timedelta(seconds=settings.HYDRA_TRANSCODE_STUCK_SECONDS)
    requeued, failed = [], []
    with transaction.atomic():
        stuck = (
            Video.objects.select_for_update(skip_locked=True)
            .annotate(last_sign=Coalesce("transcode_heartbeat_at", "created_at"))
            .filter(status=Video.Status.PROCESSING, deleted_at__isnull=True, last_sign__lt=cutoff)
        )
        for video in stuck:
            if video.transcode_attempts >= settings.HYDRA_TRANSCODE_MAX_ATTEMPTS:
                _mark_failed(video, STUCK_FAILURE.format(attempts=video.transcode_attempts))
                failed.append(video.slug)
            else:
                Video.objects.filter(pk=video.pk).update(transcode_heartbeat_at=timezone.now())
                transaction.on_commit(partial(_queue_transcoding, video), robust=True)
                requeued.append(video.slug)
    removed = _remove_stale_parts(cutoff)
    if requeued or failed or removed:
        logger.warning(
            "Swept stuck transcodes: requeued %s, failed %s, %d .part files removed", requeued, failed, removed
        )
    return SweepResult(tuple(requeued), tuple(failed), removed)


def _remove_stale_parts(cutoff) -> int:
    """Temporary rendition and poster files (``_temporary_path``) older than ``cutoff``: a running transcode
    rewrites its own file continuously, so an old one belongs to a transcode that died."""
    removed = 0
    for folder in ("renditions", "posters"):
        root = Path(default_storage.path(folder))
        if not root.is_dir():
            continue
        for part in root.glob(".*.part"):
            try:
                if part.stat().st_mtime < cutoff.timestamp():
                    part.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def _store_rendition(video_id: int, info: media.RenditionInfo, rendition_tmp: Path, poster_tmp: Path) -> Video | None:
    with transaction.atomic():
        video = Video.objects.select_for_update().filter(pk=video_id).first()
        if video is None:  # deleted while it was being transcoded
            rendition_tmp.unlink(missing_ok=True)
            poster_tmp.unlink(missing_ok=True)
            return None
        # Named from the locked row: its media key may have been rotated while this transcoded.
        final_rendition, final_poster = rendition_path(video, ""), poster_path(video, "")
        os.replace(rendition_tmp, default_storage.path(final_rendition))
        os.replace(poster_tmp, default_storage.path(final_poster))
        video.rendition.name = final_rendition
        video.poster.name = final_poster
        video.rendition_width, video.rendition_height = info.width, info.height
        video.rendition_fps, video.rendition_duration_ms = info.fps, info.duration_ms
        video.status = Video.Status.READY
        video.failure_reason = ""
        video.processed_at = timezone.now()
        video.save()
        transaction.on_commit(lambda: video_ready.send(sender=Video, video=video))
    logger.info("Video %s is ready (%sx%s @ %.3f fps)", video.slug, info.width, info.height, info.fps)
    return video


def delete_video(video: Video, *, actor: AbstractBaseUser | None = None) -> None:
    """Delete ``video`` for ``actor`` and, once the deletion is committed, its files.

    A video with a record that must outlive it (``video_deleting`` receivers say so: moderation's
    cases, reports, decisions, appeals and audit) stays as a row without media, hidden from
    everyone; the others are deleted outright.
    """
    with transaction.atomic():
        locked = Video.objects.select_for_update().filter(pk=video.pk, deleted_at__isnull=True).first()
        if locked is None:
            return
        names = [field.name for field in (locked.original, locked.rendition, locked.poster) if field]
        responses = video_deleting.send(sender=Video, video=locked, actor=actor)
        if any(keep for _receiver, keep in responses):
            now = timezone.now()
            Video.objects.filter(pk=locked.pk).update(
                deleted_at=now, original="", rendition="", poster="", updated_at=now
            )
        else:
            locked.delete()
        transaction.on_commit(partial(_delete_files, names))


def _delete_files(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)


def revoke_media_urls(video: Video) -> None:
    """Make every rendition and poster URL issued for ``video`` so far answer 404, once the caller commits.

    A signed URL names its file by ``media_key`` and is checked with no database read, so revoking is renaming:
    a new ``media_key``, the files hard-linked under the new names, the row pointed at them, the old names
    unlinked. Called when a video becomes less visible (moderation), so a URL copied while it could be seen stops
    working then, not when it expires. Runs after the caller's commit, so a rolled-back change renames nothing.
    """
    video_id = video.pk

    def rotate_media_key() -> None:  # not a partial: robust on_commit logs failures by the callback's __qualname__
        _rotate_media_key(video_id)

    transaction.on_commit(rotate_media_key, robust=True)


def _rotate_media_key(video_id: int) -> None:
    """Rename the video's rendition and poster to a new ``media_key``; the row never names a missing file.

    Each step leaves a playable video: a crash after linking leaves orphan links (the old URLs still work until
    they expire, as before revocation existed); after the commit, the old names linger until they are unlinked.
    """
    new_key = uuid.uuid4()
    with transaction.atomic():
        video = Video.objects.select_for_update().filter(pk=video_id, deleted_at__isnull=True).first()
        if video is None:
            return
        new_rendition = rendition_name(new_key) if video.rendition else ""
        new_poster = poster_name(new_key) if video.poster else ""
        renames = [
            (old, new) for old, new in ((video.rendition.name, new_rendition), (video.poster.name, new_poster)) if old
        ]
        linked: list[str] = []
        try:
            for old, new in renames:
                os.link(default_storage.path(old), default_storage.path(new))
                linked.append(new)
            Video.objects.filter(pk=video_id).update(
                media_key=new_key, rendition=new_rendition, poster=new_poster, updated_at=timezone.now()
            )
        except Exception:
            _delete_files(linked)
            raise
        old_names = [old for old, _new in renames]

        def unlink_old_names() -> None:
            _delete_files(old_names)

        transaction.on_commit(unlink_old_names, robust=True)
    logger.info("Media URLs of video %s revoked (media key %s)", video.slug, new_key)


def record_view(video: Video) -> None:
    """Count one view of the player page (an atomic increment, so concurrent views are not lost)."""
    Video.objects.filter(pk=video.pk).update(view_count=F("view_count") + 1)


class EditRejected(Exception):
    """An edit Hydra will not apply; ``message`` is written for the uploader."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def edit_video(video: Video, *, title: str, description: str, poster_at_seconds: float | None = None) -> Video:
    """The uploader changes the title and description, and may pick the poster's frame from the rendition.

    The new poster is written under a temporary name and renamed over the old one, so a failed or
    refused edit leaves both the row and the poster as they were.
    """
    title = title.strip()
    if not title:
        raise EditRejected("Give the video a title.")
    if problem := description_problem(description):
        raise EditRejected(problem)
    if poster_at_seconds is not None:
        _replace_poster(video, poster_at_seconds)
    video.title, video.description = title, description.strip()
    video.save(update_fields=["title", "description", "updated_at"])
    return video


def _replace_poster(video: Video, at_seconds: float) -> None:
    if not video.is_playable:
        raise EditRejected("The poster can be chosen once the video is ready.")
    duration = (video.rendition_duration_ms or 0) / 1000
    if not 0 <= at_seconds < duration:
        raise EditRejected(f"Choose a moment between 0 and {duration:.1f} seconds.")
    with transaction.atomic():
        # Named from the locked row: a revocation may have renamed the files since ``video`` was read, and must not
        # rename them while this writes (a poster under the old name would answer the revoked URLs again).
        locked = Video.objects.select_for_update().get(pk=video.pk)
        final_poster = poster_path(locked, "")
        poster_tmp = _temporary_path(final_poster)
        try:
            media.write_poster(locked.rendition.path, poster_tmp, at_seconds=at_seconds)
            os.replace(poster_tmp, default_storage.path(final_poster))
        except (OSError, ValueError) as exc:
            logger.warning("Poster of %s at %.2f s failed: %s", video.slug, at_seconds, exc)
            raise EditRejected("We could not take a poster from that moment; try another one.") from None
        finally:
            poster_tmp.unlink(missing_ok=True)
        if locked.poster.name != final_poster:
            Video.objects.filter(pk=video.pk).update(poster=final_poster)
        video.media_key, video.rendition.name, video.poster.name = locked.media_key, locked.rendition.name, final_poster
