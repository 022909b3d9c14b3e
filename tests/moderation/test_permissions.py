"""Who may do what: each role tries what it must not do."""

from __future__ import annotations

import pytest
from django.urls import reverse

from moderation import services
from moderation.models import AuditEvent, Case, Decision, PolicyReason, Report

pytestmark = pytest.mark.django_db

QUEUE = "admin:moderation_case_changelist"


@pytest.fixture
def case(video, make_verdict) -> Case:
    return services.open_case_for_verdict(make_verdict(video))


def _case_urls(case: Case) -> list[str]:
    return [
        reverse(QUEUE),
        reverse("admin:moderation_case_change", args=[case.pk]),
        reverse("admin:moderation_case_frame", args=[case.pk, 3000]),
        reverse("admin:moderation_auditevent_changelist"),
        reverse("admin:moderation_decision_changelist"),
    ]


def test_anonymous_and_uploaders_never_reach_the_admin(client, case, uploader, viewer):
    for user in (None, uploader, viewer):
        if user is not None:
            client.force_login(user)
        for url in _case_urls(case):
            response = client.get(url)
            assert response.status_code == 302 and "/admin/login/" in response["Location"], (user, url)
        response = client.post(reverse("admin:moderation_case_work", args=[case.pk]), {"op": "claim"})
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    case.refresh_from_db()
    assert case.status == "open" and case.assignee is None


def test_ordinary_staff_see_nothing_of_the_queue(client, case, staff, reason):
    client.force_login(staff)
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert b"moderation/case" not in index.content and b"Review queue" not in index.content
    for url in _case_urls(case):
        assert client.get(url).status_code == 403, url
    response = client.post(
        reverse("admin:moderation_case_work", args=[case.pk]),
        {"op": "decide", "action": "remove", "policy_reason": reason("spam").pk},
    )
    assert response.status_code == 403
    assert not Decision.objects.exists()


def test_moderator_works_the_queue_but_cannot_edit_records(client, case, moderator):
    client.force_login(moderator)
    assert client.get(reverse(QUEUE)).status_code == 200
    assert client.get(reverse("admin:moderation_case_change", args=[case.pk])).status_code == 200
    assert client.get(reverse("admin:moderation_case_add")).status_code == 403
    assert client.get(reverse("admin:moderation_case_delete", args=[case.pk])).status_code == 403
    assert client.get(reverse("admin:moderation_policyreason_add")).status_code == 403
    event = AuditEvent.objects.first()
    assert client.get(reverse("admin:moderation_auditevent_change", args=[event.pk])).status_code == 200
    assert (
        client.post(reverse("admin:moderation_auditevent_change", args=[event.pk]), {"reason": "x"}).status_code == 403
    )
    assert client.get(reverse("admin:moderation_auditevent_delete", args=[event.pk])).status_code == 403


def test_moderator_cannot_reverse_or_decide_escalated(client, case, moderator, reason):
    client.force_login(moderator)
    work = reverse("admin:moderation_case_work", args=[case.pk])
    client.post(work, {"op": "decide", "action": "remove", "policy_reason": reason("sexual-content").pk})
    removal = Decision.objects.get()
    response = client.post(
        work, {"op": "reverse", "decision": removal.pk, "policy_reason": reason("no-violation").pk}, follow=True
    )
    assert "Only senior moderators can reverse decisions." in response.content.decode()
    assert not Decision.objects.filter(action="reverse").exists()


def test_escalated_case_needs_a_senior(client, video, make_verdict, moderator, senior, reason):
    case = services.open_case_for_verdict(make_verdict(video))
    services.decide_case(case, moderator, Decision.Action.ESCALATE, reason("child-safety"))
    work = reverse("admin:moderation_case_work", args=[case.pk])
    client.force_login(moderator)
    page = client.get(reverse("admin:moderation_case_change", args=[case.pk])).content.decode()
    assert "a senior moderator decides this case" in page
    client.post(work, {"op": "decide", "action": "remove", "policy_reason": reason("child-safety").pk})
    video.refresh_from_db()
    assert video.visibility == "published"
    client.force_login(senior)
    client.post(work, {"op": "decide", "action": "remove", "policy_reason": reason("child-safety").pk})
    video.refresh_from_db()
    assert video.visibility == "removed"


def test_senior_reverses_from_the_case_page(client, case, moderator, senior, reason):
    removal = services.decide_case(case, moderator, "remove", reason("sexual-content"))
    client.force_login(senior)
    page = client.get(reverse("admin:moderation_case_change", args=[case.pk])).content.decode()
    assert "Reverse remove" in page
    client.post(
        reverse("admin:moderation_case_work", args=[case.pk]),
        {"op": "reverse", "decision": removal.pk, "policy_reason": reason("no-violation").pk, "note": "art"},
    )
    case.video.refresh_from_db()
    assert case.video.visibility == "published"
    assert Decision.objects.get(action="reverse").reverses == removal


def test_senior_may_edit_the_policy_list_but_nobody_deletes_it(client, senior, moderator):
    client.force_login(senior)
    response = client.post(
        reverse("admin:moderation_policyreason_add"),
        {
            "code": "impersonation",
            "title": "Impersonation",
            "public_explanation": "Pretending to be someone else.",
            "category": "",
            "is_violation": "on",
            "is_active": "on",
            "position": 200,
        },
    )
    assert response.status_code == 302
    assert PolicyReason.objects.filter(code="impersonation").exists()
    reason = PolicyReason.objects.get(code="impersonation")
    assert client.get(reverse("admin:moderation_policyreason_delete", args=[reason.pk])).status_code == 403


def test_moderators_group_has_exactly_the_needed_permissions(db):
    from django.contrib.auth.models import Group

    perms = lambda name: {  # noqa: E731
        f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=name).permissions.all()
    }
    moderators = perms("Moderators")
    assert moderators == {
        "moderation.view_case",
        "moderation.decide_case",
        "moderation.view_decision",
        "moderation.view_report",
        "moderation.view_appeal",
        "moderation.view_auditevent",
        "moderation.view_policyreason",
        "videos.view_hidden_video",
    }
    assert perms("Senior moderators") - moderators == {
        "moderation.decide_escalated",
        "moderation.reverse_decision",
        "moderation.add_policyreason",
        "moderation.change_policyreason",
    }


def test_reporting_needs_an_account_and_not_ones_own_video(client, video, uploader):
    url = reverse("moderation:report", args=[video.slug])
    response = client.post(url, {"reason": "spam"})
    assert response.status_code == 302 and "login" in response["Location"]
    client.force_login(uploader)
    response = client.post(url, {"reason": "spam"})
    assert response.status_code == 403
    assert "cannot report your own video" in response.content.decode()
    assert not Report.objects.exists()


def test_only_the_uploader_reaches_the_appeal_form(client, case, moderator, viewer, uploader, reason):
    removal = services.decide_case(case, moderator, "remove", reason("spam"))
    url = reverse("moderation:appeal", args=[removal.pk])
    client.force_login(viewer)
    assert client.get(url).status_code == 404
    assert client.post(url, {"text": "let me"}).status_code == 404
    client.force_login(uploader)
    assert client.get(url).status_code == 200
