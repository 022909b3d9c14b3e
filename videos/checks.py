"""System checks for the videos app's settings (run by ``manage.py check`` and before every server start)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error

PUBLICATION_POLICIES = ("immediate", "hold")


def check_publication_policy(app_configs=None, **kwargs) -> list[Error]:
    """A misspelt policy would silently publish every upload; refuse it instead."""
    policy = settings.HYDRA_PUBLICATION_POLICY
    if policy in PUBLICATION_POLICIES:
        return []
    return [
        Error(
            f"HYDRA_PUBLICATION_POLICY is {policy!r}.",
            hint="Set it to 'immediate' (publish new uploads) or 'hold' (hold them until analysis clears them).",
            id="videos.E001",
        )
    ]
