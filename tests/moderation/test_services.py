"""Moderation use cases: cases from verdicts, decisions and their enforcement, reversal, appeals, hold policy."""

from __future__ import annotations

import pytest

from moderation import selectors, services
from moderation.models import Appeal, AuditEvent, Case, Decision, Report
from tests.moderation.conftest import hold_for_review
from videos.models import Video

pytestmark = pytest.mark.django_db


def _events(video: Video) -> list[tuple[str, str, str]]:
    return list(AuditEvent.objects.filter(video=video).order_by("id").values_list("action", "from_state", "to_state"))


def test_flagged_verdict_opens_one_case_and_refreshes_it(video, make_verdict):
    verdict = make_verdict(video, "nudity", score=0.8, severity=4)
    case = services.open_case_for_verdict(verdict)
    assert (case.source, case.category, case.status, case.severity, case.score) == ("flag", "nudity", "open", 4, 0.8)
    verdict.score = 0.95
    verdict.save()
    again = services.open_case_for_verdict(verdict)
    assert again.pk == case.pk and again.score == 0.95
    assert Case.objects.filter(video=video).count() == 1
    assert _events(video) == [("case_opened", "", "open")]


def test_unflagged_verdict_opens_nothing(video, make_verdict):
    verdict = make_verdict(video, "nudity", score=0.2)
    assert services.open_case_for_verdict(verdict) is None
    assert not Case.objects.exists()


def test_reviewed_flag_is_reopened_only_by_a_more_confident_model(video, make_verdict, moderator, reason):
    verdict = make_verdict(video, "nudity", score=0.8)
    case = services.open_case_for_verdict(verdict)
    services.decide_case(case, moderator, "approve", reason("no-violation"))
    assert services.open_case_for_verdict(verdict) is None
    verdict.score = 0.97
    verdict.save()
    reopened = services.open_case_for_verdict(verdict)
    assert reopened is not None and reopened.pk != case.pk and reopened.status == "open"


@pytest.mark.parametrize(
    ("action", "policy", "visibility", "shown"),
    [
        ("approve", "no-violation", "published", ""),
        ("remove", "graphic-violence", "removed", "Removed for violating the policy “Graphic violence”"),
        ("restrict", "sensitive-age-gate", "restricted", "Restricted under the policy “Sensitive: adults only”"),
    ],
)
def test_every_final_decision_is_enforced_and_audited(
    video, make_verdict, moderator, reason, action, policy, visibility, shown
):
    case = services.open_case_for_verdict(make_verdict(video, "violence", score=0.9))
    decision = services.decide_case(case, moderator, action, reason(policy), note="checked 0:03-0:05")
    video.refresh_from_db()
    case.refresh_from_db()
    assert video.visibility == visibility
    assert video.visibility_reason.startswith(shown)
    assert case.status == "decided" and case.assignee is None and case.closed_at is not None
    assert (decision.visibility_before, decision.visibility_after) == ("published", visibility)
    events = _events(video)
    assert ("case_status", "open", "decided") in events
    if visibility != "published":
        assert ("video_visibility", "published", visibility) in events
    status_event = AuditEvent.objects.get(case=case, action="case_status", to_state="decided")
    assert status_event.actor == moderator and "checked 0:03-0:05" in status_event.reason


def test_decision_reason_must_fit_the_action(video, make_verdict, moderator, reason):
    case = services.open_case_for_verdict(make_verdict(video))
    with pytest.raises(services.ModerationError, match="violates"):
        services.decide_case(case, moderator, "remove", reason("no-violation"))
    with pytest.raises(services.ModerationError, match="clears"):
        services.decide_case(case, moderator, "approve", reason("spam"))
    assert not Decision.objects.exists()
    video.refresh_from_db()
    assert video.visibility == "published"


def test_escalated_case_is_decided_only_by_a_senior(video, make_verdict, moderator, senior, reason):
    case = services.open_case_for_verdict(make_verdict(video))
    services.claim_case(case, moderator)
    services.decide_case(
        case, moderator, Decision.Action.ESCALATE, reason("child-safety"), note="not sure, looks like a minor"
    )
    case.refresh_from_db()
    assert (case.status, case.assignee) == ("escalated", None)
    with pytest.raises(services.NotAllowed, match="senior"):
        services.decide_case(case, moderator, "remove", reason("child-safety"))
    with pytest.raises(services.NotAllowed):
        services.claim_case(case, moderator)
    services.decide_case(case, senior, "remove", reason("child-safety"))
    video.refresh_from_db()
    assert video.visibility == "removed"


