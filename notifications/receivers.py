"""Notifications follow moderators' decisions, read once the decision's transaction has committed (so the
appeal's and the reports' outcomes are final). Moderation knows nothing of this app."""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from moderation.models import Decision
from notifications import services


@receiver(post_save, sender=Decision, dispatch_uid="notifications.notify_decision")
def notify_decision(sender, instance: Decision, created: bool, **kwargs) -> None:
    if created:
        transaction.on_commit(partial(_notify, instance.pk), robust=True)


def _notify(decision_id: int) -> None:
    decision = Decision.objects.select_related("case__video__owner", "policy_reason").filter(pk=decision_id).first()
    if decision is not None:
        services.notify_decision(decision)
