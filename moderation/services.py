"""Moderation use cases: one function per state change, each in one transaction with its audit events.

Every function that changes a case or a video writes an ``AuditEvent`` in the same
transaction, so the log and the state never disagree. Permission checks are made here
as well as in the views and the admin, because the admin's bulk actions, the case page
and other apps' code all come through these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from hydra_site import ratelimit
from inference import selectors as inference_selectors
from inference import signals as inference_signals
from inference.models import Head, Verdict
from videos import services as video_services
from videos.models import Video

from . import selectors
from .models import (
    REPORT_REASON_CATEGORY,
    REPORT_REASON_SEVERITY,
    Appeal,
    AuditEvent,
    Case,
    CoverageDeadline,
    Decision,
    PolicyReason,
    Report,
    ReportReason,
)

logger = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser

REPORT_TEXT_MAX = 1000
APPEAL_TEXT_MAX = 2000

ACTION_VISIBILITY = {
    Decision.Action.APPROVE: Video.Visibility.PUBLISHED,
    Decision.Action.REMOVE: Video.Visibility.REMOVED,
    Decision.Action.RESTRICT: Video.Visibility.RESTRICTED,
}


class ModerationError(Exception):
    """A use case refused; the message is written for the person who tried."""

    status_code = 400


class NotAllowed(ModerationError):
    status_code = 403


class Conflict(ModerationError):
    status_code = 409


class RateLimited(ModerationError):
    status_code = 429


# --- audit and enforcement ---------------------------------------------------------------


def record_event(
    *,
    actor: User | None,
    action: str,
    video: Video | None = None,
    case: Case | None = None,
    from_state: str = "",
    to_state: str = "",
    reason: str = "",
) -> AuditEvent:
    """Append one line to the audit log (the caller's transaction makes it atomic with the change)."""
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        video=video,
        case=case,
        action=action,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
    )


def record_video_deletion(video: Video, *, actor: User | None) -> bool:
    """Audit an uploader's deletion of ``video``; True when it has a moderation record to keep.

    Cases, their reports, decisions, appeals and the audit log outlive the video: the reporter
    keeps the "My reports" entry, an appeal stays answerable, and a reversed decision keeps
    what it reversed. Only the media goes (videos.services.delete_video).
    """
    has_record = Case.objects.filter(video=video).exists() or Report.objects.filter(video=video).exists()
    record_event(
        actor=actor,
        action="video_deleted",
        video=video,
        from_state=video.visibility,
        to_state="deleted",
        reason="Deleted by its uploader; the moderation record is kept." if has_record else "Deleted by its uploader.",
    )
    if actor is not None and actor.pk == video.owner_id and not selectors.analysed_in_full(video):
        # Hit and run: harm hosted for the long deadline, then deleted before the server looked. The
        # uploader's record of clean uploads starts again (``selectors.uploader_record``).
        record_event(
            actor=actor,
            action=selectors.RECORD_RESTARTED,
            video=video,
            reason="Deleted by its uploader before it was fully analysed: the record of clean uploads starts again.",
        )
    return has_record


def _set_visibility(video: Video, visibility: str, visibility_reason: str, *, actor: User | None, case=None) -> None:
    """Enforce a visibility on the video at once, and audit it if anything changed.

    Every change to a visibility other than published revokes the media URLs already issued (they name the files
    and need no database read), so a held, restricted or removed video's rendition stops being served at once to
    whoever copied its URL; viewers still allowed get new URLs from the page.
    """
    before = video.visibility
    if before == visibility and video.visibility_reason == visibility_reason:
        return
    video.visibility = visibility
    video.visibility_reason = visibility_reason
    video.save(update_fields=["visibility", "visibility_reason", "updated_at"])
    if visibility != before and visibility != Video.Visibility.PUBLISHED:
        video_services.revoke_media_urls(video)
    record_event(
        actor=actor,
        action="video_visibility",
        video=video,
        case=case,
        from_state=before,
        to_state=visibility,
        reason=visibility_reason,
    )


def _set_case_status(case: Case, status: str, *, actor: User | None, reason: str = "", assignee=...) -> None:
    before = case.status
    case.status = status
    fields = ["status", "updated_at"]
    if assignee is not ...:
        case.assignee = assignee
        fields.append("assignee")
    if status in (Case.Status.DECIDED, Case.Status.CLOSED):
        case.closed_at = timezone.now()
        fields.append("closed_at")
    case.save(update_fields=fields)
    record_event(
        actor=actor,
        action="case_status",
        video=case.video,
        case=case,
        from_state=before,
        to_state=status,
        reason=reason,
    )


