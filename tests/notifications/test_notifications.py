"""A moderator's decision reaches the uploader, the appellant and the reporters: by e-mail and on the site."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from moderation import services as moderation
from moderation.models import Decision
from notifications.models import Notification

pytestmark = pytest.mark.django_db


def _remove_after_report(video, viewer, moderator, reason, django_capture_on_commit_callbacks) -> Decision:
    report = moderation.report_video(video, viewer, "sexual", "Nudity at 0:02.")
    with django_capture_on_commit_callbacks(execute=True):
        return moderation.decide_case(report.case, moderator, Decision.Action.REMOVE, reason("sexual-content"))


def test_a_removal_tells_the_uploader_and_the_reporter(
    video, uploader, viewer, moderator, reason, django_capture_on_commit_callbacks
):
    uploader.email = "uploader@example.org"
    uploader.save()
    _remove_after_report(video, viewer, moderator, reason, django_capture_on_commit_callbacks)
    told = {n.recipient.username: n for n in Notification.objects.all()}
    assert set(told) == {uploader.username, viewer.username}
    assert "Removed under the policy “Sexual content”" in told[uploader.username].body
    assert "appeal" in told[uploader.username].body
    assert "acted on it" in told[viewer.username].body
    assert [message.to for message in mail.outbox] == [["uploader@example.org"]]  # the viewer has no address
    assert "Beach day" in mail.outbox[0].subject


def test_an_overturned_appeal_tells_the_appellant(
    video, uploader, viewer, moderator, moderator2, reason, django_capture_on_commit_callbacks
):
    removal = _remove_after_report(video, viewer, moderator, reason, django_capture_on_commit_callbacks)
    appeal = moderation.appeal_decision(removal, uploader, "These are drawn shapes.")
    with django_capture_on_commit_callbacks(execute=True):
        moderation.decide_case(appeal.case, moderator2, Decision.Action.APPROVE, reason("no-violation"))
    latest = Notification.objects.filter(recipient=uploader).first()
    assert "appeal" in latest.subject and "overturned" in latest.body


def test_an_escalation_tells_nobody(video, viewer, moderator, reason, django_capture_on_commit_callbacks):
    report = moderation.report_video(video, viewer, "sexual")
    with django_capture_on_commit_callbacks(execute=True):
        moderation.decide_case(report.case, moderator, Decision.Action.ESCALATE, reason("sexual-content"))
    assert not Notification.objects.exists()


def test_the_list_shows_only_ones_own_and_marks_them_read(
    client, video, uploader, viewer, moderator, reason, django_capture_on_commit_callbacks
):
    _remove_after_report(video, viewer, moderator, reason, django_capture_on_commit_callbacks)
    client.force_login(uploader)
    assert "Notifications <span" in client.get(reverse("videos:home")).content.decode()  # the unread count
    page = client.get(reverse("notifications:list")).content.decode()
    assert "Removed under the policy" in page and "acted on it" not in page  # the reporter's stays theirs
    assert not Notification.objects.filter(recipient=uploader, read_at__isnull=True).exists()
    assert Notification.objects.filter(recipient=viewer, read_at__isnull=True).exists()


def test_the_list_needs_an_account(client):
    response = client.get(reverse("notifications:list"))
    assert response.status_code == 302 and reverse("login") in response["Location"]
