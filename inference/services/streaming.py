"""Streaming: a viewer's page opens an analysis session, is assigned sample times and stores features.

This is the websocket path, paid for every batch of every viewer: it only checks, stores (one
statement on PostgreSQL for all the batches a daphne process's ingest writer flushes together,
``record_viewer_batches``) and says that features were stored (``signals.features_stored``, on
which ``inference.scheduling`` queues a settlement pass). Judging and analysing happen later, in a
worker (``inference.services.settlement``).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, connection, transaction
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


@dataclass(frozen=True)
class ViewerBatch:
    """One connection's validated feature batch, with who sent it: what the ingest writer hands over."""

    session: ClientSession
    viewer: AbstractBaseUser | AnonymousUser  # the connection's user, for the visibility re-check
    samples: Sequence[FrameSample]


def record_viewer_batches(
    batches: Sequence[ViewerBatch], *, announce: bool = True
) -> list[RecordedFeatures | Exception]:
    """Store the validated batches of many connections together; each gets what it would have got alone.

    Every batch goes through what a lone batch goes through, in the same order: its viewer's shared
    message limits (``ws_message``, per address and per account: ``AnalysisRefused(RATE_LIMITED)``),
    then whether its viewer may still watch its video (``VIDEO_UNAVAILABLE``: removed, hidden or
    deleted while the page was open), then storage, where a quarantined session stores nothing
    (``QUARANTINED``). The checks cost one Redis round trip and one read for all the batches, and the
    batches that pass are stored by one statement (``_store_pending``), so a flush of many connections
    costs little more than one batch. One outcome per batch, in order: its ``RecordedFeatures`` or the
    exception a lone batch would have raised. If the statement fails, nothing of it is stored and each
    batch is tried again alone, so that one batch cannot make the others fail.

    With ``announce=False`` the caller sends ``signals.features_stored`` itself with
    ``announce_stored_features`` (the ingest writer does, once its connections are answered: asking
    for a settlement pass costs Redis and broker round trips that no ack should wait for).
    """
    outcomes: list[RecordedFeatures | Exception | None] = [None] * len(batches)
    limits = ratelimit.check_clients("ws_message", [(b.session.ip_address, b.session.user_id) for b in batches])
    for index, refusal in enumerate(limits):
        if refusal is not None:
            outcomes[index] = AnalysisRefused(RefusalReason.RATE_LIMITED, str(refusal))
    passed = [index for index, outcome in enumerate(outcomes) if outcome is None]
    videos = (
        Video.objects.only("status", "visibility", "rendition", "deleted_at", "owner_id", "audience").in_bulk(
            {batches[index].session.video_id for index in passed}
        )
        if passed
        else {}
    )
    for index in passed:
        video = videos.get(batches[index].session.video_id)
        if video is None or not video.is_playable or not can_view(batches[index].viewer, video):
            outcomes[index] = AnalysisRefused(RefusalReason.VIDEO_UNAVAILABLE, "the video is no longer available")
    for group in _one_batch_per_session([index for index in passed if outcomes[index] is None], batches):
        for index, outcome in zip(group, _record_together([batches[index] for index in group], announce), strict=True):
            outcomes[index] = outcome
    return outcomes


def _one_batch_per_session(indexes: list[int], batches: Sequence[ViewerBatch]) -> list[list[int]]:
    """Groups of batches, in order, no session twice in a group: two connections resuming one session
    store one after the other, so the first copy of a sample is the one kept and acked as accepted."""
    groups: list[tuple[set, list[int]]] = []
    for index in indexes:
        session_id = batches[index].session.pk
        group = next((group for group in groups if session_id not in group[0]), None)
        if group is None:
            group = (set(), [])
            groups.append(group)
        group[0].add(session_id)
        group[1].append(index)
    return [members for _, members in groups]