def _visibility_reason_text(action: str, policy_reason: PolicyReason) -> str:
    """What viewers and the uploader read on the player page (the public statement of reasons)."""
    if action == Decision.Action.REMOVE:
        return f"Removed for violating the policy “{policy_reason.title}”. {policy_reason.public_explanation}"
    if action == Decision.Action.RESTRICT:
        return f"Restricted under the policy “{policy_reason.title}”: only signed-in viewers can watch it."
    return ""


def _lock_video(video: Video) -> Video:
    return Video.objects.select_for_update().get(pk=video.pk)


def _lock_case(case: Case) -> Case:
    return Case.objects.select_for_update().select_related("video").get(pk=case.pk)


def _open_case(video: Video, source: str, category: str, *, severity: int, score: float, verdict=None) -> Case:
    """Create an active case (the caller holds the video's row lock, so no second one can race in).

    Whatever a case is about, the video is then due for full coverage within the base deadline.
    """
    case = Case.objects.create(
        video=video,
        source=source,
        category=category,
        severity=max(1, min(5, severity)),
        score=max(0.0, min(1.0, score)),
        verdict=verdict,
        views_at_open=video.view_count,
    )
    _bring_coverage_forward(video, f"A case opened ({case.get_source_display().lower()}, {category}).", case=case)
    # The uploader's record is not used while a case is active: their other uploads waiting on it lose it too.
    _end_uploaders_long_deadlines(video, f"A case opened on {video.slug} (case #{case.pk}).", actor=None)
    return case


def _active_case(video: Video, source: str, category: str) -> Case | None:
    return (
        Case.objects.select_for_update()
        .filter(video=video, source=source, category=category, status__in=Case.ACTIVE_STATUSES)
        .first()
    )


# --- cases from automatic flags and the publication policy ------------------------------


@transaction.atomic
def open_case_for_verdict(verdict: Verdict) -> Case | None:
    """Put a flagged verdict in the queue (or refresh its active case); called by analysis.

    Nothing is opened for a verdict below threshold, for a removed video, or when a
    moderator already decided a flag case of this category at this score or higher
    (verdicts are recomputed as coverage grows; only a more confident model reopens it).
    """
    if not verdict.flagged:
        return None
    head: Head = verdict.head_version.head
    video = _lock_video(verdict.video)
    if video.visibility == Video.Visibility.REMOVED:
        return None
    case = _active_case(video, Case.Source.FLAG, head.category)
    if case is not None:
        case.verdict, case.score, case.severity = verdict, verdict.score, head.severity
        case.save(update_fields=["verdict", "score", "severity", "updated_at"])
        return case
    already_reviewed = Case.objects.filter(
        video=video, source=Case.Source.FLAG, category=head.category, score__gte=verdict.score
    ).exclude(status__in=Case.ACTIVE_STATUSES)
    if already_reviewed.exists():
        return None
    case = _open_case(
        video, Case.Source.FLAG, head.category, severity=head.severity, score=verdict.score, verdict=verdict
    )
    record_event(
        actor=None,
        action="case_opened",
        video=video,
        case=case,
        to_state=Case.Status.OPEN,
        reason=f"{head.label}: score {verdict.score:.2f} ≥ threshold {verdict.threshold:.2f} "
        f"(coverage {verdict.coverage:.0%}).",
    )
    return case


@transaction.atomic
def clear_held_video(video: Video) -> bool:
    """Publish a held video once analysis has cleared it; it stays held while a flag case is active."""
    video = _lock_video(video)
    if video.visibility != Video.Visibility.HELD:
        return False
    if video.moderation_cases.filter(source=Case.Source.FLAG, status__in=Case.ACTIVE_STATUSES).exists():
        return False
    _set_visibility(video, Video.Visibility.PUBLISHED, "", actor=None)
    return True


# --- the coverage deadline of videos nobody watches -------------------------------------------


