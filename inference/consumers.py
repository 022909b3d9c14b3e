"""The analysis websocket: a player page streams CNN features for the video it shows.

Thin: it translates websocket frames into protocol objects (inference.protocol) and calls
services. Nothing is stored before the whole message has been validated. The protocol is
described in docs/protocol.md.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from hydra_site import client_address, ratelimit
from inference import ingest, protocol, selectors
from inference.errors import AnalysisRefused, RefusalReason
from inference.models import ClientSession
from inference.protocol import BatchLimits, CloseCode, ErrorCode, ProtocolError
from inference.services import streaming
from videos.selectors import rendition_timing

# The wire code of each refusal reason of the services (docs/protocol.md).
REFUSAL_ERROR_CODES = {
    RefusalReason.RATE_LIMITED: ErrorCode.RATE_LIMITED,
    RefusalReason.VIDEO_UNAVAILABLE: ErrorCode.VIDEO_UNAVAILABLE,
    RefusalReason.NO_MODEL: ErrorCode.NO_MODEL,
    RefusalReason.SESSION_MISMATCH: ErrorCode.SESSION_MISMATCH,
    RefusalReason.QUARANTINED: ErrorCode.SESSION_MISMATCH,
}
# How each refusal of streaming.open_analysis_session ends the connection (docs/protocol.md).
REFUSAL_CLOSE_CODES = {
    RefusalReason.RATE_LIMITED: CloseCode.TOO_MANY_ERRORS,
    RefusalReason.VIDEO_UNAVAILABLE: CloseCode.VIDEO_UNAVAILABLE,
    RefusalReason.NO_MODEL: CloseCode.NO_MODEL,
    RefusalReason.SESSION_MISMATCH: CloseCode.SESSION_MISMATCH,
    RefusalReason.QUARANTINED: CloseCode.SESSION_MISMATCH,
}
# Refusals that also end a connection already open: the video went away, or a resume came from
# another device. A quarantined session is refused message by message instead (docs/trust.md).
FATAL_DURING_SESSION = frozenset({RefusalReason.VIDEO_UNAVAILABLE, RefusalReason.SESSION_MISMATCH})


def current_limits() -> BatchLimits:
    return BatchLimits(
        max_batch=settings.HYDRA_WS_MAX_BATCH,
        max_message_bytes=settings.HYDRA_WS_MAX_MESSAGE_BYTES,
        rate_per_second=settings.HYDRA_WS_RATE_PER_SECOND,
        burst=settings.HYDRA_WS_RATE_BURST,
    )


def open_session(scope: dict[str, Any], slug: str, resume_id: str | None) -> streaming.OpenedAnalysis:
    """The connection's scope, translated into the service's arguments."""
    user = scope.get("user")
    headers = dict(scope.get("headers", []))
    return streaming.open_analysis_session(
        slug=slug,
        user=user if user is not None and user.is_authenticated else None,
        ip_address=client_address.from_scope(scope),
        user_agent=headers.get(b"user-agent", b"").decode("latin-1"),
        resume_id=resume_id,
    )


def handshake(opened: streaming.OpenedAnalysis, limits: BatchLimits) -> dict[str, Any]:
    session = opened.session
    return protocol.handshake_message(
        session_id=str(session.pk),
        video_slug=session.video.slug,
        model=selectors.browser_model_spec(session.model_version),
        fps=rendition_timing(session.video)[0],
        sample_ms=opened.assigned,
        done_ms=opened.done,
        limits=limits,
    )


class AnalysisConsumer(AsyncWebsocketConsumer):
    """One connection = one ClientSession; see docs/protocol.md for the conversation."""

    # The socket only talks to its own client: no channel layer. With one, every open connection
    # would hold a blocking read on Redis (channels-redis) for messages nobody sends; under a few
    # hundred viewers those reads time out and close the connections (measured in bench/).
    channel_layer_alias = None

    session: ClientSession | None = None
    closing = False

    async def connect(self) -> None:
        # Accept first so that a refusal can carry an error message and a documented close code.
        await self.accept()
        self.limits = current_limits()
        self.bucket = protocol.TokenBucket(self.limits.rate_per_second, self.limits.burst, time.monotonic())
        self.errors = 0
        self.hello: protocol.Hello | None = None
        resume = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("resume", [None])[0]
        try:
            opened = await database_sync_to_async(open_session)(
                self.scope, self.scope["url_route"]["kwargs"]["slug"], resume
            )
        except AnalysisRefused as refused:
            await self.end(refused)
            return
        self.session = opened.session
        self.resumed = resume is not None
        self.assigned = frozenset(opened.assigned)
        await self.send_json(handshake(opened, self.limits))

    async def disconnect(self, code: int) -> None:
        if self.session is not None:
            await database_sync_to_async(streaming.close_client_session)(self.session)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is None or self.closing:
            return
        try:
            if not self.bucket.take(time.monotonic()):
                raise ProtocolError(ErrorCode.RATE_LIMITED, f"more than {self.limits.rate_per_second:g} messages/s")
            if text_data is not None:
                await self.receive_hello(text_data)
            else:
                await self.receive_batch(bytes_data or b"")
        except ProtocolError as error:
            await self.refuse(error.code, error.message, error.seq)
        except AnalysisRefused as refused:
            if refused.reason in FATAL_DURING_SESSION:
                await self.end(refused)
            else:
                await self.refuse(REFUSAL_ERROR_CODES[refused.reason], refused.message, None)

    def check_shared_limits(self) -> None:
        """Per-IP and per-account message limits, shared by every process (hydra_site.ratelimit), for a hello.

        Synchronous: called in the same worker thread as the hello's database work. Feature batches
        take theirs in the ingest writer's flush, every batch of the flush in one round trip.
        """
        try:
            ratelimit.check_client("ws_message", ip=self.session.ip_address, user_id=self.session.user_id)
        except ratelimit.RateLimited as limited:
            raise ProtocolError(ErrorCode.RATE_LIMITED, str(limited)) from None

    async def receive_hello(self, text: str) -> None:
        hello = protocol.parse_text_message(text)
        await database_sync_to_async(self.identify)(hello)
        self.hello = hello
        await self.send_json({"type": "ready", "session": str(self.session.pk), "backend": hello.backend})

    def identify(self, hello: protocol.Hello) -> None:
        # A resumed session belongs to the browser that started it: an anonymous session's id
        # alone (seen in a log or over a shoulder) must not let another device continue it.
        if self.resumed and self.session.device_id and hello.device_id != self.session.device_id:
            raise AnalysisRefused(RefusalReason.SESSION_MISMATCH, "the session belongs to another device")
        self.check_shared_limits()
        streaming.identify_client_session(self.session, backend=hello.backend, device_id=hello.device_id)

    async def receive_batch(self, data: bytes) -> None:
        if self.hello is None:
            raise ProtocolError(ErrorCode.HELLO_REQUIRED, "send hello before feature batches")
        batch = protocol.decode_feature_batch(
            data, feature_size=self.session.model_version.feature_size, limits=self.limits
        )
        protocol.check_assigned(batch, self.assigned)
        viewer = self.scope.get("user") or AnonymousUser()
        recorded = await ingest.writer().submit(streaming.ViewerBatch(self.session, viewer, batch.samples))
        await self.send_json(protocol.ack_message(batch.seq, recorded.accepted, recorded.duplicates))

    async def refuse(self, code: ErrorCode, message: str, seq: int | None) -> None:
        """Answer a rejected message; too many of them end the connection."""
        self.errors += 1
        if self.errors > settings.HYDRA_WS_MAX_ERRORS:
            await self.send_json(
                protocol.error_message(ErrorCode.TOO_MANY_ERRORS, f"{self.errors} rejected messages", seq, fatal=True)
            )
            await self.close(code=int(CloseCode.TOO_MANY_ERRORS))
            self.closing = True
            return
        await self.send_json(protocol.error_message(code, message, seq))

    async def end(self, refused: AnalysisRefused) -> None:
        """A fatal refusal: say why, then close with its documented code.

        The code goes out as a plain int: autobahn (under daphne) refuses an IntEnum and closes
        with 1011 instead, so the browser would never learn that it must stop.
        """
        code = REFUSAL_ERROR_CODES[refused.reason]
        await self.send_json(protocol.error_message(code, refused.message, fatal=True))
        await self.close(code=int(REFUSAL_CLOSE_CODES[refused.reason]))
        self.closing = True

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))
