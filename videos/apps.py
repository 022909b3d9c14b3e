from django.apps import AppConfig
from django.core import checks


class VideosConfig(AppConfig):
    name = "videos"
    verbose_name = "Videos"

    def ready(self) -> None:
        from videos import receivers  # noqa: F401  (connects the receiver that queues transcoding)
        from videos.checks import check_publication_policy

        checks.register(check_publication_policy)