def coverage_deadline_seconds(record: selectors.UploaderRecord) -> int:
    """How long after it is ready a published video may wait for full coverage, by its uploader's record.

    ``HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS`` (the base: a new uploader, or one under review) plus
    ``HYDRA_TRUST_COVERAGE_SECONDS_PER_CLEAN_UPLOAD`` for each clean upload of the record, at most
    ``HYDRA_TRUST_COVERAGE_MAX_DEADLINE_SECONDS``. Viewers' browsers analyse what they watch in the
    meantime; the longer wait is what lets them cover a video that draws its audience after the first
    minutes instead of the server (docs/trust.md, defence 7).
    """
    base = settings.HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS
    if record.under_review:
        return base
    grown = base + record.clean_uploads * settings.HYDRA_TRUST_COVERAGE_SECONDS_PER_CLEAN_UPLOAD
    return max(base, min(grown, settings.HYDRA_TRUST_COVERAGE_MAX_DEADLINE_SECONDS))


def _announce_coverage_deadline(video: Video, due_at: datetime) -> None:
    """Once committed, the inference app makes sure the server has covered the video by ``due_at``."""
    transaction.on_commit(
        partial(inference_signals.coverage_deadline_set.send, sender=Video, video=video, due_at=due_at)
    )


@transaction.atomic
def start_coverage_deadline(video: Video) -> CoverageDeadline | None:
    """A video just became ready: set when it must be fully analysed, from its uploader's record.

    A video no viewer can reach (held, or published under HYDRA_PUBLICATION_POLICY=hold) is due at
    once: no browser will analyse it. Idempotent (a receiver of ``video_ready``): a deadline once set
    is only ever brought forward, never set again. None when the video was deleted before its
    announcement arrived (``video_ready`` is sent after the transcoder commits).
    """
    video = Video.objects.select_for_update().filter(pk=video.pk).first()
    if video is None:
        return None
    existing = CoverageDeadline.objects.filter(video=video).first()
    if existing is not None:
        return existing
    now = timezone.now()
    if settings.HYDRA_PUBLICATION_POLICY == "hold" or video.visibility != Video.Visibility.PUBLISHED:
        seconds, clean_uploads = 0, 0
        reason = "Not published: no viewer can reach it, so the server analyses it at once."
    else:
        record = selectors.uploader_record(video.owner_id)
        seconds, clean_uploads = coverage_deadline_seconds(record), record.clean_uploads
        if record.under_review:
            reason = "Base deadline: a case is active on one of the uploader's videos."
        else:
            reason = f"Uploader's record: {clean_uploads} clean uploads counted."
    deadline = CoverageDeadline.objects.create(
        video=video,
        ready_at=now,
        due_at=now + timedelta(seconds=seconds),
        uploader_record=clean_uploads,
        reason=reason,
    )
    record_event(
        actor=None, action="coverage_deadline", video=video, to_state=deadline.due_at.isoformat(), reason=reason
    )
    _announce_coverage_deadline(video, deadline.due_at)
    return deadline


def _bring_coverage_forward(video: Video, reason: str, *, actor: User | None = None, case: Case | None = None) -> bool:
    """Due no later than the base deadline after the video became ready (now, if that has passed); True if moved.

    The caller holds the video's row lock. A deadline never moves later, and a video not ready yet
    has none (``start_coverage_deadline`` reads its cases and its uploader's record when it is).
    """
    deadline = CoverageDeadline.objects.select_for_update().filter(video=video).first()
    if deadline is None:
        return False
    base = deadline.ready_at + timedelta(seconds=settings.HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS)
    due = max(timezone.now(), base)
    if due >= deadline.due_at:
        return False
    before = deadline.due_at
    deadline.due_at, deadline.reason = due, reason[:200]
    deadline.save(update_fields=["due_at", "reason", "updated_at"])
    record_event(
        actor=actor,
        action="coverage_deadline",
        video=video,
        case=case,
        from_state=before.isoformat(),
        to_state=due.isoformat(),
        reason=reason,
    )
    _announce_coverage_deadline(video, due)
    return True


def bring_uploads_forward(owner_id: int, reason: str, *, actor: User | None) -> int:
    """A case or a violation ends the uploader's longer deadlines: each of their videos still waiting gets the base.

    Each video is locked, checked and changed in its own transaction (one the uploader deleted
    meanwhile is skipped, not the end of the others); returns how many moved.
    """
    moved = 0
    waiting = CoverageDeadline.objects.filter(video__owner_id=owner_id, due_at__gt=timezone.now())
    for video_id in waiting.order_by("video_id").values_list("video_id", flat=True):
        with transaction.atomic():
            video = Video.objects.select_for_update().filter(pk=video_id).first()
            if video is not None:
                moved += _bring_coverage_forward(video, reason, actor=actor)
    return moved


