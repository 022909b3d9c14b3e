"""Signals the videos app sends; other apps connect to them so videos never imports them."""

from django.dispatch import Signal

# Sent with ``video=`` when a video's rendition is ready to play (transcoding finished).
video_ready = Signal()