def _record_together(batches: Sequence[ViewerBatch], announce: bool) -> list[RecordedFeatures | Exception]:
    try:
        stored = _store_pending(batches, announce)
    except (DatabaseError, ValueError) as error:
        if len(batches) == 1:
            return [error]
        return [_record_alone(batch, announce) for batch in batches]
    return [_recorded(b.session, b.samples, times) for b, times in zip(batches, stored, strict=True)]


def _record_alone(batch: ViewerBatch, announce: bool) -> RecordedFeatures | Exception:
    try:
        stored = _store_pending([batch], announce)[0]
    except (DatabaseError, ValueError) as error:
        return error
    return _recorded(batch.session, batch.samples, stored)


def record_frame_features(session: ClientSession, samples: Sequence[FrameSample]) -> RecordedFeatures:
    """Store one validated batch as pending; a sample the session already sent is reported as duplicate.

    One row per (session, sample_ms): the unique constraint makes a replay a no-op even when two
    copies of a batch race. Once new rows are committed, ``signals.features_stored`` asks for a
    settlement pass. A quarantined session stores nothing and is refused (QUARANTINED). The
    websocket stores through ``record_viewer_batches``, which also applies the message limits and
    the visibility re-check and stores many connections' batches at once.
    """
    stored = _store_pending([ViewerBatch(session, AnonymousUser(), samples)], announce=True)[0]
    recorded = _recorded(session, samples, stored)
    if isinstance(recorded, Exception):
        raise recorded
    return recorded


def _recorded(
    session: ClientSession, samples: Sequence[FrameSample], stored: list[int] | None
) -> RecordedFeatures | AnalysisRefused:
    if stored is None:
        return AnalysisRefused(
            RefusalReason.QUARANTINED, contributors.refusal_reason(_refreshed(session)) or contributors.CAUGHT_SESSION
        )
    new = set(stored)
    return RecordedFeatures(
        accepted=tuple(s.sample_ms for s in samples if s.sample_ms in new),
        duplicates=tuple(s.sample_ms for s in samples if s.sample_ms not in new),
    )


def _refreshed(session: ClientSession) -> ClientSession:
    session.refresh_from_db(fields=["state", "state_reason", "device_id"])
    return session


def _store_pending(batches: Sequence[ViewerBatch], announce: bool) -> list[list[int] | None]:
    """Insert the batches (one per session) as pending rows; for each, the sample times inserted, None if quarantined.

    Raises ValueError, storing nothing, if a vector is not the model's size. With ``announce``, once
    new rows are committed, ``signals.features_stored`` asks for one settlement pass per video and
    model version.
    """
    for batch in batches:
        feature_size = batch.session.model_version.feature_size
        wrong = [s.sample_ms for s in batch.samples if len(s.vector) != feature_size]
        if wrong:
            raise ValueError(f"vectors of samples {wrong} are not {feature_size} bytes long")
    store = _insert_pending_postgresql if connection.vendor == "postgresql" else _insert_pending_portable
    stored = store(batches)
    if announce:
        stored_in = [b for b, times in zip(batches, stored, strict=True) if times]
        transaction.on_commit(functools.partial(_send_features_stored, stored_in))
    return stored


def announce_stored_features(batches: Sequence[ViewerBatch], outcomes: Sequence[RecordedFeatures | Exception]) -> None:
    """``signals.features_stored`` for what ``record_viewer_batches(..., announce=False)`` committed."""
    _send_features_stored(
        [
            b
            for b, outcome in zip(batches, outcomes, strict=True)
            if isinstance(outcome, RecordedFeatures) and outcome.accepted
        ]
    )


def _send_features_stored(batches: Sequence[ViewerBatch]) -> None:
    """One ``features_stored`` per video and model version with new rows: each asks for a settlement pass."""
    for video_id, model_version_id in sorted({(b.session.video_id, b.session.model_version_id) for b in batches}):
        signals.features_stored.send(sender=FrameFeature, video_id=video_id, model_version_id=model_version_id)


