"""Streaming: a viewer's page opens an analysis session, is assigned sample times and stores features.

This is the websocket path, paid for every batch of every viewer: it only checks, stores (one
statement per batch on PostgreSQL) and says that features were stored (``signals.features_stored``,
on which ``inference.scheduling`` queues a settlement pass). Judging and analysing happen later,
in a worker (``inference.services.settlement``).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.utils import timezone

from hydra_site import ratelimit
from inference import selectors, signals
from inference.errors import AnalysisRefused, RefusalReason
from inference.models import ClientSession, FrameFeature, ModelVersion
from inference.protocol import FrameSample
from inference.trust import contributors
from inference.trust import services as trust
from videos.models import Video
from videos.selectors import can_view, video_by_slug


@dataclass(frozen=True)
class OpenedAnalysis:
    session: ClientSession
    assigned: list[int]  # sample times the session must compute
    done: list[int]  # those of them a resumed session already delivered


def open_analysis_session(
    *, slug: str, user: AbstractBaseUser | None, ip_address: str | None, user_agent: str, resume_id: str | None
) -> OpenedAnalysis:
    """A viewer's page wants to analyse a video: check it may, then start (or resume) a session and assign its work.

    Raises ``AnalysisRefused`` with the reason when it may not.
    """
    user_id = user.pk if user is not None else None
    try:
        ratelimit.check_client("ws_connect", ip=ip_address, user_id=user_id)
    except ratelimit.RateLimited as limited:
        raise AnalysisRefused(RefusalReason.RATE_LIMITED, str(limited)) from None
    video = video_by_slug(slug)
    if video is None or not video.is_playable or not can_view(user or AnonymousUser(), video):
        raise AnalysisRefused(RefusalReason.VIDEO_UNAVAILABLE, "no playable video here")
    model_version = selectors.active_model_version()
    if model_version is None:
        raise AnalysisRefused(RefusalReason.NO_MODEL, "no model version is active")
    trust.close_stale_sessions(video, timezone.now())
    session = start_client_session(
        video=video,
        model_version=model_version,
        user_id=user_id,
        ip_address=ip_address,
        user_agent=user_agent,
        resume_id=resume_id,
    )
    return OpenedAnalysis(
        session=session,
        assigned=assign_sample_times(session),
        done=selectors.session_sample_times(session) if resume_id else [],
    )


def start_client_session(
    *,
    video: Video,
    model_version: ModelVersion,
    user_id: int | None = None,
    ip_address: str | None = None,
    user_agent: str = "",
    resume_id: str | None = None,
) -> ClientSession:
    """Open a contributor session for one video and model version, or reopen the caller's earlier one.

    A resumed session keeps its model version: a page that loaded an older CNN chunk may finish
    its work with it, and its features are stored under that version. A session the caller may
    not continue (another video's, another user's, a quarantined one) is refused (SESSION_MISMATCH).
    """
    if resume_id is None:
        return ClientSession.objects.create(
            video=video,
            model_version=model_version,
            user_id=user_id,
            ip_address=ip_address,
            user_agent=user_agent[:300],
        )
    with transaction.atomic():
        try:
            session = ClientSession.objects.select_for_update().get(pk=uuid.UUID(resume_id), is_server=False)
        except (ValueError, ClientSession.DoesNotExist):
            raise _mismatch("no such session") from None
        if session.video_id != video.pk:
            raise _mismatch("the session belongs to another video")
        if session.user_id is not None and session.user_id != user_id:
            raise _mismatch("the session belongs to another user")
        if session.state == ClientSession.State.QUARANTINED:
            raise _mismatch("the session is quarantined")
        session.state = ClientSession.State.ACTIVE
        session.ip_address = ip_address
        session.save(update_fields=["state", "ip_address", "last_seen_at"])
    return session


def _mismatch(message: str) -> AnalysisRefused:
    return AnalysisRefused(RefusalReason.SESSION_MISMATCH, message)


def assign_sample_times(session: ClientSession) -> list[int]:
    """The sample times this session must compute: trust spreads the video's grid over independent sessions."""
    return trust.assign_samples(session, selectors.expected_sample_times(session.video))


def identify_client_session(session: ClientSession, *, backend: str, device_id: str) -> None:
    """Record what the client said it runs on (its ``hello``); a quarantined device's session starts quarantined."""
    session.backend = backend
    session.device_id = device_id
    session.save(update_fields=["backend", "device_id", "last_seen_at"])
    contributors.quarantine_if_caught(session)


@dataclass(frozen=True)
class RecordedFeatures:
    accepted: tuple[int, ...]
    duplicates: tuple[int, ...]


