"""Queries for the review queue, the case page, uploaders, reporters and training.

Queue priority (computed in the database, so the admin can sort and page by it)::

    priority = 20 * severity * score            severity 1..5 of the category, score 0..1 of the model
             + 10 * reports                      open and handled reports attached to the case
             +  5 * ln(1 + views since flag)     views the video got after the case opened
             +  0.5 * min(age in hours, 48)      older cases rise, for at most a day's worth of 24 points

A critical category (5) at score 0.9 gives 90; each report 10; a thousand views since
the flag about 35; two days of waiting 24. A case without a verdict (nothing analysed yet) has score 0.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import (
    Count,
    Exists,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Greatest, Least, Ln, TruncDate
from django.utils import timezone

from inference.models import FrameScore, Verdict
from videos.models import Video

from .models import AuditEvent, Case, Decision, Report

PRIORITY_SEVERITY_SCORE = 20.0
PRIORITY_PER_REPORT = 10.0
PRIORITY_VIEWS_LOG = 5.0
PRIORITY_PER_HOUR = 0.5
PRIORITY_AGE_CAP_HOURS = 48.0


class EpochSeconds(Func):
    """Seconds since 1970 of a timestamp column, on PostgreSQL and SQLite alike."""

    output_field = FloatField()
    template = "EXTRACT(EPOCH FROM %(expressions)s)"

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)")


def case_queue(now: datetime | None = None) -> QuerySet[Case]:
    """All cases, highest priority first, annotated with ``priority``, ``views_since_open``, ``age_hours`` and
    ``other_active_cases`` (active cases about the same video, so a moderator sees a flag and its reports together)."""
    now = now or timezone.now()
    views_since_open = Greatest(F("video__view_count") - F("views_at_open"), Value(0))
    age_hours = (Value(now.timestamp(), output_field=FloatField()) - EpochSeconds("opened_at")) / Value(3600.0)
    capped_age = Least(Greatest(F("age_hours"), Value(0.0)), Value(PRIORITY_AGE_CAP_HOURS))
    other_active_cases = (
        Case.objects.filter(video=OuterRef("video"), status__in=Case.ACTIVE_STATUSES)
        .exclude(pk=OuterRef("pk"))
        .values("video")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return (
        Case.objects.select_related("video__owner", "assignee", "verdict__head_version__head")
        .annotate(
            views_since_open=views_since_open,
            age_hours=age_hours,
            other_active_cases=Coalesce(Subquery(other_active_cases, output_field=IntegerField()), 0),
        )
        .annotate(
            priority=Value(PRIORITY_SEVERITY_SCORE) * Cast("severity", FloatField()) * F("score")
            + Value(PRIORITY_PER_REPORT) * Cast("report_count", FloatField())
            + Value(PRIORITY_VIEWS_LOG) * Ln(Value(1.0) + Cast("views_since_open", FloatField()))
            + Value(PRIORITY_PER_HOUR) * capped_age
        )
        .order_by("-priority", "opened_at")
    )


def queue_categories() -> list[str]:
    return list(Case.objects.order_by("category").values_list("category", flat=True).distinct())


def latest_decision_for(video: Video) -> Decision | None:
    """The decision that currently stands for the video (escalations are not decisions to the uploader)."""
    return (
        Decision.objects.filter(case__video=video)
        .exclude(action=Decision.Action.ESCALATE)
        .select_related("policy_reason", "case", "reverses")
        .order_by("-created_at", "-id")
        .first()
    )


def appealable(decision: Decision | None) -> bool:
    """Whether the uploader may still appeal: a removal/restriction, not on an appeal, not appealed, not reversed."""
    return (
        decision is not None
        and decision.action in (Decision.Action.REMOVE, Decision.Action.RESTRICT)
        and decision.case.source != Case.Source.APPEAL
        and not hasattr(decision, "appeal")
        and not Decision.objects.filter(reverses=decision).exists()
    )


def appeal_shown_for(decision: Decision | None):
    """The appeal the uploader should see next to a decision: its own, or the one this decision answered."""
    if decision is None:
        return None
    if hasattr(decision, "appeal"):
        return decision.appeal
    if decision.case.source == Case.Source.APPEAL:
        return decision.case.appeal
    return None


def reports_by(user) -> QuerySet[Report]:
    return Report.objects.filter(reporter=user).select_related("video").order_by("-created_at")


def open_report_by(user, video: Video) -> Report | None:
    if not user.is_authenticated:
        return None
    return Report.objects.filter(reporter=user, video=video, status=Report.Status.OPEN).first()


def final_labels(category: str | None = None) -> list[tuple[int, str, int]]:
    """Training labels from moderators' final decisions: ``(video_id, category, label)``, label 1 = violates.

    For each video and category the latest decision that yields a label counts: an approval
    labels the case's category 0, a removal or restriction labels its policy reason's
    category 1, a reversal flips it. Escalations and reasons without a category yield none.
    The training command joins these to the video's stored FrameFeature rows.
    """
    decisions = Decision.objects.filter(violation__isnull=False).exclude(label_category="")
    if category is not None:
        decisions = decisions.filter(label_category=category)
    labels: dict[tuple[int, str], int] = {}
    rows = decisions.order_by("-created_at", "-id").values_list("case__video_id", "label_category", "violation")
    for video_id, label_category, violation in rows:
        labels.setdefault((video_id, label_category), int(violation))
    return [(video_id, cat, label) for (video_id, cat), label in sorted(labels.items())]


# --- the case page ------------------------------------------------------------------------------


def verdicts_for(video: Video) -> QuerySet[Verdict]:
    return (
        Verdict.objects.filter(video=video)
        .select_related("head_version__head", "model_version")
        .order_by("-head_version__head__severity", "head_version__head__category")
    )


def score_series(video: Video, verdicts: Iterable[Verdict]) -> list[tuple[Verdict, list[tuple[int, float]]]]:
    """Each verdict with its head version's per-frame scores on the video, in time order."""
    verdicts = list(verdicts)
    scores: dict[int, list[tuple[int, float]]] = {v.head_version_id: [] for v in verdicts}
    rows = FrameScore.objects.filter(video=video, head_version_id__in=scores).order_by("sample_ms")
    for head_version_id, sample_ms, score in rows.values_list("head_version_id", "sample_ms", "score"):
        scores[head_version_id].append((sample_ms, score))
    return [(verdict, scores[verdict.head_version_id]) for verdict in verdicts]


