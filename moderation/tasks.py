"""Celery tasks of moderation: periodic work that only translates into its use cases."""

from __future__ import annotations

from celery import shared_task

from moderation import services


@shared_task(name="moderation.sweep_coverage_deadlines")
def sweep_coverage_deadlines() -> list[int]:
    """Periodic (CELERY_BEAT_SCHEDULE): videos watched but not covered by browsers are due at the base deadline,
    and overdue ones whose coverage task was lost are announced again; returns the videos of either."""
    return services.bring_forward_uncovered_audiences() + services.announce_overdue_deadlines()