def record_frame_features(session: ClientSession, samples: Sequence[FrameSample]) -> RecordedFeatures:
    """Store a validated batch as pending; a sample the session already sent is reported as duplicate.

    One row per (session, sample_ms): the unique constraint makes a replay a no-op even when two
    copies of a batch race. Once new rows are committed, ``signals.features_stored`` asks for a
    settlement pass. A quarantined session stores nothing and is refused (QUARANTINED).
    """
    feature_size = session.model_version.feature_size
    wrong = [s.sample_ms for s in samples if len(s.vector) != feature_size]
    if wrong:
        raise ValueError(f"vectors of samples {wrong} are not {feature_size} bytes long")
    store = _insert_pending_postgresql if connection.vendor == "postgresql" else _insert_pending_portable
    stored = store(session, samples)
    if stored is None:
        raise AnalysisRefused(
            RefusalReason.QUARANTINED, contributors.refusal_reason(_refreshed(session)) or contributors.CAUGHT_SESSION
        )
    if stored:
        transaction.on_commit(
            functools.partial(
                signals.features_stored.send,
                sender=FrameFeature,
                video_id=session.video_id,
                model_version_id=session.model_version_id,
            )
        )
    new = set(stored)
    return RecordedFeatures(
        accepted=tuple(s.sample_ms for s in samples if s.sample_ms in new),
        duplicates=tuple(s.sample_ms for s in samples if s.sample_ms not in new),
    )


def _refreshed(session: ClientSession) -> ClientSession:
    session.refresh_from_db(fields=["state", "state_reason", "device_id"])
    return session


_INSERT_PENDING_SQL = """
WITH live AS (
    UPDATE {session_table} SET last_seen_at = %s WHERE id = %s AND state <> %s RETURNING id
)
INSERT INTO {feature_table}
    (video_id, model_version_id, session_id, sample_ms, vector, backend, inference_ms, status, received_at)
SELECT %s, %s, live.id, batch.sample_ms, batch.vector, %s, batch.inference_ms, %s, %s
FROM live CROSS JOIN unnest(%s::integer[], %b::bytea[], %s::double precision[])
    AS batch (sample_ms, vector, inference_ms)
ON CONFLICT (session_id, sample_ms) DO NOTHING
RETURNING sample_ms
"""


def _insert_pending_postgresql(session: ClientSession, samples: Sequence[FrameSample]) -> list[int] | None:
    """One statement: touch the session unless it is quarantined, insert the batch, return the times inserted.

    None when the session is quarantined. The ORM equivalent (``_insert_pending_portable``) costs
    three statements and a transaction, about 2.5 times the CPU per batch (measured).
    """
    now = timezone.now()
    sql = _INSERT_PENDING_SQL.format(
        session_table=connection.ops.quote_name(ClientSession._meta.db_table),
        feature_table=connection.ops.quote_name(FrameFeature._meta.db_table),
    )
    params = [
        now,
        session.pk,
        ClientSession.State.QUARANTINED,
        session.video_id,
        session.model_version_id,
        session.backend,
        FrameFeature.Status.PENDING,
        now,
        [s.sample_ms for s in samples],
        [bytes(s.vector) for s in samples],
        [s.inference_ms for s in samples],
    ]
    with _server_bound_cursor() as cursor:
        cursor.execute(sql, params)
        inserted = [row[0] for row in cursor.fetchall()]
    if len(inserted) < len(samples) and _is_quarantined(session):
        return None
    return inserted


def _server_bound_cursor() -> CursorWrapper:
    """A Django cursor (logged and wrapped as usual) that binds parameters on the server.

    Django's psycopg backend binds on the client: the batch's vectors would be escaped into the
    SQL text, which costs more CPU than the rest of the statement (measured). Bound on the server,
    they travel as binary bytea.
    """
    connection.ensure_connection()
    cursor = psycopg.Cursor(connection.connection)
    return CursorDebugWrapper(cursor, connection) if connection.queries_logged else CursorWrapper(cursor, connection)


@transaction.atomic
def _insert_pending_portable(session: ClientSession, samples: Sequence[FrameSample]) -> list[int] | None:
    """``_insert_pending_postgresql`` with the ORM, for other databases (the embedded SQLite default)."""
    live = ClientSession.objects.filter(pk=session.pk).exclude(state=ClientSession.State.QUARANTINED)
    if not live.update(last_seen_at=timezone.now()):
        return None
    times = [s.sample_ms for s in samples]
    stored = set(FrameFeature.objects.filter(session=session, sample_ms__in=times).values_list("sample_ms", flat=True))
    new = [s for s in samples if s.sample_ms not in stored]
    FrameFeature.objects.bulk_create(
        [
            FrameFeature(
                video_id=session.video_id,
                model_version_id=session.model_version_id,
                session=session,
                sample_ms=s.sample_ms,
                vector=s.vector,
                backend=session.backend,
                inference_ms=s.inference_ms,
                status=FrameFeature.Status.PENDING,
            )
            for s in new
        ],
        ignore_conflicts=True,
    )
    return [s.sample_ms for s in new]


def _is_quarantined(session: ClientSession) -> bool:
    return ClientSession.objects.filter(pk=session.pk, state=ClientSession.State.QUARANTINED).exists()


def close_client_session(session: ClientSession) -> None:
    """The client went away; it may come back and resume."""
    ClientSession.objects.filter(pk=session.pk, state=ClientSession.State.ACTIVE).update(
        state=ClientSession.State.CLOSED
    )
    trust.release_unfinished_assignments([session.pk])
