from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "moderation"
    verbose_name = "Moderation"

    def ready(self) -> None:
        from videos.signals import video_ready

        from . import signals

        video_ready.connect(signals.apply_publication_policy, dispatch_uid="moderation.apply_publication_policy")
