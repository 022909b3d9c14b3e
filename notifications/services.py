"""Telling people what moderators decided: an e-mail (Django's backend: the console on the embedded default)
and an entry in the in-site list, for the uploader, the appellant and every reporter of the case."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from moderation.models import Appeal, Decision
from notifications.models import Notification


def notify(recipient: User, subject: str, body: str, link: str = "") -> Notification:
    """Store the notification, and e-mail it once the transaction commits when the person has an address."""
    notification = Notification.objects.create(recipient=recipient, subject=subject, body=body, link=link)
    if recipient.email:
        transaction.on_commit(lambda: _mail(recipient.email, subject, body), robust=True)
    return notification


def _mail(address: str, subject: str, body: str) -> None:
    send_mail(f"Hydra: {subject}", body, None, [address])


def notify_decision(decision: Decision) -> list[Notification]:
    """Everyone a final decision concerns hears of it once; escalations are not decisions to them."""
    if decision.action == Decision.Action.ESCALATE:
        return []
    case, video = decision.case, decision.case.video
    policy = decision.policy_reason.title
    sent = []
    appeal = Appeal.objects.filter(case=case).select_related("appellant").first()
    if appeal is not None:
        verdict = "overturned: the video is back up" if decision.action == Decision.Action.APPROVE else "upheld"
        sent.append(
            notify(
                appeal.appellant,
                f"Your appeal about “{video.title}” was decided",
                f"A different moderator reviewed your appeal and the decision was {verdict}.",
                reverse("videos:mine"),
            )
        )
    elif video.owner_id:
        sent.append(
            notify(
                video.owner,
                f"“{video.title}”: {decision.outcome_label.lower()}",
                _owner_body(decision, policy),
                reverse("videos:mine"),
            )
        )
    reporters = User.objects.filter(video_reports__case=case).exclude(pk=video.owner_id).distinct()
    for reporter in reporters:
        sent.append(
            notify(
                reporter,
                f"Your report about “{video.title}” was reviewed",
                _report_outcome(decision, policy),
                reverse("moderation:my_reports"),
            )
        )
    return sent


def _owner_body(decision: Decision, policy: str) -> str:
    if decision.action == Decision.Action.APPROVE:
        return f"A moderator reviewed your video and it stays up (“{policy}”)."
    if decision.action == Decision.Action.REVERSE:
        return f"A senior moderator reversed an earlier decision about your video: {decision.outcome_label.lower()}."
    explanation = decision.policy_reason.public_explanation
    return f"{decision.outcome_label} under the policy “{policy}”. {explanation} You can appeal once on My videos."


def _report_outcome(decision: Decision, policy: str) -> str:
    if decision.action == Decision.Action.APPROVE:
        return "A moderator found no violation; the video stays up."
    return f"A moderator acted on it: {decision.outcome_label.lower()} under the policy “{policy}”."


def mark_all_read(recipient: User) -> int:
    return Notification.objects.filter(recipient=recipient, read_at__isnull=True).update(read_at=timezone.now())
