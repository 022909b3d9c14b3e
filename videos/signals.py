"""Signals other apps connect to, so that videos never imports them.

``video_ready`` is sent once a video's rendition and poster are stored and committed
(``sender=Video``, keyword ``video``). The inference app connects to it to start analysis.

``video_deleting`` is sent inside the deletion's transaction, before anything is removed
(``sender=Video``, keywords ``video`` and ``actor``). A receiver returns True when the video
has a record that must outlive it (moderation's cases, reports, appeals): the row is then
kept as a tombstone without media instead of being deleted.
"""

from django.dispatch import Signal

video_ready = Signal()

# An ingested video is committed and waits for its rendition (kwargs: video). The videos app's own
# receiver (videos.receivers) queues the transcoding task, which calls videos.services: a signal
# instead of an import keeps services and tasks out of an import cycle.
transcoding_requested = Signal()
video_deleting = Signal()
