"""Moderation: cases in the review queue, the decisions taken on them, and their paper trail.

A ``Case`` is one question put to moderators about one video: "does it break policy in
this category?". Cases come from three sources: an automatic flag (a ``Verdict`` above
its head's threshold), viewers' ``Report``s, and uploaders' ``Appeal``s. A moderator
answers with a ``Decision`` under a ``PolicyReason``; the decision is enforced on the
video's visibility at once. Every state change of a case or a video is written to the
append-only ``AuditEvent`` log in the same transaction.

Queue priority is computed in ``moderation.selectors.case_queue`` from what the case
stores here (severity, score, report count, the video's view count when the case
opened, when it opened); see that function for the formula.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from videos.models import Video


class PolicyReason(models.Model):
    """One rule of the content policy, cited by every decision (the "statement of reasons")."""

    code = models.SlugField(max_length=40, unique=True)
    title = models.CharField(max_length=120)
    public_explanation = models.TextField(help_text="Shown to the uploader and, for removals, to viewers.")
    category = models.SlugField(
        max_length=40,
        blank=True,
        help_text="Head category this rule concerns; decisions under it become training labels for that category.",
    )
    is_violation = models.BooleanField(
        default=True, help_text="False for reasons that clear a video (e.g. 'No violation found')."
    )
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=100)

    class Meta:
        ordering = ["position", "title"]

    def __str__(self) -> str:
        return self.title


class ReportReason(models.TextChoices):
    """What a viewer may report a video for (a fixed list, as on PeerTube and Bluesky)."""

    SEXUAL = "sexual", "Sexual content"
    VIOLENCE = "violence", "Violence or gore"
    HATE = "hate", "Hateful content"
    HARASSMENT = "harassment", "Harassment or bullying"
    SELF_HARM = "self_harm", "Self-harm or suicide"
    CHILD_SAFETY = "child_safety", "Child safety"
    SPAM = "spam", "Spam or misleading"
    COPYRIGHT = "copyright", "Copyright infringement"
    OTHER = "other", "Something else"


# A report reason that matches a head's category joins that category's cases (so a "sexual"
# report and an automatic nudity flag are reviewed under one category); the others are their own.
REPORT_REASON_CATEGORY: dict[str, str] = {ReportReason.SEXUAL: "nudity", ReportReason.VIOLENCE: "violence"}

# Severity (1 low .. 5 critical) of report categories that no head answers.
REPORT_REASON_SEVERITY: dict[str, int] = {
    ReportReason.CHILD_SAFETY: 5,
    ReportReason.SELF_HARM: 4,
    ReportReason.VIOLENCE: 4,
    ReportReason.HATE: 3,
    ReportReason.HARASSMENT: 3,
    ReportReason.SEXUAL: 3,
    ReportReason.COPYRIGHT: 2,
    ReportReason.SPAM: 1,
    ReportReason.OTHER: 1,
}


class Case(models.Model):
    """One question about one video, from one source, in the review queue."""

    class Source(models.TextChoices):
        FLAG = "flag", "Automatic flag"
        REPORT = "report", "Viewer reports"
        APPEAL = "appeal", "Appeal"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLAIMED = "claimed", "Claimed"
        ESCALATED = "escalated", "Escalated"
        DECIDED = "decided", "Decided"
        CLOSED = "closed", "Closed"

    ACTIVE_STATUSES = (Status.OPEN, Status.CLAIMED, Status.ESCALATED)

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="moderation_cases")
    source = models.CharField(max_length=16, choices=Source.choices, db_index=True)
    category = models.SlugField(max_length=40, db_index=True, help_text="Head category or report reason.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="claimed_cases"
    )
    verdict = models.ForeignKey(
        "inference.Verdict", null=True, blank=True, on_delete=models.SET_NULL, related_name="moderation_cases"
    )
    severity = models.PositiveSmallIntegerField(default=1, help_text="1 (low) .. 5 (critical), from the category.")
    score = models.FloatField(default=0.0, help_text="Model score 0..1 behind the case (0 while nothing is analysed).")
    report_count = models.PositiveIntegerField(default=0)
    views_at_open = models.PositiveIntegerField(default=0, help_text="Video's view count when the case opened.")
    opened_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        verbose_name = "case"
        verbose_name_plural = "review queue"  # one name for the queue, in the admin index and on its page
        constraints = [
            models.UniqueConstraint(
                fields=["video", "source", "category"],
                condition=models.Q(status__in=["open", "claimed", "escalated"]),
                name="one_active_case_per_video_source_category",
                violation_error_message="This video already has an active case for this source and category.",
            ),
            models.CheckConstraint(condition=models.Q(severity__gte=1, severity__lte=5), name="case_severity_1_5"),
        ]
        permissions = [
            ("decide_case", "Can claim and decide moderation cases"),
            ("decide_escalated", "Can decide escalated cases (senior)"),
            ("reverse_decision", "Can reverse decisions (senior)"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_source_display()} · {self.category} · {self.video.title}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class Decision(models.Model):
    """A moderator's answer to a case. Approve/remove/restrict are final; escalate passes it to a senior."""

    class Action(models.TextChoices):
        APPROVE = "approve", "Approve"
        REMOVE = "remove", "Remove"
        RESTRICT = "restrict", "Restrict"
        ESCALATE = "escalate", "Escalate"
        REVERSE = "reverse", "Reverse"

    FINAL_ACTIONS = (Action.APPROVE, Action.REMOVE, Action.RESTRICT, Action.REVERSE)

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="decisions")
    action = models.CharField(max_length=16, choices=Action.choices)
    policy_reason = models.ForeignKey(PolicyReason, on_delete=models.PROTECT, related_name="decisions")
    note = models.TextField(blank=True, help_text="Internal note for other moderators.")
    moderator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="decisions")
    reverses = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by")
    visibility_before = models.CharField(max_length=16, choices=Video.Visibility.choices)
    visibility_after = models.CharField(max_length=16, choices=Video.Visibility.choices)
    # The training label this decision yields: category and whether the video violates it (None: no label).
    label_category = models.SlugField(max_length=40, blank=True, db_index=True)
    violation = models.BooleanField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} #{self.case_id} ({self.policy_reason})"

    @property
    def outcome_label(self) -> str:
        """The decision in words for the uploader: what happened to the video."""
        if self.action == self.Action.REVERSE:
            return "Earlier decision reversed: " + Video.Visibility(self.visibility_after).label.lower()
        return {"approve": "Approved", "remove": "Removed", "restrict": "Restricted", "escalate": "Escalated"}[
            self.action
        ]