def bring_forward_uncovered_audiences() -> list[int]:
    """Videos that drew HYDRA_TRUST_COVERAGE_AUDIENCE_VIEWS counted views and are still not fully covered: due now.

    Two independent viewers who stay for a video cover it (a browser computes a sample in about
    54 ms: 10 s for a 3-minute video), so that many viewers without full coverage means the
    audience is not analysing it (clients that never open the socket, or a colluding audience):
    the server does. Periodic (``moderation.tasks.sweep_coverage_deadlines``); returns the videos moved.
    """
    model_version = inference_selectors.active_model_version()
    if model_version is None:
        return []
    # An analysis at full coverage settles a video without reading its features (a quarantine re-runs the analysis).
    analysed_in_full = Verdict.objects.filter(video=OuterRef("video"), model_version=model_version, coverage__gte=1.0)
    candidates = (
        CoverageDeadline.objects.filter(
            due_at__gt=timezone.now(), video__view_count__gte=settings.HYDRA_TRUST_COVERAGE_AUDIENCE_VIEWS
        )
        .filter(due_at__gt=F("ready_at") + timedelta(seconds=settings.HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS))
        .exclude(Exists(analysed_in_full))
        .select_related("video")
    )
    moved: list[int] = []
    for deadline in candidates:
        if inference_selectors.coverage(deadline.video, model_version).fraction >= 1.0:
            continue
        with transaction.atomic():
            video = Video.objects.select_for_update().filter(pk=deadline.video_id).first()
            if video is None:  # deleted since the candidates were read
                continue
            reason = f"{video.view_count} views and the viewers' browsers have not covered it."
            if _bring_coverage_forward(video, reason):
                moved.append(video.pk)
    return moved


# How far back the sweep looks for overdue deadlines: a day of uploads, not the whole catalogue (which a new CNN
# version leaves without verdicts at full coverage).
OVERDUE_LOOKBACK = timedelta(days=1)


def announce_overdue_deadlines() -> list[int]:
    """Deadlines that passed on videos still not fully covered: announced again, so the server covers them now.

    The delayed task that covers a video at its deadline lives only in the broker: a broker restarted
    without persistence, or a worker killed holding it, loses it, and nothing else would ever cover
    the video. The deadline itself is in the database, so this finds it again: due for longer than
    the base (``HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS``, which is also how long it waits between two
    announcements of one video), within ``OVERDUE_LOOKBACK``, and not fully covered. Periodic
    (``moderation.tasks.sweep_coverage_deadlines``); returns the videos announced again, each audited.
    """
    model_version = inference_selectors.active_model_version()
    if model_version is None:
        return []
    now = timezone.now()
    grace = timedelta(seconds=settings.HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS)
    analysed_in_full = Verdict.objects.filter(video=OuterRef("video"), model_version=model_version, coverage__gte=1.0)
    candidates = (
        CoverageDeadline.objects.filter(
            due_at__lte=now - grace,
            due_at__gt=now - OVERDUE_LOOKBACK,
            updated_at__lte=now - grace,
            video__status=Video.Status.READY,
            video__deleted_at__isnull=True,
        )
        .exclude(Exists(analysed_in_full))
        .select_related("video")
    )
    announced: list[int] = []
    for deadline in candidates:
        coverage = inference_selectors.coverage(deadline.video, model_version)
        if not coverage.total or coverage.fraction >= 1.0:
            continue  # nothing to cover, or covered and its analysis has not run yet
        with transaction.atomic():
            video = Video.objects.select_for_update().filter(pk=deadline.video_id).first()
            locked = CoverageDeadline.objects.select_for_update().filter(video_id=deadline.video_id).first()
            if video is None or locked is None or locked.updated_at > now - grace:
                continue  # deleted, or announced by another sweep meanwhile
            reason = "Overdue and not fully covered: announced again (its coverage task was lost)."
            locked.reason = reason
            locked.save(update_fields=["reason", "updated_at"])
            record_event(
                actor=None,
                action="coverage_deadline",
                video=video,
                from_state=locked.due_at.isoformat(),
                to_state=locked.due_at.isoformat(),
                reason=reason,
            )
            _announce_coverage_deadline(video, locked.due_at)
            announced.append(video.pk)
    return announced


