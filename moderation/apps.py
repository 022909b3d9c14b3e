from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ModerationConfig(AppConfig):
    name = "moderation"
    verbose_name = "Moderation"

    def ready(self) -> None:
        from moderation import receivers  # noqa: F401  (connects the signal receivers)

        post_migrate.connect(_ensure_defaults_after_migrate, sender=self)


def _ensure_defaults_after_migrate(sender, apps=None, **kwargs) -> None:
    """Re-create the groups and policy list whenever tables are (re)created or flushed."""
    from django.apps import apps as global_apps

    from moderation.defaults import ensure_moderation_defaults

    ensure_moderation_defaults(apps or global_apps)