class Report(models.Model):
    """A viewer's report of a video; it feeds a report case and is marked handled when that is decided."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        HANDLED = "handled", "Handled"

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="video_reports")
    reason = models.CharField(max_length=20, choices=ReportReason.choices)
    text = models.TextField(blank=True, max_length=1000)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="reports")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    outcome = models.CharField(max_length=200, blank=True, help_text="What became of it, in words the reporter sees.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["video", "reporter"],
                condition=models.Q(status="open"),
                name="one_open_report_per_viewer_video",
                violation_error_message="You have already reported this video.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} on {self.video_id} by {self.reporter_id}"


class Appeal(models.Model):
    """The uploader's one appeal against one decision; reviewed in its own case by another moderator."""

    class Status(models.TextChoices):
        OPEN = "open", "Under review"
        UPHELD = "upheld", "Decision upheld"
        OVERTURNED = "overturned", "Decision overturned"

    decision = models.OneToOneField(Decision, on_delete=models.CASCADE, related_name="appeal")
    appellant = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="appeals")
    text = models.TextField(max_length=2000)
    case = models.OneToOneField(Case, on_delete=models.CASCADE, related_name="appeal")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Appeal of decision {self.decision_id}"


class CoverageDeadline(models.Model):
    """When a ready video must be fully analysed (by viewers' browsers, else by the server), and why then.

    Set once when the video is ready (``services.start_coverage_deadline``: the base for a new uploader, longer
    for an uploader with a record of clean uploads) and afterwards only ever brought forward (a case, an
    audience the browsers do not cover, a violation by the uploader); every change is audited.
    """

    video = models.OneToOneField(Video, on_delete=models.CASCADE, related_name="coverage_deadline")
    ready_at = models.DateTimeField()
    due_at = models.DateTimeField(db_index=True)
    uploader_record = models.PositiveIntegerField(help_text="Clean uploads the uploader's record counted when set.")
    reason = models.CharField(max_length=200)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"coverage of {self.video_id} due {self.due_at:%Y-%m-%d %H:%M} ({self.reason})"


class AuditEventQuerySet(models.QuerySet):
    """Bulk paths that would bypass ``save``/``delete`` are refused too."""

    def update(self, **kwargs):
        raise ValidationError("Audit events are append-only: they cannot be updated.")

    def delete(self):
        raise ValidationError("Audit events are append-only: they cannot be deleted.")


class AuditEvent(models.Model):
    """One state change of a case or a video: who, when, what, from which state to which, why.

    Append-only: ``save`` refuses to update an existing row, ``delete`` refuses, the queryset
    refuses bulk update/delete, and on PostgreSQL a trigger refuses UPDATE and DELETE.
    The foreign keys carry no database constraint so the log outlives its subjects.
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        help_text="Empty for the system (automatic flags, publication policy).",
    )
    video = models.ForeignKey(
        Video, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    action = models.CharField(max_length=40, db_index=True)
    from_state = models.CharField(max_length=40, blank=True)
    to_state = models.CharField(max_length=40, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"{self.action}: {self.from_state or '-'} → {self.to_state or '-'}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError("Audit events are append-only: they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Audit events are append-only: they cannot be deleted.")