# --- viewers' reports ------------------------------------------------------------------------


def report_category(reason: str) -> str:
    return REPORT_REASON_CATEGORY.get(reason, reason)


def _report_case_weight(video: Video, category: str, reason: str) -> tuple[int, Verdict | None]:
    """Severity and verdict of a report case: no verdict scores it 0, never a made-up score that outranks analysis."""
    head = Head.objects.filter(category=category).first()
    severity = head.severity if head else REPORT_REASON_SEVERITY[reason]
    verdict = (
        Verdict.objects.filter(video=video, head_version__head__category=category).order_by("-computed_at").first()
    )
    return severity, verdict


def _check_report_rate(reporter, ip_address: str | None) -> None:
    """One rule: at most HYDRA_REPORTS_PER_HOUR report attempts per account and per IP address an hour.

    Counted in the shared token buckets (hydra_site.ratelimit), so every web process sees the same
    count, and attempts count, not only stored reports.
    """
    limit = ratelimit.Limit("report", settings.HYDRA_REPORTS_PER_HOUR, 3600)
    try:
        ratelimit.check_client_limit(limit, ip=ip_address, user_id=reporter.pk)
    except ratelimit.RateLimited:
        raise RateLimited(f"You can send at most {limit.events} reports an hour. Please try again later.") from None


@transaction.atomic
def report_video(video: Video, reporter: User, reason: str, text: str = "", ip_address: str | None = None) -> Report:
    """A viewer reports a video: validated, rate-limited per user and per IP, one open report per video."""
    if not reporter.is_authenticated:
        raise NotAllowed("Log in to report a video.")
    if reason not in ReportReason.values:
        raise ModerationError("Choose a reason from the list.")
    text = (text or "").strip()
    if len(text) > REPORT_TEXT_MAX:
        raise ModerationError(f"Keep the description under {REPORT_TEXT_MAX} characters.")
    video = _lock_video(video)
    if video.owner_id == reporter.pk:
        raise NotAllowed("You cannot report your own video.")
    if video.visibility == Video.Visibility.REMOVED or video.status != Video.Status.READY:
        raise Conflict("This video cannot be reported.")
    if Report.objects.filter(video=video, reporter=reporter, status=Report.Status.OPEN).exists():
        raise Conflict("You have already reported this video; we will let you know what happens.")
    _check_report_rate(reporter, ip_address)

    category = report_category(reason)
    case = _active_case(video, Case.Source.REPORT, category)
    if case is None:
        severity, verdict = _report_case_weight(video, category, reason)
        score = verdict.score if verdict else 0.0
        case = _open_case(video, Case.Source.REPORT, category, severity=severity, score=score, verdict=verdict)
        record_event(
            actor=reporter,
            action="case_opened",
            video=video,
            case=case,
            to_state=Case.Status.OPEN,
            reason=f"Reported: {ReportReason(reason).label}.",
        )
    try:
        with transaction.atomic():
            report = Report.objects.create(
                video=video, reporter=reporter, reason=reason, text=text, ip_address=ip_address, case=case
            )
    except IntegrityError as exc:  # a concurrent duplicate from the same viewer
        raise Conflict("You have already reported this video.") from exc
    Case.objects.filter(pk=case.pk).update(report_count=F("report_count") + 1)
    record_event(
        actor=reporter,
        action="report_filed",
        video=video,
        case=case,
        reason=f"{ReportReason(reason).label}" + (f": {text}" if text else ""),
    )
    return report


def _resolve_reports(case: Case, outcome: str) -> None:
    case.reports.filter(status=Report.Status.OPEN).update(
        status=Report.Status.HANDLED, outcome=outcome, handled_at=timezone.now()
    )


def _report_outcome(action: str, policy_reason: PolicyReason) -> str:
    if action == Decision.Action.APPROVE:
        return "Reviewed: no violation was found and the video stays up."
    verb = "removed" if action == Decision.Action.REMOVE else "restricted"
    return f"Action taken: the video was {verb} under the policy “{policy_reason.title}”."


# --- moderators' work on cases ---------------------------------------------------------------


def _is_staff_with(user: User, permission: str) -> bool:
    return user.is_authenticated and user.is_staff and user.has_perm(permission)


