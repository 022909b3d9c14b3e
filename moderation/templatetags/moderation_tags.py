"""Template helpers for moderation pages and the partials other apps include."""

from __future__ import annotations

from django import template

from moderation import selectors
from moderation.forms import ReportForm
from moderation.models import ReportReason
from videos.formatting import format_clock

register = template.Library()


@register.filter
def mmss(ms) -> str:
    """A moment of a video as a player shows it, with tenths when between seconds (missing = 0:00)."""
    return format_clock(int(ms or 0), tenths=True)


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
def report_text_max_length() -> int:
    """The report form's text limit, so the browser enforces the same limit as the server."""
    return ReportForm.base_fields["text"].max_length


@register.simple_tag
def report_reason_choices() -> list[tuple[str, str]]:
    return list(ReportReason.choices)
