from django import forms
from django.contrib import admin

from inference import heads, selectors
from inference.models import Head, HeadVersion, ModelVersion, Verdict


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Versions are built and registered by ``manage.py build_models``; the admin only shows them."""

    list_display = ("name", "content_hash", "feature_size", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "content_hash")
    readonly_fields = (
        "name",
        "content_hash",
        "feature_size",
        "preprocessing",
        "quantisation",
        "artefact_dir",
        "is_active",
        "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class HeadVersionInline(admin.TabularInline):
    model = HeadVersion
    extra = 0
    fields = ("version", "is_active", "model_version", "weights_path", "measured_quality", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Measured quality")
    def measured_quality(self, version: HeadVersion) -> str:
        return heads.measured_quality(version.metrics)


class HeadForm(forms.ModelForm):
    """Thresholds are probabilities and severities a 1-5 scale; the admin refuses anything else."""

    class Meta:
        model = Head
        fields = ("label", "threshold", "severity", "enabled", "description")

    def clean_threshold(self) -> float:
        threshold = self.cleaned_data["threshold"]
        if not Head.MIN_THRESHOLD <= threshold <= Head.MAX_THRESHOLD:
            raise forms.ValidationError("A threshold is a score between 0 and 1.")
        return threshold

    def clean_severity(self) -> int:
        severity = self.cleaned_data["severity"]
        if not Head.MIN_SEVERITY <= severity <= Head.MAX_SEVERITY:
            raise forms.ValidationError("Severity goes from 1 (low) to 5 (critical).")
        return severity


@admin.register(Head)
class HeadAdmin(admin.ModelAdmin):
    """Categories and their versions. Versions are added by ``train_head`` and switched by ``rollback_head``."""

    list_display = ("category", "label", "kind", "threshold", "severity", "enabled", "status")
    list_editable = ("threshold", "severity", "enabled")
    readonly_fields = ("category", "kind", "status")
    fields = ("category", "label", "kind", "threshold", "severity", "enabled", "description", "status")
    inlines = [HeadVersionInline]
    form = HeadForm

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=HeadForm, **kwargs)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Status")
    def status(self, head: Head) -> str:
        active = head.versions.filter(is_active=True).first()
        if active is None:
            return "Untrained: produces no score (train it with manage.py train_head)"
        if active.model_version != selectors.active_model_version():
            return f"v{active.version} was trained on an earlier CNN: produces no score (retrain it)"
        return f"v{active.version} active"


@admin.register(Verdict)
class VerdictAdmin(admin.ModelAdmin):
    """Every verdict, flagged or not, with what each stage concluded: why a screened flag opened no case."""

    list_display = ("video", "category", "score", "threshold", "flagged", "stages_summary", "coverage", "computed_at")
    list_filter = ("flagged", "head_version__head__category")
    search_fields = ("video__title", "video__slug")
    list_select_related = ("video", "head_version__head")
    readonly_fields = (
        "video",
        "head_version",
        "model_version",
        "score",
        "threshold",
        "flagged",
        "segments",
        "top_frames",
        "coverage",
        "stages",
        "computed_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Category", ordering="head_version__head__category")
    def category(self, verdict: Verdict) -> str:
        return verdict.head_version.head.label

    @admin.display(description="Stages")
    def stages_summary(self, verdict: Verdict) -> str:
        return selectors.stage_summary(verdict)