def _check_can_work_on(case: Case, moderator: User) -> None:
    if not _is_staff_with(moderator, "moderation.decide_case"):
        raise NotAllowed("Only moderators can work on cases.")
    if not case.is_active:
        raise Conflict(f"Case #{case.pk} is already {case.get_status_display().lower()}.")
    if case.status == Case.Status.ESCALATED and not moderator.has_perm("moderation.decide_escalated"):
        raise NotAllowed("This case was escalated: a senior moderator decides it.")
    if case.assignee_id and case.assignee_id != moderator.pk:
        raise Conflict(f"Case #{case.pk} is claimed by {case.assignee}.")
    if case.source == Case.Source.APPEAL and case.appeal.decision.moderator_id == moderator.pk:
        raise NotAllowed("An appeal is reviewed by a different moderator than the one who decided.")


def work_refusal(case: Case, moderator: User) -> str | None:
    """Why ``moderator`` may not claim or decide ``case`` (None: they may): pages offer no button that can only fail."""
    try:
        _check_can_work_on(case, moderator)
    except ModerationError as exc:
        return str(exc)
    return None


@transaction.atomic
def claim_case(case: Case, moderator: User) -> Case:
    """Take a case so no one else works on it at the same time."""
    case = _lock_case(case)
    _check_can_work_on(case, moderator)
    if case.assignee_id == moderator.pk:
        return case
    status = Case.Status.ESCALATED if case.status == Case.Status.ESCALATED else Case.Status.CLAIMED
    _set_case_status(case, status, actor=moderator, reason=f"Claimed by {moderator}.", assignee=moderator)
    return case


@transaction.atomic
def release_case(case: Case, moderator: User) -> Case:
    """Give a claimed case back to the queue."""
    case = _lock_case(case)
    _check_can_work_on(case, moderator)
    if not case.assignee_id:
        return case
    status = Case.Status.ESCALATED if case.status == Case.Status.ESCALATED else Case.Status.OPEN
    _set_case_status(case, status, actor=moderator, reason=f"Released by {moderator}.", assignee=None)
    return case


def _check_reason_fits(action: str, policy_reason: PolicyReason) -> None:
    if not policy_reason.is_active:
        raise ModerationError(f"The policy “{policy_reason.title}” is no longer in use.")
    if action == Decision.Action.APPROVE and policy_reason.is_violation:
        raise ModerationError("Approve with a reason that clears the video (e.g. “No violation”).")
    if action in (Decision.Action.REMOVE, Decision.Action.RESTRICT) and not policy_reason.is_violation:
        raise ModerationError("Remove or restrict under the policy the video violates.")


def _label_for(action: str, case: Case, policy_reason: PolicyReason) -> tuple[str, bool | None]:
    """The training label a decision yields: a clearance labels the case's category 0, a violation its policy's 1."""
    if action == Decision.Action.APPROVE:
        return case.category, False
    if action in (Decision.Action.REMOVE, Decision.Action.RESTRICT):
        return policy_reason.category, True
    return "", None


def _visibility_after(action: str, case: Case, video: Video) -> str:
    """Approving one case does not lift another case's restriction; only appeals and reversals do that."""
    current = video.visibility
    if action == Decision.Action.APPROVE:
        if case.source == Case.Source.APPEAL or current in (Video.Visibility.PUBLISHED, Video.Visibility.HELD):
            return Video.Visibility.PUBLISHED
        return current
    if action == Decision.Action.RESTRICT and current == Video.Visibility.REMOVED:
        return current
    return ACTION_VISIBILITY[action]


@transaction.atomic
def decide_case(case: Case, moderator: User, action: str, policy_reason: PolicyReason, note: str = "") -> Decision:
    """Approve, remove, restrict or escalate a case; enforced on the video in the same transaction."""
    case = _lock_case(case)
    _check_can_work_on(case, moderator)
    if action == Decision.Action.ESCALATE:
        return _escalate(case, moderator, policy_reason, note)
    if action not in ACTION_VISIBILITY:
        raise ModerationError(f"Unknown decision “{action}”.")
    _check_reason_fits(action, policy_reason)
    video = _lock_video(case.video)
    after = _visibility_after(action, case, video)
    label_category, violation = _label_for(action, case, policy_reason)
    decision = Decision.objects.create(
        case=case,
        action=action,
        policy_reason=policy_reason,
        note=(note or "").strip(),
        moderator=moderator,
        visibility_before=video.visibility,
        visibility_after=after,
        label_category=label_category,
        violation=violation,
    )
    enforced_as_decided = after == ACTION_VISIBILITY[action]
    reason_text = _visibility_reason_text(action, policy_reason) if enforced_as_decided else video.visibility_reason
    _set_visibility(video, after, reason_text, actor=moderator, case=case)
    _set_case_status(case, Case.Status.DECIDED, actor=moderator, reason=_decision_summary(decision), assignee=None)
    _resolve_reports(case, _report_outcome(action, policy_reason))
    if case.source == Case.Source.APPEAL:
        _resolve_appeal(case.appeal, decision, moderator)
    if after == Video.Visibility.REMOVED:
        _close_moot_cases(video, decision, moderator)
    if violation:
        _end_uploaders_long_deadlines(video, f"Violation found on {video.slug} (case #{case.pk}).", actor=moderator)
    return decision


