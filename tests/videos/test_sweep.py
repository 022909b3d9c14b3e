"""A transcode that dies (worker killed, message lost) is swept: re-queued, then failed; no .part stays.

Issue 13, item 9.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from tests.videos.conftest import files_under
from videos import services
from videos.models import Video

pytestmark = pytest.mark.django_db


@pytest.fixture
def stuck_video(owner, media_root, make_video) -> Video:
    """Ingested, its transcoding never ran (as after a crash), its heartbeat long stopped, a .part left behind."""
    path = make_video("clip.mp4", seconds=2, fps=12, width=160, height=120)
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="video/mp4")
    video = services.ingest_upload(owner=owner, upload=upload)  # on_commit callbacks are not run here
    assert video.status == Video.Status.PROCESSING
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Video.objects.filter(pk=video.pk).update(transcode_attempts=1, transcode_heartbeat_at=an_hour_ago)
    part = media_root / "renditions" / f".{video.media_key}.deadbeef.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"half a rendition")
    os.utime(part, (time.time() - 3600, time.time() - 3600))
    return video


def test_a_stuck_video_is_requeued_and_transcoded_and_its_part_file_removed(
    stuck_video, media_root, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = services.sweep_stuck_videos()
    assert result.requeued == (stuck_video.slug,) and result.removed_parts == 1
    stuck_video.refresh_from_db()
    assert stuck_video.status == Video.Status.READY and stuck_video.transcode_attempts == 2
    assert not [path for path in files_under(media_root) if path.suffix == ".part"]


def test_a_video_that_keeps_dying_is_failed_with_a_reason(stuck_video, settings):
    Video.objects.filter(pk=stuck_video.pk).update(transcode_attempts=settings.HYDRA_TRANSCODE_MAX_ATTEMPTS)
    result = services.sweep_stuck_videos()
    assert result.failed == (stuck_video.slug,)
    stuck_video.refresh_from_db()
    assert stuck_video.status == Video.Status.FAILED and "stopped 3 times" in stuck_video.failure_reason


def test_a_transcode_in_progress_and_its_part_file_are_left_alone(stuck_video, media_root):
    Video.objects.filter(pk=stuck_video.pk).update(transcode_heartbeat_at=timezone.now())
    fresh = media_root / "renditions" / f".{stuck_video.media_key}.cafe.part"
    fresh.write_bytes(b"being written")
    result = services.sweep_stuck_videos()
    assert result.requeued == result.failed == ()
    assert fresh.exists()
    assert Video.objects.get(pk=stuck_video.pk).status == Video.Status.PROCESSING


def test_the_transcoder_writes_a_heartbeat(owner, media_root, make_video, django_capture_on_commit_callbacks):
    path = make_video("clip.mp4", seconds=2, fps=12, width=160, height=120)
    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="video/mp4")
    with django_capture_on_commit_callbacks(execute=True):
        video = services.ingest_upload(owner=owner, upload=upload)
    video.refresh_from_db()
    assert video.transcode_attempts == 1 and video.transcode_heartbeat_at is not None


def test_the_command_runs_the_sweep(stuck_video, capsys):
    call_command("sweep_stuck_videos")
    assert "requeued 1" in capsys.readouterr().out


def test_a_transcode_redelivered_too_often_fails_instead_of_looping(stuck_video, settings):
    """A file that kills its worker is redelivered (reject_on_worker_lost); attempts bound the loop."""
    Video.objects.filter(pk=stuck_video.pk).update(transcode_attempts=settings.HYDRA_TRANSCODE_MAX_ATTEMPTS)
    services.produce_rendition(stuck_video.pk)
    stuck_video.refresh_from_db()
    assert stuck_video.status == Video.Status.FAILED and "stopped 3 times" in stuck_video.failure_reason
    assert not stuck_video.rendition