def case_history(video: Video, exclude: Case | None = None) -> QuerySet[Case]:
    cases = Case.objects.filter(video=video).prefetch_related("decisions__policy_reason", "decisions__moderator")
    if exclude is not None:
        cases = cases.exclude(pk=exclude.pk)
    return cases.order_by("-opened_at")


def audit_trail(*, video: Video | None = None, case: Case | None = None) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("actor")
    condition = Q()
    if video is not None:
        condition |= Q(video=video)
    if case is not None:
        condition |= Q(case=case)
    return events.filter(condition).order_by("-created_at", "-id")


@dataclass(frozen=True)
class UploaderRecord:
    """What an uploader's past says about how long their next upload may wait for analysis."""

    clean_uploads: int  # counted as below, at most HYDRA_TRUST_UPLOADER_RECORD_PER_DAY a calendar day
    under_review: bool  # a case (flag, report, appeal) is active on one of their videos


# The audit action that restarts an uploader's record without a violation: an upload deleted before it was analysed.
RECORD_RESTARTED = "uploader_record_restarted"


def analysed_in_full(video: Video) -> bool:
    """Whether it has verdicts, all at full coverage: viewers or the server analysed all of it."""
    verdicts = Verdict.objects.filter(video=video)
    return verdicts.exists() and not verdicts.filter(coverage__lt=1.0).exists()


def uploader_record(owner_id: int) -> UploaderRecord:
    """The uploader's record of clean, analysed uploads since their last violation.

    An upload counts when it is published and playable, every verdict it has is at full coverage
    and below its threshold (so viewers' browsers or the server analysed all of it, and it stayed
    so: a quarantine that drops its coverage uncounts it), and no case was ever opened on it (a
    report counts against it even if a moderator later approved it). Only uploads after the
    uploader's last violation decision count (a removal or restriction restarts the record, even if
    later reversed), and so does deleting an upload before it was fully analysed (``RECORD_RESTARTED``:
    otherwise a record earned once buys the longest deadline for harm deleted before the server looks,
    every day); while any case is active on one of their videos the record is not used.

    Not cheaply farmable: each counted upload was fully analysed at the deadline the uploader had
    then, and a calendar day (UTC) counts at most HYDRA_TRUST_UPLOADER_RECORD_PER_DAY of them, so a
    record of n needs uploads on at least n / that many calendar days, whatever the number of
    uploads (upload dates are set by the server); in elapsed time one day less and a minute, as
    uploads either side of midnight fall on two days. No record is stored: it is read from the videos,
    verdicts and cases as they stand, so it can only ever be what they say now.
    """
    if Case.objects.filter(video__owner_id=owner_id, status__in=Case.ACTIVE_STATUSES).exists():
        return UploaderRecord(clean_uploads=0, under_review=True)
    last_violation = Decision.objects.filter(case__video__owner_id=owner_id, violation=True).aggregate(
        last=Max("created_at")
    )["last"]
    last_restart = AuditEvent.objects.filter(action=RECORD_RESTARTED, actor_id=owner_id).aggregate(
        last=Max("created_at")
    )["last"]
    restarted = max((t for t in (last_violation, last_restart) if t is not None), default=None)
    verdicts = Verdict.objects.filter(video=OuterRef("pk"))
    clean = (
        Video.objects.filter(
            owner_id=owner_id,
            status=Video.Status.READY,
            visibility=Video.Visibility.PUBLISHED,
            deleted_at__isnull=True,
        )
        .filter(Exists(verdicts))
        .exclude(Exists(verdicts.filter(Q(coverage__lt=1.0) | Q(flagged=True))))
        .exclude(Exists(Case.objects.filter(video=OuterRef("pk"))))
    )
    if restarted is not None:
        clean = clean.filter(created_at__gt=restarted)
    days = clean.order_by().annotate(day=TruncDate("created_at")).values("day")
    per_day = days.annotate(n=Count("id")).values_list("n", flat=True)
    cap = settings.HYDRA_TRUST_UPLOADER_RECORD_PER_DAY
    return UploaderRecord(clean_uploads=sum(min(n, cap) for n in per_day), under_review=False)