def test_claim_keeps_two_moderators_off_one_case(video, make_verdict, moderator, moderator2, reason):
    case = services.open_case_for_verdict(make_verdict(video))
    services.claim_case(case, moderator)
    with pytest.raises(services.Conflict, match="claimed by mod"):
        services.claim_case(case, moderator2)
    with pytest.raises(services.Conflict, match="claimed by mod"):
        services.decide_case(case, moderator2, "approve", reason("no-violation"))
    services.release_case(case, moderator)
    services.claim_case(case, moderator2)
    case.refresh_from_db()
    assert (case.status, case.assignee) == ("claimed", moderator2)
    transitions = list(AuditEvent.objects.filter(case=case, action="case_status").values_list("from_state", "to_state"))
    assert transitions == [("open", "claimed"), ("claimed", "open"), ("open", "claimed")]


def test_removal_closes_the_other_cases_and_tells_reporters(video, make_verdict, moderator, viewer, reason):
    flag_case = services.open_case_for_verdict(make_verdict(video, "nudity"))
    report = services.report_video(video, viewer, "spam", "selling stuff")
    services.decide_case(flag_case, moderator, "remove", reason("sexual-content"))
    report.refresh_from_db()
    assert report.case.status == "closed"
    assert report.status == "handled" and "removed" in report.outcome


def test_approve_does_not_lift_another_cases_restriction(video, make_verdict, moderator, viewer, reason):
    flag_case = services.open_case_for_verdict(make_verdict(video, "nudity"))
    report = services.report_video(video, viewer, "hate")
    services.decide_case(flag_case, moderator, "restrict", reason("sensitive-age-gate"))
    services.decide_case(report.case, moderator, "approve", reason("no-violation"))
    video.refresh_from_db()
    assert video.visibility == "restricted"
    assert "Sensitive" in video.visibility_reason


def test_bulk_decide_skips_what_it_may_not_decide(make_ready_video, make_verdict, moderator, moderator2, reason):
    cases = [services.open_case_for_verdict(make_verdict(make_ready_video(f"v{i}"))) for i in range(3)]
    services.claim_case(cases[2], moderator2)
    decided, skipped = services.bulk_decide(cases, moderator, "remove", reason("spam"))
    assert [d.case_id for d in decided] == [cases[0].pk, cases[1].pk]
    assert [(c.pk, "claimed" in why) for c, why in skipped] == [(cases[2].pk, True)]
    assert Video.objects.filter(visibility="removed").count() == 2
    with pytest.raises(services.ModerationError):
        services.bulk_decide(cases, moderator, "restrict", reason("spam"))


def test_senior_reverses_a_removal_and_only_once(video, make_verdict, moderator, senior, reason):
    case = services.open_case_for_verdict(make_verdict(video))
    removal = services.decide_case(case, moderator, "remove", reason("sexual-content"))
    with pytest.raises(services.NotAllowed):
        services.reverse_decision(removal, moderator, reason("no-violation"))
    reversal = services.reverse_decision(removal, senior, reason("no-violation"), note="it's a painting")
    video.refresh_from_db()
    assert (video.visibility, video.visibility_reason) == ("published", "")
    assert reversal.reverses == removal and reversal.violation is False
    assert AuditEvent.objects.filter(action="decision_reversed", actor=senior, from_state="remove").exists()
    with pytest.raises(services.Conflict, match="already reversed"):
        services.reverse_decision(removal, senior, reason("no-violation"))


def test_reversing_an_approval_removes_the_video(video, make_verdict, moderator, senior, reason):
    approval = services.decide_case(
        services.open_case_for_verdict(make_verdict(video)), moderator, "approve", reason("no-violation")
    )
    services.reverse_decision(approval, senior, reason("sexual-content"))
    video.refresh_from_db()
    assert video.visibility == "removed"
    assert selectors.final_labels("nudity") == [(video.pk, "nudity", 1)]


def test_uploader_appeals_once_and_a_different_moderator_reviews(
    video, make_verdict, uploader, viewer, moderator, moderator2, reason
):
    removal = services.decide_case(
        services.open_case_for_verdict(make_verdict(video)), moderator, "remove", reason("sexual-content")
    )
    with pytest.raises(services.NotAllowed):
        services.appeal_decision(removal, viewer, "not mine but unfair")
    with pytest.raises(services.ModerationError, match="why"):
        services.appeal_decision(removal, uploader, "   ")
    appeal = services.appeal_decision(removal, uploader, "This is a medical training video.")
    assert appeal.case.source == "appeal" and appeal.case.status == "open"
    with pytest.raises(services.Conflict, match="already appealed"):
        services.appeal_decision(removal, uploader, "again")
    with pytest.raises(services.NotAllowed, match="different moderator"):
        services.claim_case(appeal.case, moderator)
    with pytest.raises(services.NotAllowed, match="different moderator"):
        services.decide_case(appeal.case, moderator, "approve", reason("no-violation"))
    outcome = services.decide_case(appeal.case, moderator2, "approve", reason("no-violation"))
    appeal.refresh_from_db()
    video.refresh_from_db()
    assert appeal.status == Appeal.Status.OVERTURNED and video.visibility == "published"
    assert selectors.latest_decision_for(video) == outcome
    assert selectors.appeal_shown_for(outcome) == appeal
    with pytest.raises(services.Conflict, match="final"):
        services.appeal_decision(outcome, uploader, "more")


