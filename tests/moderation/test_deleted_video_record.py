"""The moderation record outlives the video (issue 13, item 5).

An uploader deletes a video through the public API and the page: the media goes, the cases,
reports, decisions, appeals and audit stay, the deletion itself is audited, and a reversed
decision no longer turns the deletion into a 500.
"""

from __future__ import annotations

import os

import pytest
from django.test import Client
from django.urls import reverse

from moderation import services
from moderation.models import Appeal, AuditEvent, Case, Decision, Report
from videos.media_urls import MediaFile, url_for_viewer
from videos.models import Video


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def removed_and_appealed(make_playable_video, uploader, viewer, moderator, reason):
    video = make_playable_video("Appealed")
    report = services.report_video(video, viewer, "sexual", "not ok")
    removal = services.decide_case(report.case, moderator, "remove", reason("sexual-content"))
    appeal = services.appeal_decision(removal, uploader, "It is a medical video.")
    return video, report, removal, appeal


def media_files(video: Video) -> list:
    return [field.path for field in (video.rendition, video.poster) if field]


def test_deleting_through_the_api_keeps_the_record_and_removes_the_media(
    removed_and_appealed, uploader, viewer, django_capture_on_commit_callbacks
):
    video, report, removal, appeal = removed_and_appealed
    files = media_files(video)
    assert files and all(os.path.exists(path) for path in files)

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(uploader).delete(f"/api/videos/{video.slug}/")
    assert response.status_code == 204

    assert Report.objects.filter(pk=report.pk).exists()
    assert Decision.objects.filter(pk=removal.pk).exists()
    assert Appeal.objects.filter(pk=appeal.pk).exists()
    assert Case.objects.filter(video_id=video.pk).count() == 2
    assert not any(os.path.exists(path) for path in files), "the media is gone"
    kept = Video.objects.get(pk=video.pk)
    assert kept.deleted_at is not None and not kept.rendition and not kept.original and not kept.poster
    deletion = AuditEvent.objects.get(action="video_deleted", video_id=video.pk)
    assert deletion.actor == uploader and "record is kept" in deletion.reason

    # Nobody reaches the media or the page any more, and the uploader no longer lists it.
    assert client_for(uploader).get(f"/api/videos/{video.slug}/").status_code == 404
    assert client_for(uploader).get(reverse("videos:player", args=[video.slug])).status_code == 404
    assert url_for_viewer(uploader, kept, MediaFile.RENDITION) is None
    assert video.slug not in client_for(uploader).get(reverse("videos:mine")).content.decode()
    # The reporter's "My reports" entry is still there.
    assert "Appealed" in client_for(viewer).get(reverse("moderation:my_reports")).content.decode()
    # A second deletion finds nothing to delete.
    assert client_for(uploader).delete(f"/api/videos/{video.slug}/").status_code == 404


def test_deleting_after_a_reversed_decision_is_not_a_500(
    make_playable_video, uploader, viewer, moderator, senior, reason
):
    video = make_playable_video("Reversed")
    case = services.report_video(video, viewer, "violence", "").case
    removal = services.decide_case(case, moderator, "remove", reason("sexual-content"))
    reversal = services.reverse_decision(removal, senior, reason("no-violation"))

    response = client_for(uploader).post(reverse("videos:delete", args=[video.slug]))
    assert response.status_code == 302
    assert Decision.objects.filter(pk__in=[removal.pk, reversal.pk]).count() == 2
    assert AuditEvent.objects.filter(action="video_deleted", video_id=video.pk, actor=uploader).exists()


def test_a_video_without_a_moderation_record_is_deleted_outright_and_the_deletion_audited(
    make_playable_video, uploader
):
    video = make_playable_video("Plain")
    assert client_for(uploader).delete(f"/api/videos/{video.slug}/").status_code == 204
    assert not Video.objects.filter(pk=video.pk).exists()
    assert AuditEvent.objects.filter(action="video_deleted", video_id=video.pk, actor=uploader).exists()