def _end_uploaders_long_deadlines(video: Video, reason: str, *, actor: User | None) -> None:
    """Once committed, every video of the uploader still waiting for coverage is due at the base.

    A case (the record is not used while one is active) or a violation (the record starts again).
    After commit, one video per transaction: locking the uploader's other videos while this one is
    locked could deadlock with a second decision or report about the same uploader.
    """
    owner_id = video.owner_id

    def bring_uploaders_videos_forward() -> None:  # not a partial: robust on_commit logs failures by __qualname__
        bring_uploads_forward(owner_id, reason, actor=actor)

    transaction.on_commit(bring_uploaders_videos_forward, robust=True)


def _decision_summary(decision: Decision) -> str:
    summary = f"{decision.get_action_display()} under “{decision.policy_reason.title}”."
    return f"{summary} {decision.note}" if decision.note else summary


def _escalate(case: Case, moderator: User, policy_reason: PolicyReason, note: str) -> Decision:
    if case.status == Case.Status.ESCALATED:
        raise Conflict("This case is already escalated.")
    decision = Decision.objects.create(
        case=case,
        action=Decision.Action.ESCALATE,
        policy_reason=policy_reason,
        note=(note or "").strip(),
        moderator=moderator,
        visibility_before=case.video.visibility,
        visibility_after=case.video.visibility,
    )
    _set_case_status(case, Case.Status.ESCALATED, actor=moderator, reason=_decision_summary(decision), assignee=None)
    return decision


def _close_moot_cases(video: Video, decision: Decision, moderator: User) -> None:
    """A takedown answers every other active case about the video, except appeals."""
    others = video.moderation_cases.select_for_update().filter(status__in=Case.ACTIVE_STATUSES)
    for other in others.exclude(source=Case.Source.APPEAL).exclude(pk=decision.case_id):
        _set_case_status(
            other,
            Case.Status.CLOSED,
            actor=moderator,
            reason=f"Video removed by decision on case #{decision.case_id}.",
            assignee=None,
        )
        _resolve_reports(other, _report_outcome(Decision.Action.REMOVE, decision.policy_reason))


def _resolve_appeal(appeal: Appeal, decision: Decision, moderator: User) -> None:
    upheld = decision.visibility_after == appeal.decision.visibility_after
    appeal.status = Appeal.Status.UPHELD if upheld else Appeal.Status.OVERTURNED
    appeal.resolved_at = timezone.now()
    appeal.save(update_fields=["status", "resolved_at"])
    record_event(
        actor=moderator,
        action="appeal_resolved",
        video=appeal.case.video,
        case=appeal.case,
        from_state=Appeal.Status.OPEN,
        to_state=appeal.status,
        reason=_decision_summary(decision),
    )


def bulk_decide(
    cases: Iterable[Case], moderator: User, action: str, policy_reason: PolicyReason, note: str = ""
) -> tuple[list[Decision], list[tuple[Case, str]]]:
    """Approve or remove many clear cases; each is its own transaction, refused ones are returned with why."""
    if action not in (Decision.Action.APPROVE, Decision.Action.REMOVE):
        raise ModerationError("Only approve and remove can be applied in bulk.")
    decided: list[Decision] = []
    skipped: list[tuple[Case, str]] = []
    for case in cases:
        if case.source == Case.Source.APPEAL:
            skipped.append((case, "appeals are reviewed one at a time"))
            continue
        try:
            decided.append(decide_case(case, moderator, action, policy_reason, note))
        except ModerationError as exc:
            skipped.append((case, str(exc)))
    return decided, skipped