def test_upheld_appeal_keeps_the_video_removed(video, make_verdict, uploader, moderator, moderator2, reason):
    removal = services.decide_case(
        services.open_case_for_verdict(make_verdict(video)), moderator, "remove", reason("sexual-content")
    )
    appeal = services.appeal_decision(removal, uploader, "Please look again.")
    services.decide_case(appeal.case, moderator2, "remove", reason("sexual-content"))
    appeal.refresh_from_db()
    video.refresh_from_db()
    assert appeal.status == Appeal.Status.UPHELD and video.visibility == "removed"


def test_approvals_cannot_be_appealed(video, make_verdict, uploader, moderator, reason):
    approval = services.decide_case(
        services.open_case_for_verdict(make_verdict(video)), moderator, "approve", reason("no-violation")
    )
    with pytest.raises(services.Conflict):
        services.appeal_decision(approval, uploader, "why was it even reviewed")
    assert not selectors.appealable(approval)


def test_a_held_video_is_published_by_the_moderators_approval(video, make_verdict, moderator, reason):
    hold_for_review(video)
    case = services.open_case_for_verdict(make_verdict(video))
    assert services.clear_held_video(video) is False  # a flag is waiting for a moderator
    services.decide_case(case, moderator, "approve", reason("no-violation"))
    video.refresh_from_db()
    assert video.visibility == "published"
    assert ("video_visibility", "held", "published") in _events(video)


def test_clear_held_video_publishes_a_clean_video(video):
    hold_for_review(video)
    assert services.clear_held_video(video) is True
    video.refresh_from_db()
    assert video.visibility == "published"
    assert _events(video) == [("video_visibility", "held", "published")]


def test_final_labels_follow_the_latest_decision(make_ready_video, make_verdict, moderator, senior, reason):
    clean, dirty, spam = make_ready_video("clean"), make_ready_video("dirty"), make_ready_video("spam")
    services.decide_case(
        services.open_case_for_verdict(make_verdict(clean)), moderator, "approve", reason("no-violation")
    )
    removal = services.decide_case(
        services.open_case_for_verdict(make_verdict(dirty)), moderator, "remove", reason("sexual-content")
    )
    services.decide_case(services.open_case_for_verdict(make_verdict(spam)), moderator, "remove", reason("spam"))
    assert selectors.final_labels("nudity") == [(clean.pk, "nudity", 0), (dirty.pk, "nudity", 1)]
    services.reverse_decision(removal, senior, reason("no-violation"))
    assert selectors.final_labels("nudity") == [(clean.pk, "nudity", 0), (dirty.pk, "nudity", 0)]
    assert (spam.pk, "spam", 1) in selectors.final_labels()


def test_report_reason_joins_the_head_category(video, make_verdict, viewer):
    make_verdict(video, "nudity", score=0.7, severity=4)
    report = services.report_video(video, viewer, "sexual", "at 0:04")
    assert (report.case.source, report.case.category, report.case.severity, report.case.score) == (
        "report",
        "nudity",
        4,
        0.7,
    )
    assert Report.objects.get().text == "at 0:04"


def test_inference_signals_open_cases_and_clear_held_videos(video, make_verdict):
    from inference import signals as inference_signals

    hold_for_review(video)
    verdict = make_verdict(video, "nudity", score=0.9)
    inference_signals.verdict_flagged.send(sender=type(verdict), verdict=verdict)
    inference_signals.verdict_flagged.send(sender=type(verdict), verdict=verdict)  # idempotent
    assert Case.objects.filter(video=video, source="flag", category="nudity", status="open").count() == 1
    inference_signals.video_cleared.send(sender=Video, video=video, verdicts=[verdict])
    video.refresh_from_db()
    assert video.visibility == "held"  # an open flag case keeps it held

    clean = Video.objects.create(owner=video.owner, title="clean", status="ready", duration_ms=4000, fps=25)
    hold_for_review(clean)
    cleared = make_verdict(clean, "nudity", score=0.1)
    inference_signals.video_cleared.send(sender=Video, video=clean, verdicts=[cleared])
    clean.refresh_from_db()
    assert clean.visibility == "published"
