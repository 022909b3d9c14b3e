"""Viewer and uploader pages: reporting (validated, one open report, rate-limited), My reports, appeals."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from moderation import services
from moderation.models import Appeal, Case, Report

pytestmark = pytest.mark.django_db


def _report(client, video, reason="spam", text="", ip="10.0.0.1"):
    return client.post(
        reverse("moderation:report", args=[video.slug]), {"reason": reason, "text": text}, REMOTE_ADDR=ip
    )


def test_report_is_filed_into_a_case_and_acknowledged(client, video, viewer):
    client.force_login(viewer)
    response = _report(client, video, "violence", "fight at 0:12")
    assert response.status_code == 302 and response["Location"] == reverse("videos:player", args=[video.slug])
    report = Report.objects.get()
    assert (report.reason, report.text, report.ip_address, report.case.source) == (
        "violence",
        "fight at 0:12",
        "10.0.0.1",
        "report",
    )
    assert report.case.report_count == 1


def test_bad_reports_get_a_clear_error_and_store_nothing(client, video, viewer):
    client.force_login(viewer)
    response = _report(client, video, "not-a-reason")
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    response = _report(client, video, "spam", "x" * 1001)
    assert response.status_code == 400
    assert not Report.objects.exists() and not Case.objects.exists()


def test_empty_posts_are_explained(client, video, make_verdict, viewer, uploader, moderator, reason):
    """A POST with no fields at all is a bound, invalid form: 400 with the field errors shown."""
    client.force_login(viewer)
    response = client.post(reverse("moderation:report", args=[video.slug]))
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    removal = services.decide_case(
        services.open_case_for_verdict(make_verdict(video)), moderator, "remove", reason("sexual-content")
    )
    client.force_login(uploader)
    response = client.post(reverse("moderation:appeal", args=[removal.pk]))
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    assert not Report.objects.exists() and not Appeal.objects.exists()


def test_one_open_report_per_viewer_and_video(client, video, viewer, moderator, reason):
    client.force_login(viewer)
    _report(client, video, "spam")
    response = _report(client, video, "hate")
    assert response.status_code == 409 and "already reported" in response.content.decode()
    assert Report.objects.count() == 1
    services.decide_case(Report.objects.get().case, moderator, "approve", reason("no-violation"))
    assert _report(client, video, "hate").status_code == 302  # handled: the viewer may report again
    assert Report.objects.count() == 2


def test_reports_are_rate_limited_per_user(client, settings, make_ready_video, viewer):
    settings.HYDRA_REPORTS_PER_HOUR = 2
    videos = [make_ready_video(f"v{i}") for i in range(3)]
    client.force_login(viewer)
    assert [_report(client, v, ip=f"10.0.0.{i}").status_code for i, v in enumerate(videos)] == [302, 302, 429]
    assert "at most 2 reports an hour" in _report(client, videos[2], ip="10.9.9.9").content.decode()
    assert Report.objects.count() == 2


def test_reports_are_rate_limited_per_ip(client, settings, make_ready_video):
    settings.HYDRA_REPORTS_PER_HOUR = 2
    video = make_ready_video()
    statuses = []
    for i in range(3):
        client.force_login(User.objects.create_user(f"sock{i}"))
        statuses.append(_report(client, video, ip="192.0.2.7").status_code)
    assert statuses == [302, 302, 429]
    assert Report.objects.count() == 2


def test_cannot_report_what_one_cannot_see(client, video, viewer):
    video.visibility = "removed"
    video.save()
    client.force_login(viewer)
    assert _report(client, video).status_code == 404
    assert not Report.objects.exists()


def test_report_partial_for_each_kind_of_viewer(video, viewer, uploader):
    factory = RequestFactory()

    def render(user):
        request = factory.get(f"/v/{video.slug}/")
        request.user = user
        return render_to_string("moderation/_report.html", {"video": video}, request=request)

    from django.contrib.auth.models import AnonymousUser

    assert "Log in to report" in render(AnonymousUser())
    assert render(uploader).strip() == ""
    form = render(viewer)
    assert reverse("moderation:report", args=[video.slug]) in form and 'value="child_safety"' in form
    assert f'maxlength="{services.REPORT_TEXT_MAX}"' in form  # the limit the server enforces
    assert "<style" not in form  # its styles live in hydra.css
    services.report_video(video, viewer, "spam")
    assert "Reported · under review" in render(viewer)


def test_my_reports_shows_what_became_of_them(client, video, viewer, moderator, reason):
    report = services.report_video(video, viewer, "sexual", "at 0:03")
    client.force_login(viewer)
    page = client.get(reverse("moderation:my_reports")).content.decode()
    assert "Under review" in page and "Sexual content" in page
    services.decide_case(report.case, moderator, "remove", reason("sexual-content"))
    page = client.get(reverse("moderation:my_reports")).content.decode()
    assert "Handled" in page and "Action taken: the video was removed under the policy “Sexual content”." in page
    other = User.objects.create_user("other")
    client.force_login(other)
    assert "at 0:03" not in client.get(reverse("moderation:my_reports")).content.decode()


def _decision_status(video) -> str:
    return render_to_string("moderation/_decision_status.html", {"video": video})


def test_uploader_sees_the_decision_appeals_once_and_sees_the_outcome(
    client, video, make_verdict, uploader, moderator, moderator2, reason
):
    removal = services.decide_case(
        services.open_case_for_verdict(make_verdict(video)), moderator, "remove", reason("sexual-content")
    )
    status = _decision_status(video)
    assert "Moderation decision: Removed" in status and "Sexual content" in status
    assert reverse("moderation:appeal", args=[removal.pk]) in status

    client.force_login(uploader)
    url = reverse("moderation:appeal", args=[removal.pk])
    assert client.post(url, {"text": ""}).status_code == 400
    response = client.post(url, {"text": "It is a breastfeeding tutorial."})
    assert response.status_code == 302 and response["Location"] == reverse("videos:mine")
    assert client.post(url, {"text": "again"}).status_code == 409
    assert Appeal.objects.count() == 1
    status = _decision_status(video)
    assert "Your appeal" in status and "A different moderator is reviewing it" in status
    assert "Appeal this decision" not in status

    services.decide_case(Appeal.objects.get().case, moderator2, "approve", reason("no-violation"))
    status = _decision_status(video)
    assert "Decision overturned" in status and "the video is back up" in status
