from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self) -> None:
        from inference import scheduling  # noqa: F401  (connects the receivers that queue follow-up tasks)