@transaction.atomic
def reverse_decision(decision: Decision, moderator: User, policy_reason: PolicyReason, note: str = "") -> Decision:
    """A senior undoes a final decision: a takedown or restriction is lifted, an approval becomes a removal."""
    if not _is_staff_with(moderator, "moderation.reverse_decision"):
        raise NotAllowed("Only senior moderators can reverse decisions.")
    decision = Decision.objects.select_for_update().select_related("case__video").get(pk=decision.pk)
    if decision.action not in ACTION_VISIBILITY:
        raise Conflict("Only approvals, removals and restrictions can be reversed.")
    if Decision.objects.filter(reverses=decision).exists():
        raise Conflict("This decision was already reversed.")
    lifted = decision.action != Decision.Action.APPROVE
    replacement = Decision.Action.APPROVE if lifted else Decision.Action.REMOVE
    _check_reason_fits(replacement, policy_reason)
    case = _lock_case(decision.case)
    video = _lock_video(case.video)
    after = Video.Visibility.PUBLISHED if lifted else Video.Visibility.REMOVED
    reversal = Decision.objects.create(
        case=case,
        action=Decision.Action.REVERSE,
        policy_reason=policy_reason,
        note=(note or "").strip(),
        moderator=moderator,
        reverses=decision,
        visibility_before=video.visibility,
        visibility_after=after,
        label_category=decision.label_category if lifted else policy_reason.category,
        violation=not lifted,
    )
    _set_visibility(
        video,
        after,
        "" if lifted else _visibility_reason_text(Decision.Action.REMOVE, policy_reason),
        actor=moderator,
        case=case,
    )
    record_event(
        actor=moderator,
        action="decision_reversed",
        video=video,
        case=case,
        from_state=decision.action,
        to_state=replacement,
        reason=_decision_summary(reversal),
    )
    if reversal.violation:
        _end_uploaders_long_deadlines(video, f"Violation found on {video.slug} (case #{case.pk}).", actor=moderator)
    open_appeal = Appeal.objects.filter(decision=decision, status=Appeal.Status.OPEN).select_related("case").first()
    if open_appeal is not None:
        _resolve_appeal(open_appeal, reversal, moderator)
        _set_case_status(
            open_appeal.case,
            Case.Status.CLOSED,
            actor=moderator,
            reason="The appealed decision was reversed.",
            assignee=None,
        )
    return reversal


# --- uploaders' appeals ------------------------------------------------------------------------


@transaction.atomic
def appeal_decision(decision: Decision, appellant: User, text: str) -> Appeal:
    """The uploader appeals a removal or restriction once; a different moderator reviews it."""
    decision = Decision.objects.select_for_update().select_related("case__video").get(pk=decision.pk)
    video = decision.case.video
    if not appellant.is_authenticated or appellant.pk != video.owner_id:
        raise NotAllowed("Only the uploader can appeal this decision.")
    if decision.case.source == Case.Source.APPEAL:
        raise Conflict("The decision on an appeal is final.")
    if decision.action not in (Decision.Action.REMOVE, Decision.Action.RESTRICT):
        raise Conflict("Only removals and restrictions can be appealed.")
    if Decision.objects.filter(reverses=decision).exists():
        raise Conflict("This decision was already reversed.")
    if Appeal.objects.filter(decision=decision).exists():
        raise Conflict("You have already appealed this decision.")
    text = (text or "").strip()
    if not text:
        raise ModerationError("Tell us why the decision is wrong.")
    if len(text) > APPEAL_TEXT_MAX:
        raise ModerationError(f"Keep the appeal under {APPEAL_TEXT_MAX} characters.")
    video = _lock_video(video)
    if _active_case(video, Case.Source.APPEAL, decision.case.category) is not None:
        raise Conflict("An appeal about this video is already under review.")
    case = _open_case(
        video,
        Case.Source.APPEAL,
        decision.case.category,
        severity=decision.case.severity,
        score=decision.case.score,
        verdict=decision.case.verdict,
    )
    appeal = Appeal.objects.create(decision=decision, appellant=appellant, text=text, case=case)
    record_event(
        actor=appellant,
        action="case_opened",
        video=video,
        case=case,
        to_state=Case.Status.OPEN,
        reason=f"Appeal against decision #{decision.pk}: {text}",
    )
    return appeal
