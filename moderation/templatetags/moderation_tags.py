"""Template helpers for moderation pages and the partials other apps include."""

from __future__ import annotations

from django import template

from moderation import selectors
from moderation.models import ReportReason

register = template.Library()


@register.filter
def mmss(ms) -> str:
    """Milliseconds as m:ss (h:mm:ss past an hour) like a player shows time, with tenths when between seconds."""
    ms = int(ms or 0)
    hours, rest = divmod(ms // 1000, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    tenths = (ms % 1000) // 100
    return f"{clock}.{tenths}" if tenths else clock


@register.filter
def percent(value) -> str:
    return f"{(value or 0) * 100:.0f}%"


@register.simple_tag
def latest_decision_for(video):
    return selectors.latest_decision_for(video)


@register.simple_tag
def decision_status_for(video) -> dict:
    """What the uploader sees about a video's moderation: the standing decision, its appeal, whether to offer one."""
    decision = selectors.latest_decision_for(video)
    return {
        "decision": decision,
        "appeal": selectors.appeal_shown_for(decision),
        "appealable": selectors.appealable(decision),
    }


@register.simple_tag(takes_context=True)
def open_report_for(context, video):
    request = context.get("request")
    return selectors.open_report_by(request.user, video) if request is not None else None


@register.simple_tag
def report_reason_choices() -> list[tuple[str, str]]:
    return list(ReportReason.choices)
