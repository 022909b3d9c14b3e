"""Template filters that present videos: durations as a clock, states as badge colours."""

from django import template

from videos.formatting import format_clock
from videos.models import Video

register = template.Library()

_TONES = {
    Video.Status.UPLOADING: "pending",
    Video.Status.PROCESSING: "pending",
    Video.Status.FAILED: "bad",
    Video.Visibility.PUBLISHED: "good",
    Video.Visibility.HELD: "pending",
    Video.Visibility.RESTRICTED: "warn",
    Video.Visibility.REMOVED: "bad",
}


@register.filter
def clock(duration_ms: int | None) -> str:
    """A video's length: 1234567 -> "20:35"; an hour or more -> "1:02:03"."""
    return format_clock(duration_ms)


@register.filter
def spoken_duration(seconds: int) -> str:
    """14400 -> "4 hours", 90 -> "90 seconds": limits as a person says them."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


@register.filter
def status_tone(video: Video) -> str:
    """The badge colour for the state that ``Video.status_label`` puts in words."""
    return _TONES.get(video.visibility if video.status == Video.Status.READY else video.status, "muted")
