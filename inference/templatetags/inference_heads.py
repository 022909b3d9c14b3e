"""Template tags of the inference app: which categories are not analysed (no model trained), what a page runs,
and what each stage of a verdict concluded."""

from __future__ import annotations

from django import template

from inference import selectors

register = template.Library()


@register.inclusion_tag("inference/_untrained_heads.html")
def untrained_heads_notice() -> dict:
    return {"untrained_heads": selectors.untrained_heads()}


@register.simple_tag
def untrained_heads() -> list:
    """``{% untrained_heads as heads %}``: the categories that give no score yet, for pages that word it themselves."""
    return list(selectors.untrained_heads())


@register.simple_tag
def page_analyses(video) -> bool:
    """``{% page_analyses video as analyses %}``: whether this page runs the analysis (``selectors.page_analyses``)."""
    return selectors.page_analyses(video)


@register.simple_tag
def page_model_spec() -> dict | None:
    """``{% page_model_spec as model %}``: the model the page loads while its socket connects."""
    return selectors.page_model_spec()


@register.filter
def verdict_stages(verdict) -> str:
    """``{{ verdict|verdict_stages }}``: the screen's and the confirmer's conclusions (``selectors.stage_summary``)."""
    return selectors.stage_summary(verdict)


@register.simple_tag
def seeker_budget(video) -> dict:
    """``{% seeker_budget video as seeker %}``: what the page's seeker may download (``selectors.seeker_budget``)."""
    return selectors.seeker_budget(video)
