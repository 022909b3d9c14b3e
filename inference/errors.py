"""Why the inference app refuses a viewer's analysis: one enum of reasons, raised by services.

Services speak in these reasons; only transports translate them (the websocket consumer maps
each reason to a wire error code and, when fatal, a close code). Nothing here knows the protocol.
"""

from __future__ import annotations

from enum import StrEnum


class RefusalReason(StrEnum):
    RATE_LIMITED = "rate_limited"
    VIDEO_UNAVAILABLE = "video_unavailable"
    NO_MODEL = "no_model"
    SESSION_MISMATCH = "session_mismatch"  # resuming another video's, another user's or a quarantined session
    QUARANTINED = "quarantined"  # the session, or the account or device behind it, was caught lying


class AnalysisRefused(Exception):
    """A viewer may not (or may no longer) contribute to a video's analysis; ``message`` is meant for people."""

    def __init__(self, reason: RefusalReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
