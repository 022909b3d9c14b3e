"""Signals other apps connect to, so that videos never imports them.

``video_ready`` is sent once a video's rendition and poster are stored and committed
(``sender=Video``, keyword ``video``). The inference app connects to it to start analysis.
"""

from django.dispatch import Signal

video_ready = Signal()
