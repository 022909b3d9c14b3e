"""The review queue: priority ordering, filters, search, claim and bulk actions in the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from moderation import selectors, services
from moderation.models import Case
from videos.models import Video

pytestmark = pytest.mark.django_db


def _queue(client, **params) -> list[int]:
    response = client.get(reverse("admin:moderation_case_changelist"), params)
    assert response.status_code == 200
    return [case.pk for case in response.context["cl"].result_list]


def _case(
    video: Video,
    *,
    source="flag",
    category="nudity",
    severity=3,
    score=0.5,
    reports=0,
    age_hours=0.0,
    views_since=0,
    status="open",
    assignee=None,
) -> Case:
    case = Case.objects.create(
        video=video,
        source=source,
        category=category,
        severity=severity,
        score=score,
        report_count=reports,
        views_at_open=video.view_count,
        status=status,
        assignee=assignee,
    )
    Video.objects.filter(pk=video.pk).update(view_count=video.view_count + views_since)
    Case.objects.filter(pk=case.pk).update(opened_at=timezone.now() - timedelta(hours=age_hours))
    return case


def test_priority_formula(make_ready_video):
    now = timezone.now()
    case = _case(make_ready_video(), severity=5, score=0.9, reports=2, views_since=999, age_hours=10)
    annotated = selectors.case_queue(now=now).get(pk=case.pk)
    expected = 20 * 5 * 0.9 + 10 * 2 + 5 * 6.907755 + 0.5 * 10
    assert annotated.views_since_open == 999
    assert annotated.priority == pytest.approx(expected, abs=0.05)
    old = _case(make_ready_video(), severity=1, score=0.0, age_hours=500)
    assert selectors.case_queue(now=now).get(pk=old.pk).priority == pytest.approx(0.5 * 48, abs=0.05)


def test_queue_orders_by_each_factor_of_priority(client, moderator, make_ready_video):
    critical = _case(make_ready_video("critical"), severity=5, score=0.9)
    mild = _case(make_ready_video("mild"), severity=2, score=0.7)
    reported = _case(make_ready_video("reported"), severity=2, score=0.7, reports=3)
    viral = _case(make_ready_video("viral"), severity=2, score=0.7, views_since=5000)
    waiting = _case(make_ready_video("waiting"), severity=2, score=0.7, age_hours=30)
    client.force_login(moderator)
    order = _queue(client)
    assert order[0] == critical.pk and order[-1] == mild.pk
    assert set(order[1:4]) == {reported.pk, viral.pk, waiting.pk}
    assert _queue(client, o="9")[0] == waiting.pk  # sortable by age (oldest first) too


def test_queue_filters(client, moderator, moderator2, make_ready_video):
    a = _case(make_ready_video("a"), category="nudity", source="flag", age_hours=0.2)
    b = _case(
        make_ready_video("b"), category="violence", source="report", age_hours=30, status="claimed", assignee=moderator
    )
    c = _case(
        make_ready_video("c"),
        category="violence",
        source="appeal",
        age_hours=200,
        status="claimed",
        assignee=moderator2,
    )
    done = _case(make_ready_video("d"), category="nudity", status="decided")
    escalated = _case(make_ready_video("e"), category="spam", status="escalated")
    client.force_login(moderator)
    assert set(_queue(client)) == {a.pk, b.pk, c.pk, escalated.pk}  # active cases by default
    assert set(_queue(client, status="all")) == {a.pk, b.pk, c.pk, done.pk, escalated.pk}
    assert _queue(client, status="decided") == [done.pk]
    assert _queue(client, status="escalated") == [escalated.pk]
    assert set(_queue(client, category="violence")) == {b.pk, c.pk}
    assert _queue(client, source__exact="report") == [b.pk]
    assert set(_queue(client, age="1h")) == {a.pk, escalated.pk}
    assert _queue(client, age="7d") == [b.pk]
    assert _queue(client, age="older") == [c.pk]
    assert _queue(client, assignee="me") == [b.pk]
    assert set(_queue(client, assignee="none")) == {a.pk, escalated.pk}
    assert _queue(client, assignee=str(moderator2.pk)) == [c.pk]


def test_queue_search_by_title_uploader_and_report_text(client, moderator, viewer, make_ready_video):
    beach = make_ready_video("Beach day")
    kitchen = make_ready_video("Kitchen tour")
    flag = _case(beach)
    report = services.report_video(kitchen, viewer, "hate", "slur at 0:42")
    client.force_login(moderator)
    assert _queue(client, q="beach") == [flag.pk]
    assert _queue(client, q="slur") == [report.case_id]
    assert set(_queue(client, q="uploader")) == {flag.pk, report.case_id}


def test_claim_action_and_bulk_decisions(client, moderator, moderator2, make_ready_video, reason):
    cases = [_case(make_ready_video(f"v{i}")) for i in range(4)]
    services.claim_case(cases[3], moderator2)
    client.force_login(moderator)
    url = reverse("admin:moderation_case_changelist")
    client.post(url, {"action": "claim_selected", "_selected_action": [cases[0].pk]})
    cases[0].refresh_from_db()
    assert (cases[0].status, cases[0].assignee) == ("claimed", moderator)

    response = client.post(url, {"action": "remove_selected", "_selected_action": [cases[1].pk]}, follow=True)
    assert "Choose the policy reason" in response.content.decode()
    assert Video.objects.filter(visibility="removed").count() == 0

    response = client.post(
        url,
        {
            "action": "remove_selected",
            "_selected_action": [c.pk for c in cases[1:]],
            "policy_reason": reason("spam").pk,
        },
        follow=True,
    )
    page = response.content.decode()
    assert "Removed 2 case(s)" in page and f"#{cases[3].pk}: Case #{cases[3].pk} is claimed by mod2" in page
    assert set(Video.objects.filter(visibility="removed").values_list("pk", flat=True)) == {
        cases[1].video_id,
        cases[2].video_id,
    }
    client.post(url, {"action": "approve_selected", "_selected_action": [cases[0].pk]})
    cases[0].refresh_from_db()
    assert cases[0].status == "decided" and cases[0].decisions.get().policy_reason.code == "no-violation"


def test_queue_page_shows_priority_and_severity(client, moderator, make_ready_video):
    _case(make_ready_video("Critical clip"), severity=5, score=0.95)
    client.force_login(moderator)
    page = client.get(reverse("admin:moderation_case_changelist")).content.decode()
    assert 'class="mq-prio mq-prio--critical"' in page and 'class="mq-sev mq-sev--5"' in page
    assert "Priority = 20·severity·score" in page


@pytest.mark.parametrize("policy_reason", ["not-a-number", "999999", "retired"])
def test_bulk_actions_refuse_an_unknown_or_retired_policy_reason_clearly(
    client, moderator, make_ready_video, reason, policy_reason
):
    case = _case(make_ready_video("v"))
    if policy_reason == "retired":
        retired = reason("spam")
        retired.is_active = False
        retired.save()
        policy_reason = retired.pk
    client.force_login(moderator)
    for action in ("approve_selected", "remove_selected"):
        response = client.post(
            reverse("admin:moderation_case_changelist"),
            {"action": action, "_selected_action": [case.pk], "policy_reason": policy_reason},
            follow=True,
        )
        assert response.status_code == 200
        assert "Policy reason: choose one of the active reasons in the list." in response.content.decode()
    case.refresh_from_db()
    assert case.status == "open" and not case.decisions.exists()


def test_bulk_approve_without_the_default_reason_asks_for_one(client, moderator, make_ready_video, reason):
    case = _case(make_ready_video("v"))
    reason("no-violation").delete()
    client.force_login(moderator)
    response = client.post(
        reverse("admin:moderation_case_changelist"),
        {"action": "approve_selected", "_selected_action": [case.pk]},
        follow=True,
    )
    assert response.status_code == 200 and "Choose the policy reason for the approvals." in response.content.decode()
    case.refresh_from_db()
    assert case.status == "open"
