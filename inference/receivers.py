"""Reactions of the inference app to other apps' signals (connected in InferenceConfig.ready)."""

from __future__ import annotations

from django.dispatch import receiver

from inference import services, signals


@receiver(signals.features_recorded, dispatch_uid="inference.analyse_when_coverage_grows")
def analyse_when_coverage_grows(sender, video, model_version, **kwargs) -> None:
    services.on_features_recorded(video, model_version)
