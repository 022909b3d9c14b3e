"""``{% media_url video "poster" as url %}``: a video's signed media URL for the page's viewer, or "" when they
may not see it. Pages issue media URLs only through this tag, so the visibility check is made where they do."""

from django import template

from videos.media_urls import MediaFile, url_for_viewer
from videos.models import Video

register = template.Library()


@register.simple_tag(takes_context=True)
def media_url(context: template.Context, video: Video, media: str) -> str:
    return url_for_viewer(context["request"].user, video, MediaFile[media.upper()]) or ""
