"""The moderators' workplace in the Django admin: the review queue, the case page and the audit log.

Everything here is visible only to staff with the moderation permissions the data
migration gives the ``Moderators`` and ``Senior moderators`` groups; every change goes
through ``moderation.services`` (which checks permissions again and writes the audit log).
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.db.models import Count, Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from . import selectors, services, thumbnails
from .case_page import build_case_page
from .models import Appeal, AuditEvent, Case, Decision, PolicyReason, Report

DECIDE = "moderation.decide_case"


def _field_errors(form: forms.Form) -> str:
    return " ".join(f"{form.fields[name].label or name}: {' '.join(errors)}" for name, errors in form.errors.items())


def _bulk_decision_fields(request: HttpRequest) -> dict:
    """The action bar's policy reason and note, validated (``response_action`` refused invalid ones already)."""
    fields = BulkDecisionFields(request.POST)
    if not fields.is_valid():
        raise SuspiciousOperation(_field_errors(fields))
    return fields.cleaned_data


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written only by services: the admin shows them and never edits them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return [field.name for field in self.model._meta.concrete_fields if field.name != "id"]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        return self.get_fields(request, obj)


# --- the queue -------------------------------------------------------------------------------------


class StatusFilter(admin.SimpleListFilter):
    """The queue shows active cases unless asked otherwise."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active (open, claimed, escalated)"), *Case.Status.choices, ("all", "All")]

    def choices(self, changelist):
        value = self.value() or "active"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or "active"
        if value == "active":
            return queryset.filter(status__in=Case.ACTIVE_STATUSES)
        if value in Case.Status.values:
            return queryset.filter(status=value)
        return queryset


class CategoryFilter(admin.SimpleListFilter):
    title = "category"
    parameter_name = "category"

    def lookups(self, request, model_admin):
        return [(category, category) for category in selectors.queue_categories()]

    def queryset(self, request, queryset):
        return queryset.filter(category=self.value()) if self.value() else queryset


AGE_BUCKETS = {
    "1h": ("Under an hour", timedelta(0), timedelta(hours=1)),
    "24h": ("1 to 24 hours", timedelta(hours=1), timedelta(hours=24)),
    "7d": ("1 to 7 days", timedelta(hours=24), timedelta(days=7)),
    "older": ("Older than a week", timedelta(days=7), None),
}


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _, _) in AGE_BUCKETS.items()]

    def queryset(self, request, queryset):
        if self.value() not in AGE_BUCKETS:
            return queryset
        _, youngest, oldest = AGE_BUCKETS[self.value()]
        now = timezone.now()
        queryset = queryset.filter(opened_at__lte=now - youngest)
        return queryset.filter(opened_at__gt=now - oldest) if oldest else queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request, model_admin):
        assignees = Case.objects.exclude(assignee=None).values_list("assignee_id", "assignee__username").distinct()
        return [("me", "Claimed by me"), ("none", "Unclaimed"), *((str(pk), name) for pk, name in assignees)]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "me":
            return queryset.filter(assignee=request.user)
        if value == "none":
            return queryset.filter(assignee=None)
        if value and value.isdigit():
            return queryset.filter(assignee_id=int(value))
        return queryset


# Priority is an annotation, so it cannot be ModelAdmin.ordering (checked against model fields).
QUEUE_ORDERING = ("-priority", "pk")


class QueueChangeList(ChangeList):
    """Marks the priority column as the sorted one (the default ordering comes from ``get_ordering``)."""

    def _get_default_ordering(self):
        return list(QUEUE_ORDERING)


def _compact_age(hours: float) -> str:
    if hours < 1:
        return f"{max(int(hours * 60), 0)}m"
    return f"{int(hours)}h" if hours < 48 else f"{int(hours // 24)}d"


def _priority_level(priority: float) -> str:
    for floor, level in ((80, "critical"), (50, "high"), (25, "medium")):
        if priority >= floor:
            return level
    return "low"


class BulkDecisionFields(forms.Form):
    """What a bulk decision carries besides the action: an active policy reason and an optional note."""

    policy_reason = forms.ModelChoiceField(
        queryset=PolicyReason.objects.filter(is_active=True),
        required=False,
        empty_label="Policy reason…",
        label="Policy reason",
        error_messages={"invalid_choice": "choose one of the active reasons in the list."},
    )
    note = forms.CharField(
        required=False, label="Note", widget=forms.TextInput(attrs={"placeholder": "Note (optional)"})
    )


class DecisionActionForm(BulkDecisionFields, helpers.ActionForm):
    """The queue's action bar: bulk decisions need a policy reason (and may carry a note)."""


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = (
        "priority_display",
        "severity_display",
        "subject_display",
        "source_display",
        "status_display",
        "score_display",
        "reports_display",
        "views_display",
        "age_display",
        "assignee",
    )
    list_display_links = ("subject_display",)
    list_filter = (StatusFilter, CategoryFilter, "source", AgeFilter, AssigneeFilter)
    search_fields = ("video__title", "video__slug", "video__owner__username", "reports__text", "appeal__text")
    search_help_text = "Video title, slug, uploader, report or appeal text."
    list_per_page = 50
    action_form = DecisionActionForm
    actions = ("claim_selected", "approve_selected", "remove_selected")
    change_list_template = "admin/moderation/case/change_list.html"

    class Media:
        css = {"all": ("moderation/admin.css",)}

    # Permissions: viewing the queue needs view_case; every change goes through the case page and services.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm(DECIDE)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Case]:
        return selectors.case_queue()

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        return QUEUE_ORDERING

    def get_changelist(self, request: HttpRequest, **kwargs):
        return QueueChangeList

    def get_actions(self, request: HttpRequest):
        return super().get_actions(request) if request.user.has_perm(DECIDE) else {}

    # --- columns ---------------------------------------------------------------------------------

    @admin.display(description="Priority", ordering="priority")
    def priority_display(self, case: Case) -> str:
        return format_html(
            '<span class="mq-prio mq-prio--{}">{}</span>', _priority_level(case.priority), round(case.priority)
        )

    @admin.display(description="Sev", ordering="severity")
    def severity_display(self, case: Case) -> str:
        return format_html(
            '<span class="mq-sev mq-sev--{}" title="Severity {} of 5">{}</span>',
            case.severity,
            case.severity,
            case.severity,
        )

    @admin.display(description="Case")
    def subject_display(self, case: Case) -> str:
        siblings = case.other_active_cases
        return format_html(
            '<span class="mq-subject"><span class="mq-cat">{}</span> {}<small>#{} · {} · by {}{}</small></span>',
            case.category,
            case.video.title,
            case.pk,
            case.video.slug,
            case.video.owner,
            format_html(' · <b class="mq-more">+{} other case{} on this video</b>', siblings, pluralize(siblings))
            if siblings
            else "",
        )

    @admin.display(description="Source", ordering="source")
    def source_display(self, case: Case) -> str:
        return format_html('<span class="mq-source mq-source--{}">{}</span>', case.source, case.get_source_display())

    @admin.display(description="Status", ordering="status")
    def status_display(self, case: Case) -> str:
        return format_html('<span class="mq-status mq-status--{}">{}</span>', case.status, case.get_status_display())

    @admin.display(description="Score", ordering="score")
    def score_display(self, case: Case) -> str:
        if case.verdict_id is None:
            return format_html('<span class="mq-dim" title="{}">not analysed</span>', "No verdict on this video yet")
        return format_html(
            '<span class="mq-score"><span class="mq-bar"><span class="mq-bar__fill" style="width:{}%"></span></span>'
            "{}</span>",
            round(case.score * 100),
            f"{case.score:.2f}",
        )

    @admin.display(description="Reports", ordering="report_count")
    def reports_display(self, case: Case) -> int:
        return case.report_count

    @admin.display(description="Views", ordering="views_since_open")
    def views_display(self, case: Case) -> int:
        return case.views_since_open

    @admin.display(description="Age", ordering="opened_at")
    def age_display(self, case: Case) -> str:
        return format_html(
            '<span title="{}">{}</span>', case.opened_at.strftime("%Y-%m-%d %H:%M UTC"), _compact_age(case.age_hours)
        )

    # --- the list page and its actions -----------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context=None):
        counts = Case.objects.aggregate(
            open=Count("pk", filter=Q(status=Case.Status.OPEN)),
            claimed=Count("pk", filter=Q(status=Case.Status.CLAIMED)),
            escalated=Count("pk", filter=Q(status=Case.Status.ESCALATED)),
            mine=Count("pk", filter=Q(assignee=request.user, status__in=Case.ACTIVE_STATUSES)),
            appeals=Count("pk", filter=Q(source=Case.Source.APPEAL, status__in=Case.ACTIVE_STATUSES)),
        )
        return super().changelist_view(request, {**(extra_context or {}), "queue_counts": counts})

    @admin.action(description="Claim selected cases", permissions=["change"])
    def claim_selected(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        claimed, refused = 0, []
        for case in queryset:
            try:
                services.claim_case(case, request.user)
                claimed += 1
            except services.ModerationError as exc:
                refused.append(f"#{case.pk}: {exc}")
        self._report(request, f"Claimed {claimed} case(s).", refused)

    def response_action(self, request: HttpRequest, queryset: QuerySet[Case]):
        """Say what is wrong with the action bar's policy reason or note; Django itself would only say
        "No action selected" when they do not validate."""
        fields = BulkDecisionFields(request.POST)
        if not fields.is_valid():
            self.message_user(request, _field_errors(fields), messages.ERROR)
            return None
        return super().response_action(request, queryset)

    @admin.action(description="Approve selected (keep up)", permissions=["change"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        fields = _bulk_decision_fields(request)
        policy = fields["policy_reason"] or PolicyReason.objects.filter(code="no-violation", is_active=True).first()
        if policy is None:
            self.message_user(request, "Choose the policy reason for the approvals.", messages.ERROR)
            return
        self._bulk(request, queryset, Decision.Action.APPROVE, policy, fields["note"])

    @admin.action(description="Remove selected (takedown)", permissions=["change"])
    def remove_selected(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        fields = _bulk_decision_fields(request)
        if fields["policy_reason"] is None:
            self.message_user(request, "Choose the policy reason for the removals.", messages.ERROR)
            return
        self._bulk(request, queryset, Decision.Action.REMOVE, fields["policy_reason"], fields["note"])

    def _bulk(
        self, request: HttpRequest, queryset: QuerySet[Case], action: str, policy: PolicyReason, note: str
    ) -> None:
        try:
            decided, skipped = services.bulk_decide(list(queryset), request.user, action, policy, note)
        except services.ModerationError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        verb = "Approved" if action == Decision.Action.APPROVE else "Removed"
        self._report(
            request,
            f"{verb} {len(decided)} case(s) under “{policy.title}”.",
            [f"#{case.pk}: {why}" for case, why in skipped],
        )

    def _report(self, request: HttpRequest, done: str, refused: list[str]) -> None:
        self.message_user(request, done, messages.SUCCESS)
        if refused:
            self.message_user(request, "Skipped " + "; ".join(refused), messages.WARNING)

    # --- the case page -------------------------------------------------------------------------------

    def get_urls(self):
        own = [
            path(
                "<path:object_id>/frame/<int:sample_ms>.jpg",
                self.admin_site.admin_view(self.frame_view),
                name="moderation_case_frame",
            ),
            path("<path:object_id>/work/", self.admin_site.admin_view(self.work_view), name="moderation_case_work"),
        ]
        return own + super().get_urls()

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        """The case page replaces the model form: a moderator decides here, through services."""
        case = self._case_or_404(request, object_id)
        context = {
            **self.admin_site.each_context(request),
            **build_case_page(case, request.user),
            "opts": self.opts,
            "title": f"Case #{case.pk}",
            "has_view_permission": True,
            "can_work": request.user.has_perm(DECIDE),
            "media": self.media,
            "kept_note": request.session.pop(_kept_note_key(case), ""),
        }
        return TemplateResponse(request, "admin/moderation/case/case_page.html", context)

    def _case_or_404(self, request: HttpRequest, object_id: str) -> Case:
        case = selectors.case_queue().filter(pk=unquote(object_id)).first() if object_id.isdigit() else None
        if case is None:
            raise Http404("No such case.")
        if not self.has_view_permission(request, case):
            raise PermissionDenied
        return case

    def frame_view(self, request: HttpRequest, object_id: str, sample_ms: int) -> HttpResponse:
        """A still of one sampled frame, cut on demand from the rendition (staff with view_case only)."""
        case = self._case_or_404(request, object_id)
        try:
            still = thumbnails.frame_thumbnail(case.video, sample_ms)
        except thumbnails.FrameUnavailable as exc:
            raise Http404(str(exc)) from exc
        response = FileResponse(still.open("rb"), content_type="image/jpeg")
        response["Cache-Control"] = "private, max-age=3600"
        return response

    def work_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The case page's buttons: claim, release, decide, reverse; each one call to a service."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(DECIDE):
            raise PermissionDenied
        case = self._case_or_404(request, object_id)
        page = reverse("admin:moderation_case_change", args=[case.pk])
        form = CaseWorkForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "That request was incomplete; nothing was changed.", messages.ERROR)
            return HttpResponseRedirect(page)
        try:
            done, next_url = _apply_case_work(case, request.user, form.cleaned_data)
        except services.ModerationError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            request.session[_kept_note_key(case)] = form.cleaned_data["note"]  # a refused decision keeps the note
            return HttpResponseRedirect(page)
        self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(next_url or page)


def _kept_note_key(case: Case) -> str:
    return f"moderation.case.{case.pk}.note"


class CaseWorkForm(forms.Form):
    """One POST from the case page: claim, release, decide, or reverse an earlier decision."""

    op = forms.ChoiceField(choices=[(op, op) for op in ("claim", "release", "decide", "reverse")])
    action = forms.ChoiceField(choices=Decision.Action.choices, required=False)
    policy_reason = forms.ModelChoiceField(queryset=PolicyReason.objects.all(), required=False)
    note = forms.CharField(required=False, max_length=2000)
    decision = forms.ModelChoiceField(queryset=Decision.objects.all(), required=False)


def _apply_case_work(case: Case, moderator, data: dict) -> tuple[str, str | None]:
    """Run the requested service; returns the message and where to go next (None: stay on the case)."""
    if data["op"] == "claim":
        services.claim_case(case, moderator)
        return f"You claimed case #{case.pk}.", None
    if data["op"] == "release":
        services.release_case(case, moderator)
        return f"Case #{case.pk} is back in the queue.", None
    if data["policy_reason"] is None:
        raise services.ModerationError("Choose the policy reason for your decision.")
    if data["op"] == "reverse":
        if data["decision"] is None or data["decision"].case.video_id != case.video_id:
            raise services.ModerationError("Choose the decision to reverse.")
        services.reverse_decision(data["decision"], moderator, data["policy_reason"], data["note"])
        return "Decision reversed; the video's visibility was updated.", None
    decision = services.decide_case(case, moderator, data["action"], data["policy_reason"], data["note"])
    message = f"Case #{case.pk}: {decision.get_action_display().lower()} under “{decision.policy_reason.title}”."
    return message, reverse("admin:moderation_case_changelist")


# --- the records behind it ------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The append-only log: readable by moderators, editable by nobody."""

    list_display = ("created_at", "actor", "action", "from_state", "to_state", "video_id", "case_id", "reason")
    list_filter = ("action",)
    search_fields = ("reason", "actor__username")
    list_select_related = ("actor",)
    date_hierarchy = "created_at"


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "case",
        "action",
        "policy_reason",
        "moderator",
        "visibility_before",
        "visibility_after",
        "label_category",
        "violation",
    )
    list_filter = ("action", "policy_reason")
    list_select_related = ("case__video", "policy_reason", "moderator")


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "video", "reason", "reporter", "status", "case")
    list_filter = ("reason", "status")
    search_fields = ("text", "video__title", "reporter__username")
    list_select_related = ("video", "reporter", "case__video")


@admin.register(Appeal)
class AppealAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "decision", "appellant", "status", "case")
    list_filter = ("status",)
    list_select_related = ("decision__policy_reason", "decision__case__video", "appellant", "case__video")


@admin.register(PolicyReason)
class PolicyReasonAdmin(admin.ModelAdmin):
    """The configurable policy list (seniors may add and edit; reasons in use are never deleted)."""

    list_display = ("title", "code", "category", "is_violation", "is_active", "position")
    list_editable = ("is_active", "position")
    list_filter = ("is_violation", "is_active")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


admin.site.site_header = "Hydra · Trust & Safety"
admin.site.site_title = "Hydra admin"
admin.site.index_title = "Moderation and site administration"
