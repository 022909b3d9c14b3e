from django.contrib import admin

from inference.models import ModelVersion


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
