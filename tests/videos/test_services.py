"""Transcoding outcomes: ready with a signal, failed with a reason and no half-written files, idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.videos.conftest import files_under
from videos import media, services
from videos.models import Video
from videos.selectors import can_view, published_videos
from videos.signals import video_ready


@pytest.fixture
def processing_video(owner, media_root, make_video) -> Video:
    """Ingested, with its transcoding not run yet (the on-commit callback is never executed)."""
    clip = make_video(seconds=2, fps=10, width=160, height=120)
    return services.ingest_upload(
        owner=owner, upload=SimpleUploadedFile("clip.mp4", clip.read_bytes()), title="Pending"
    )


def test_ingest_queues_transcoding_after_commit(owner, media_root, make_video, django_capture_on_commit_callbacks):
    clip = make_video(seconds=1, fps=10)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        video = services.ingest_upload(owner=owner, upload=SimpleUploadedFile("a.mp4", clip.read_bytes()))
    assert video.status == Video.Status.PROCESSING
    assert len(callbacks) == 1
    assert video.title == "a"  # from the file name when no title is given


def test_a_ready_video_sends_video_ready_once_committed(processing_video, django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, video, **kwargs):
        received.append(video.pk)

    video_ready.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            video = services.produce_rendition(processing_video.pk)
            assert received == []  # not before the commit
        assert received == [video.pk]
        assert video.status == Video.Status.READY and video.processed_at is not None
        with django_capture_on_commit_callbacks(execute=True):
            services.produce_rendition(processing_video.pk)  # a redelivered task
        assert received == [video.pk]
    finally:
        video_ready.disconnect(receiver)


def test_producing_the_rendition_twice_changes_nothing(processing_video, media_root):
    first = services.produce_rendition(processing_video.pk)
    before = {path: path.stat().st_mtime_ns for path in files_under(media_root)}
    second = services.produce_rendition(processing_video.pk)
    assert second.rendition.name == first.rendition.name
    assert {path: path.stat().st_mtime_ns for path in files_under(media_root)} == before


def test_a_failed_transcode_keeps_the_original_and_leaves_no_rendition(processing_video, media_root, monkeypatch):
    real_transcode = media.transcode

    def transcode_then_crash(source, destination, **kwargs):
        real_transcode(source, destination, **kwargs)
        assert Path(destination).stat().st_size > 0  # a whole file was written under the temporary name...
        raise RuntimeError("disk full")  # ...and then something went wrong

    monkeypatch.setattr(media, "transcode", transcode_then_crash)
    video = services.produce_rendition(processing_video.pk)
    video.refresh_from_db()
    assert video.status == Video.Status.FAILED
    assert video.failure_reason == services.CONVERSION_FAILED
    assert not video.rendition and not video.poster
    assert [path.relative_to(media_root).as_posix() for path in files_under(media_root)] == [video.original.name]


def test_an_original_that_cannot_be_decoded_fails_with_a_reason(processing_video, media_root, caplog):
    Path(processing_video.original.path).write_bytes(b"\x00" * 4096)  # damaged on disk after ingest
    video = services.produce_rendition(processing_video.pk)
    video.refresh_from_db()
    assert video.status == Video.Status.FAILED
    assert video.failure_reason == services.CONVERSION_FAILED
    # the uploader sees no server path; the log keeps the whole error for the operator
    assert str(media_root) not in video.failure_reason and "/" not in video.failure_reason
    assert str(media_root) in caplog.text
    assert [path.name for path in files_under(media_root)] == [Path(video.original.name).name]


def test_a_missing_original_fails_clearly(processing_video):
    Path(processing_video.original.path).unlink()
    video = services.produce_rendition(processing_video.pk)
    video.refresh_from_db()
    assert (video.status, video.failure_reason) == (
        Video.Status.FAILED,
        "The uploaded file is missing, so the video could not be converted.",
    )


def test_a_video_deleted_during_transcoding_leaves_no_files(processing_video, media_root, monkeypatch):
    real_transcode = media.transcode

    def transcode_while_deleted(source, destination, **kwargs):
        info = real_transcode(source, destination, **kwargs)
        Video.objects.filter(pk=processing_video.pk).delete()
        Path(processing_video.original.path).unlink()
        return info

    monkeypatch.setattr(media, "transcode", transcode_while_deleted)
    assert services.produce_rendition(processing_video.pk) is None
    assert files_under(media_root) == []


def test_a_broker_that_cannot_be_reached_marks_the_video_failed(owner, media_root, make_video, monkeypatch):
    from videos import tasks

    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.transcode_video, "delay", refuse)
    clip = make_video(seconds=1, fps=10)
    video = services.ingest_upload(owner=owner, upload=SimpleUploadedFile("a.mp4", clip.read_bytes()))
    services._queue_transcoding(video)
    video.refresh_from_db()
    assert video.status == Video.Status.FAILED and "could not be queued" in video.failure_reason


def test_hold_policy_keeps_new_uploads_for_review(owner, media_root, make_video, settings):
    """Held from the upload on: never public while processing, nor once ready (until analysis clears it)."""
    settings.HYDRA_PUBLICATION_POLICY = "hold"
    clip = make_video(seconds=1, fps=10)
    video = services.ingest_upload(owner=owner, upload=SimpleUploadedFile("a.mp4", clip.read_bytes()))
    assert (video.status, video.visibility) == (Video.Status.PROCESSING, Video.Visibility.HELD)
    assert video.visibility_reason == services.HELD_FOR_REVIEW_REASON
    assert not can_view(AnonymousUser(), video) and video not in published_videos()
    video = services.produce_rendition(video.pk)
    assert (video.status, video.visibility) == (Video.Status.READY, Video.Visibility.HELD)
    assert not can_view(AnonymousUser(), video) and video not in published_videos()
    assert can_view(owner, video)


def test_immediate_policy_publishes_once_ready(owner, media_root, make_video, settings):
    settings.HYDRA_PUBLICATION_POLICY = "immediate"
    clip = make_video(seconds=1, fps=10)
    video = services.ingest_upload(owner=owner, upload=SimpleUploadedFile("a.mp4", clip.read_bytes()))
    assert (video.visibility, video.visibility_reason) == (Video.Visibility.PUBLISHED, "")
    assert not can_view(AnonymousUser(), video)  # published, but nothing to play while it is processing
    video = services.produce_rendition(video.pk)
    assert can_view(AnonymousUser(), video) and video in published_videos()