_INSERT_PENDING_SQL = """
WITH batch AS (
    SELECT id, number FROM unnest(%s::uuid[]) WITH ORDINALITY AS batch (id, number)
), live AS (
    UPDATE {session_table} AS touched SET last_seen_at = %s
    FROM (
        SELECT id FROM {session_table} WHERE id IN (SELECT id FROM batch) AND state <> %s ORDER BY id FOR UPDATE
    ) AS locked
    WHERE touched.id = locked.id
    RETURNING touched.id, touched.video_id, touched.model_version_id, touched.backend
), inserted AS (
    INSERT INTO {feature_table}
        (video_id, model_version_id, session_id, sample_ms, vector, backend, inference_ms, status, received_at)
    SELECT live.video_id, live.model_version_id, live.id, row.sample_ms, row.vector, live.backend,
        row.inference_ms, %s, %s
    FROM unnest(%s::integer[], %s::integer[], %b::bytea[], %s::double precision[])
        AS row (batch_number, sample_ms, vector, inference_ms)
    JOIN batch ON batch.number = row.batch_number
    JOIN live ON live.id = batch.id
    ON CONFLICT (session_id, sample_ms) DO NOTHING
    RETURNING session_id, sample_ms
)
SELECT batch.number, NULL FROM live JOIN batch USING (id)
UNION ALL
SELECT batch.number, inserted.sample_ms FROM inserted JOIN batch ON batch.id = inserted.session_id
"""


def _insert_pending_postgresql(batches: Sequence[ViewerBatch]) -> list[list[int] | None]:
    """One statement for every batch: touch each session unless it is quarantined, insert, return the times inserted.

    The sessions are locked in id order, so two writers (or a writer and a trust pass locking
    several sessions in that order) cannot deadlock on them. A session the statement did not touch
    is quarantined (None) or gone (nothing inserted). Rows name their batch by number and the answer
    comes back by number (plain integers: loading a UUID per returned row cost more than the rest of
    the answer). The ORM equivalent (``_insert_pending_portable``) costs three statements and a
    transaction per batch, about 2.5 times the CPU of one batch alone (measured).
    """
    now = timezone.now()
    sql = _INSERT_PENDING_SQL.format(
        session_table=connection.ops.quote_name(ClientSession._meta.db_table),
        feature_table=connection.ops.quote_name(FrameFeature._meta.db_table),
    )
    rows = [(number, s) for number, b in enumerate(batches, start=1) for s in b.samples]
    params = [
        [b.session.pk for b in batches],
        now,
        ClientSession.State.QUARANTINED,
        FrameFeature.Status.PENDING,
        now,
        [number for number, _ in rows],
        [s.sample_ms for _, s in rows],
        [bytes(s.vector) for _, s in rows],
        [s.inference_ms for _, s in rows],
    ]
    with _server_bound_cursor() as cursor:
        cursor.execute(sql, params)
        answer = cursor.fetchall()
    live = {number for number, sample_ms in answer if sample_ms is None}
    inserted: dict[int, list[int]] = {}
    for number, sample_ms in answer:
        if sample_ms is not None:
            inserted.setdefault(number, []).append(sample_ms)
    return [
        inserted.get(number, []) if number in live or not _is_quarantined(b.session) else None
        for number, b in enumerate(batches, start=1)
    ]


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
def _insert_pending_portable(batches: Sequence[ViewerBatch]) -> list[list[int] | None]:
    """``_insert_pending_postgresql`` with the ORM, for other databases (the embedded SQLite default)."""
    return [_insert_one_portable(b.session, b.samples) for b in batches]


def _insert_one_portable(session: ClientSession, samples: Sequence[FrameSample]) -> list[int] | None:
    live = ClientSession.objects.filter(pk=session.pk).exclude(state=ClientSession.State.QUARANTINED)
    if not live.update(last_seen_at=timezone.now()):
        return None if _is_quarantined(session) else []
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
