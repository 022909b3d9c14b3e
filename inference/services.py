"""Use cases of the inference app: each function is one thing the site does."""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import connection, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.utils import timezone

from inference import heads, selectors, signals
from inference.ml.artefacts import Artefacts, ensure_artefacts
from inference.ml.quantise import dequantise, quantise
from inference.ml.segments import SegmentPolicy, flagged_segments, top_frames
from inference.ml.temporal import TemporalConfig
from inference.ml.training import LabelledSequence, TrainingOptions, find_labelled_videos, train_temporal_head
from inference.models import (
    ClientSession,
    FrameFeature,
    FrameScore,
    Head,
    HeadVersion,
    ModelVersion,
    TrainingClip,
    Verdict,
)
from inference.protocol import ErrorCode, FrameSample, ProtocolError
from inference.sampling import sample_times_ms
from inference.trust import ratelimit
from inference.trust import services as trust
from videos.models import Video
from videos.selectors import can_view, video_by_slug

logger = logging.getLogger(__name__)

# --- Model registry and the server's own features (ml helper) -----------------------------------

SERVER_FEATURE_BATCH = 32


def ensure_model_version() -> ModelVersion:
    """Build the artefacts of the installed nsfwjs model if missing, register them and make them active.

    Idempotent: a second call finds the directory on disk and the row in the database.
    Building (seconds, imports TensorFlow) happens outside the transaction.
    """
    artefacts = ensure_artefacts(settings.HYDRA_MODEL_ROOT, settings.HYDRA_NSFWJS_DIR)
    return _register_model_version(artefacts)


@transaction.atomic
def _register_model_version(artefacts: Artefacts) -> ModelVersion:
    manifest = artefacts.manifest
    model_version, created = ModelVersion.objects.get_or_create(
        content_hash=artefacts.content_hash,
        defaults={
            "name": manifest["name"],
            "feature_size": manifest["feature_size"],
            "preprocessing": manifest["preprocessing"],
            "quantisation": manifest["quantisation"],
            "artefact_dir": artefacts.directory.name,
        },
    )
    if not model_version.is_active:
        ModelVersion.objects.select_for_update().filter(is_active=True).update(is_active=False)
        model_version.is_active = True
        model_version.save(update_fields=["is_active"])
        logger.info("model version %s is now active%s", model_version, " (new)" if created else "")
    return model_version


def compute_server_features(
    video: Video, sample_ms: Sequence[int], model_version: ModelVersion | None = None
) -> np.ndarray:
    """float32[N, feature_size] features of the video's rendition at the given sample times, in order.

    The server's own path for the frames browsers analyse: PyAV decodes the frame nearest
    each sample time, converts it to RGB as the browser does, and the Keras CNN (loaded once
    per process) computes its features, a batch of frames at a time to bound memory.
    """
    from inference.ml import cnn, frames

    model_version = model_version or selectors.active_model_version()
    if model_version is None:
        raise ValueError("no active model version: run `manage.py build_models`")
    if not video.rendition:
        raise ValueError(f"video {video.pk} has no rendition to analyse")
    artefact_dir = selectors.model_artefacts(model_version).directory
    model = cnn.cached_feature_extractor(str(artefact_dir))
    times = [int(ms) for ms in sample_ms]
    batches = [
        cnn.compute_features(
            model, frames.decode_frames_at(video.rendition.path, times[start : start + SERVER_FEATURE_BATCH])
        )
        for start in range(0, len(times), SERVER_FEATURE_BATCH)
    ]
    if not batches:
        return np.zeros((0, model_version.feature_size), dtype=np.float32)
    return np.concatenate(batches, axis=0)


# --- Heads, verdicts and training (analysis helper) ---------------------------------------------

TOP_FRAMES = 8
DEFAULT_SEGMENT_RULES = {"edge_margin": 0.2, "max_gap_ms": 2000, "min_length_ms": 0}


@dataclass(frozen=True)
class DefaultHead:
    category: str
    label: str
    kind: str
    threshold: float
    severity: int
    description: str


NUDITY = DefaultHead(
    category="nudity",
    label="Nudity",
    kind=Head.Kind.FRAME,
    threshold=0.7,
    severity=4,
    description=(
        "nsfwjs's dense head (1280-256-128-5) on each frame's features. Score = P(porn) + P(hentai); "
        "'sexy' (swimwear, underwear) and 'drawing' do not count as nudity."
    ),
)
VIOLENCE = DefaultHead(
    category="violence",
    label="Violence",
    kind=Head.Kind.TEMPORAL,
    threshold=0.7,
    severity=5,
    description=(
        "An LSTM over windows of consecutive frame features. Hydra ships WITHOUT violence weights: "
        "until an operator trains it (manage.py train_head violence ...), violence detection is off "
        "and produces no score."
    ),
)
NUDITY_POSITIVE_CLASSES = ["porn", "hentai"]


def register_head(category: str, label: str, kind: str, threshold: float, severity: int, description: str = "") -> Head:
    """Register a moderation category (or update its label and description). Adding a category is this call."""
    if kind not in Head.Kind.values:
        raise ValueError(f"kind must be one of {Head.Kind.values}, got {kind!r}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1 to 5, got {severity}")
    head, created = Head.objects.get_or_create(
        category=category,
        defaults={
            "label": label,
            "kind": kind,
            "threshold": threshold,
            "severity": severity,
            "description": description,
        },
    )
    if not created and head.kind != kind:
        raise ValueError(f"head {category!r} is {head.kind}, not {kind}")
    if not created and (head.label, head.description) != (label, description):
        head.label, head.description = label, description
        head.save(update_fields=["label", "description"])
    return head


@transaction.atomic
def register_head_version(
    head: Head,
    model_version: ModelVersion,
    weights_path: str,
    config: dict,
    metrics: dict | None = None,
    activate: bool = True,
    version: int | None = None,
) -> HeadVersion:
    """Add the next version of a head (or the given number, if free); the previous versions stay for rollback."""
    if config.get("runner") not in heads.RUNNERS:
        raise ValueError(f"config['runner'] must be one of {sorted(heads.RUNNERS)}, got {config.get('runner')!r}")
    locked = Head.objects.select_for_update().get(pk=head.pk)
    latest = locked.versions.order_by("-version").values_list("version", flat=True).first() or 0
    if version is not None and version <= latest:
        raise ValueError(f"{head.category} already has version {latest}; cannot register version {version}")
    created = HeadVersion.objects.create(
        head=locked,
        version=version or latest + 1,
        model_version=model_version,
        weights_path=weights_path,
        config=config,
        metrics=metrics or {},
    )
    if activate:
        return activate_head_version(head.category, created.version)
    return created


@transaction.atomic
def activate_head_version(category: str, version: int) -> HeadVersion:
    """Make one version of a head the one that analyses videos (roll forward or back)."""
    head = Head.objects.select_for_update().get(category=category)
    try:
        chosen = head.versions.get(version=version)
    except HeadVersion.DoesNotExist:
        known = list(head.versions.order_by("version").values_list("version", flat=True))
        raise ValueError(f"{category} has no version {version}; versions: {known or 'none'}") from None
    if not heads.weights_location(chosen).exists():
        raise ValueError(f"{chosen}: weights {heads.weights_location(chosen)} are missing")
    head.versions.filter(is_active=True).exclude(pk=chosen.pk).update(is_active=False)
    if not chosen.is_active:
        chosen.is_active = True
        chosen.save(update_fields=["is_active"])
    return chosen


def ensure_default_heads(model_version: ModelVersion | None = None) -> list[Head]:
    """Register nudity (with nsfwjs's own weights) and violence (untrained); idempotent."""
    model_version = model_version or selectors.active_model_version()
    if model_version is None:
        raise ValueError("no active model version: run `manage.py build_models` first")
    nudity = register_head(**NUDITY.__dict__)
    register_head(**VIOLENCE.__dict__)
    if not nudity.versions.filter(model_version=model_version).exists():
        artefacts = selectors.model_artefacts(model_version)
        weights = Path(model_version.artefact_dir) / artefacts.manifest["server_files"]["nsfw_head"]
        register_head_version(
            nudity,
            model_version,
            weights_path=str(weights),
            config={
                "runner": "nsfwjs_dense",
                "positive_classes": NUDITY_POSITIVE_CLASSES,
                "segments": DEFAULT_SEGMENT_RULES,
                "source": artefacts.manifest.get("source", ""),
            },
        )
    return list(Head.objects.filter(category__in=[NUDITY.category, VIOLENCE.category]))


def segment_policy(head_version: HeadVersion) -> SegmentPolicy:
    rules = {**DEFAULT_SEGMENT_RULES, **head_version.config.get("segments", {})}
    threshold = head_version.head.threshold
    return SegmentPolicy(
        threshold=threshold,
        edge_threshold=max(0.0, threshold - rules["edge_margin"]),
        max_gap_ms=rules["max_gap_ms"],
        min_length_ms=rules["min_length_ms"],
    )


def analyse_video(
    video: Video, model_version: ModelVersion | None = None, head_versions: list[HeadVersion] | None = None
) -> list[Verdict]:
    """Run every active head on the video's accepted features; store per-sample scores and one verdict per head.

    Idempotent: the scores of a head version are replaced and its verdict updated, so running it
    again on the same features gives the same rows. Heavy work (loading weights, inference)
    happens before the transaction; the video row is locked (NOWAIT) while rows are replaced, so
    two analyses of one video never interleave: the second fails fast and its task retries.
    """
    model_version = model_version or selectors.active_model_version()
    if model_version is None:
        logger.warning("no active model version; video %s not analysed", video.pk)
        return []
    accepted = selectors.accepted_features(video, model_version)
    if not accepted.sample_ms:
        return []
    features = dequantise(accepted.codes)
    if head_versions is None:
        head_versions = selectors.active_head_versions(model_version)
    for head_version in head_versions:
        trained_interval = head_version.config.get("sample_interval_ms", settings.HYDRA_SAMPLE_INTERVAL_MS)
        if trained_interval != settings.HYDRA_SAMPLE_INTERVAL_MS:
            logger.warning(
                "%s was trained on samples every %s ms but the site samples every %s ms; its windows span other times",
                head_version,
                trained_interval,
                settings.HYDRA_SAMPLE_INTERVAL_MS,
            )
    results = [(hv, heads.load_runner(hv).score(features, accepted.positions)) for hv in head_versions]
    with transaction.atomic():
        Video.objects.select_for_update(nowait=True).filter(pk=video.pk).first()
        verdicts = [
            _store_head_result(video, model_version, head_version, accepted, result) for head_version, result in results
        ]
    _announce(video, verdicts)
    return verdicts


def _store_head_result(
    video: Video,
    model_version: ModelVersion,
    head_version: HeadVersion,
    accepted: selectors.AcceptedFeatures,
    result: heads.HeadScores,
) -> Verdict:
    scores = [float(score) for score in result.scores]
    FrameScore.objects.filter(video=video, head_version=head_version).delete()
    FrameScore.objects.bulk_create(
        FrameScore(
            video=video,
            head_version=head_version,
            sample_ms=ms,
            score=score,
            class_scores=result.class_scores[index] if result.class_scores else {},
        )
        for index, (ms, score) in enumerate(zip(accepted.sample_ms, scores, strict=True))
    )
    policy = segment_policy(head_version)
    segments = flagged_segments(
        accepted.sample_ms,
        scores,
        span_ms=settings.HYDRA_SAMPLE_INTERVAL_MS,
        duration_ms=video.duration_ms,
        policy=policy,
    )
    verdict, _created = Verdict.objects.update_or_create(
        video=video,
        head_version=head_version,
        defaults={
            "model_version": model_version,
            "score": max(scores),
            "threshold": policy.threshold,
            "flagged": bool(segments),
            "segments": [list(segment) for segment in segments],
            "top_frames": top_frames(accepted.sample_ms, scores, TOP_FRAMES),
            "coverage": accepted.coverage,
        },
    )
    return verdict


def _announce(video: Video, verdicts: list[Verdict]) -> None:
    """Flagged verdicts go to moderation; a fully covered video below every threshold is cleared."""
    for verdict in verdicts:
        if verdict.flagged and trust.confirm_flag_with_server(verdict):
            signals.verdict_flagged.send(sender=Verdict, verdict=verdict)
    if verdicts and not any(v.flagged for v in verdicts) and all(v.coverage >= 1.0 for v in verdicts):
        signals.video_cleared.send(sender=Video, video=video, verdicts=verdicts)


def analysis_due(video: Video, model_version: ModelVersion, head_versions: list[HeadVersion]) -> bool:
    """True when the video's coverage reached a step (HYDRA_ANALYSIS_COVERAGE_STEPS) not yet analysed.

    Two small queries; an analysis has a fixed cost (a few queries, rewriting the video's scores),
    so verdicts follow coverage in steps rather than after every stored batch.
    """
    if not head_versions:
        return False
    coverage = selectors.coverage(video, model_version).fraction
    return _reached_step(coverage) > _reached_step(selectors.analysed_coverage(video, head_versions))


def _reached_step(coverage: float) -> int:
    return sum(1 for step in settings.HYDRA_ANALYSIS_COVERAGE_STEPS if coverage >= step - 1e-9)


# --- Training temporal heads (analysis helper) --------------------------------------------------

CLIP_DECODE_BATCH = 32


def training_clip_features(path: Path, model_version: ModelVersion) -> tuple[list[int], np.ndarray]:
    """A labelled file's features at its sample times: from the PostgreSQL cache, or decoded once and cached.

    Decoding uses the same PyAV frame path and Keras CNN as the server's own analysis, and the cached
    vectors are quantised exactly like browsers' features, so a head learns what it will later see.
    """
    interval_ms = settings.HYDRA_SAMPLE_INTERVAL_MS
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    sha256 = digest.hexdigest()
    cached = TrainingClip.objects.filter(sha256=sha256, model_version=model_version, interval_ms=interval_ms).first()
    if cached is None:
        duration_ms, times, codes = _decode_training_clip(path, model_version, interval_ms)
        cached, _created = TrainingClip.objects.get_or_create(
            sha256=sha256,
            model_version=model_version,
            interval_ms=interval_ms,
            defaults={
                "source_name": path.name[:255],
                "duration_ms": duration_ms,
                "sample_ms": times,
                "vectors": codes.tobytes(),
            },
        )
    codes = np.frombuffer(bytes(cached.vectors), dtype=np.uint8).reshape(len(cached.sample_ms), -1)
    return list(cached.sample_ms), dequantise(codes)


def _decode_training_clip(
    path: Path, model_version: ModelVersion, interval_ms: int
) -> tuple[int, list[int], np.ndarray]:
    from inference.ml import cnn, frames
    from videos.media import probe

    probed = probe(path, max_duration_seconds=settings.HYDRA_MAX_DURATION_SECONDS)
    times = sample_times_ms(probed.duration_ms, probed.fps, interval_ms)
    model = cnn.cached_feature_extractor(str(selectors.model_artefact_dir(model_version)))
    batches = [
        quantise(cnn.compute_features(model, frames.decode_frames_at(path, times[start : start + CLIP_DECODE_BATCH])))
        for start in range(0, len(times), CLIP_DECODE_BATCH)
    ]
    return probed.duration_ms, times, np.concatenate(batches)


def sequences_from_folder(
    folder: Path, model_version: ModelVersion, positive: str | None = None
) -> list[LabelledSequence]:
    """One labelled sequence per video file of a RWF-2000 / Hockey Fights style folder (decoded once, then cached)."""
    sequences = []
    for labelled in find_labelled_videos(folder, positive):
        _times, features = training_clip_features(labelled.path, model_version)
        sequences.append(
            LabelledSequence(key=str(labelled.path.relative_to(folder)), label=labelled.label, features=features)
        )
    return sequences


def sequences_from_decisions(category: str, model_version: ModelVersion) -> list[LabelledSequence]:
    """One labelled sequence per moderated video: its stored features (longest unbroken run), no decoding."""
    try:
        from moderation.selectors import final_labels
    except ImportError as exc:
        raise ValueError("moderators' decisions are not available (moderation.selectors.final_labels)") from exc
    sequences = []
    for video_id, _category, label in final_labels(category):
        video = Video.objects.filter(pk=video_id).first()
        if video is None:
            continue
        accepted = selectors.accepted_features(video, model_version)
        runs = heads.contiguous_runs(accepted.positions)
        if not runs:
            continue
        start, end = max(runs, key=lambda run: run[1] - run[0])
        features = dequantise(accepted.codes[start:end])
        sequences.append(LabelledSequence(key=f"video:{video_id}", label=int(label), features=features))
    return sequences


def train_temporal_head_version(
    category: str,
    sequences: list[LabelledSequence],
    config: TemporalConfig,
    options: TrainingOptions | None = None,
    source: str = "",
    activate: bool = True,
) -> HeadVersion:
    """Train the category's temporal head and register the result as its next version (earlier ones stay).

    Weights, report.json and roc.png go to HYDRA_MODEL_ROOT/heads/<category>/v<N>/.
    """
    head = Head.objects.get(category=category)
    if head.kind != Head.Kind.TEMPORAL:
        raise ValueError(f"{category} is a {head.kind} head; only temporal heads are trained here")
    model_version = selectors.active_model_version()
    if model_version is None:
        raise ValueError("no active model version: run `manage.py build_models` first")
    heads_root = Path(settings.HYDRA_MODEL_ROOT) / "heads" / category
    staging = heads_root / f".training-{uuid.uuid4().hex}"
    try:
        report = train_temporal_head(sequences, config, staging, options, title=head.label)
        report["source"] = source
        version = (head.versions.order_by("-version").values_list("version", flat=True).first() or 0) + 1
        final = heads_root / f"v{version}"
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return register_head_version(
        head,
        model_version,
        weights_path=str(final.relative_to(settings.HYDRA_MODEL_ROOT)),
        config={
            "runner": "keras_lstm",
            **config.to_dict(),
            "sample_interval_ms": settings.HYDRA_SAMPLE_INTERVAL_MS,
            "segments": DEFAULT_SEGMENT_RULES,
        },
        metrics=report,
        activate=activate,
        version=version,
    )


# --- Feature streaming (client helper): browser sessions and their features ---------------------


class SessionMismatch(Exception):
    """A client asked to resume a session it may not continue (other video, other user, quarantined)."""


class AnalysisRefused(ProtocolError):
    """Why a viewer may not contribute to a video's analysis at all (the consumer closes the connection)."""


@dataclass(frozen=True)
class OpenedAnalysis:
    session: ClientSession
    assigned: list[int]  # sample times the session must compute
    done: list[int]  # those of them a resumed session already delivered


def open_analysis_session(
    *, slug: str, user: AbstractBaseUser | None, ip_address: str | None, user_agent: str, resume_id: str | None
) -> OpenedAnalysis:
    """A viewer's page wants to analyse a video: check it may, then start (or resume) a session and assign its work."""
    user_id = user.pk if user is not None else None
    try:
        ratelimit.check_client("ws_connect", ip=ip_address, user_id=user_id)
    except ratelimit.RateLimited as limited:
        raise AnalysisRefused(ErrorCode.RATE_LIMITED, str(limited)) from None
    video = video_by_slug(slug)
    if video is None or not video.is_playable or not can_view(user or AnonymousUser(), video):
        raise AnalysisRefused(ErrorCode.VIDEO_UNAVAILABLE, "no playable video here")
    model_version = selectors.active_model_version()
    if model_version is None:
        raise AnalysisRefused(ErrorCode.NO_MODEL, "no model version is active")
    try:
        session = start_client_session(
            video=video,
            model_version=model_version,
            user_id=user_id,
            ip_address=ip_address,
            user_agent=user_agent,
            resume_id=resume_id,
        )
    except SessionMismatch as exc:
        raise AnalysisRefused(ErrorCode.SESSION_MISMATCH, str(exc)) from None
    return OpenedAnalysis(
        session=session,
        assigned=selectors.assigned_sample_times(session),
        done=selectors.session_sample_times(session) if resume_id else [],
    )


@dataclass(frozen=True)
class RecordedFeatures:
    accepted: tuple[int, ...]
    duplicates: tuple[int, ...]


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
    its work with it, and its features are stored under that version.
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
            raise SessionMismatch("no such session") from None
        if session.video_id != video.pk:
            raise SessionMismatch("the session belongs to another video")
        if session.user_id is not None and session.user_id != user_id:
            raise SessionMismatch("the session belongs to another user")
        if session.state == ClientSession.State.QUARANTINED:
            raise SessionMismatch("the session is quarantined")
        session.state = ClientSession.State.ACTIVE
        session.ip_address = ip_address
        session.save(update_fields=["state", "ip_address", "last_seen_at"])
    return session


def identify_client_session(session: ClientSession, *, backend: str, device_id: str) -> None:
    """Record what the client said it runs on (its ``hello``); a quarantined device's session starts quarantined."""
    session.backend = backend
    session.device_id = device_id
    session.save(update_fields=["backend", "device_id", "last_seen_at"])
    trust.quarantine_if_caught(session)


def record_frame_features(session: ClientSession, samples: Sequence[FrameSample]) -> RecordedFeatures:
    """Store a validated batch as pending; a sample the session already sent is reported as duplicate.

    This is the websocket path, paid for every batch of every viewer: it only stores (one
    statement on PostgreSQL) and asks for a settlement pass (``request_settlement``), in which a
    worker judges and analyses the video's new features together. One row per (session,
    sample_ms): the unique constraint makes a replay a no-op even when two copies of a batch race.
    A quarantined session stores nothing and gets the trust layer's refusal.
    """
    feature_size = session.model_version.feature_size
    wrong = [s.sample_ms for s in samples if len(s.vector) != feature_size]
    if wrong:
        raise ValueError(f"vectors of samples {wrong} are not {feature_size} bytes long")
    store = _insert_pending_postgresql if connection.vendor == "postgresql" else _insert_pending_portable
    stored = store(session, samples)
    if stored is None:
        raise trust.quarantined_error(session)
    if stored:
        transaction.on_commit(functools.partial(request_settlement, session.video_id, session.model_version_id))
    new = set(stored)
    return RecordedFeatures(
        accepted=tuple(s.sample_ms for s in samples if s.sample_ms in new),
        duplicates=tuple(s.sample_ms for s in samples if s.sample_ms not in new),
    )


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
    import psycopg

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


# --- Settlement: judging and analysing stored features, off the websocket path -------------------

SETTLEMENT_MARGIN_SECONDS = 0.25
_settlements_requested: dict[tuple[int, int], int] = {}  # (video, model version) -> window, this process
_SETTLEMENTS_REMEMBERED = 10_000


def settlement_window(now: float) -> int:
    """Time is cut into windows of HYDRA_SETTLE_DELAY_SECONDS; one pass per video follows each window with batches."""
    return int(now // settings.HYDRA_SETTLE_DELAY_SECONDS)


def request_settlement(video_id: int, model_version_id: int) -> None:
    """Make sure a settlement pass of the video runs after the current window (called once a batch is committed).

    A pass has a fixed cost (a lock, a few queries, perhaps an analysis) whatever the number of new
    features, so every batch stored in one window, by any viewer on any process, shares the pass
    queued for just after that window's end: it sees them all, since each was committed before it
    asked. The first batch of a window sets a Redis key (SET NX) and queues the pass; later batches
    find the key, and within one process do not even ask Redis (remembered per window). Tasks that
    run in-process (the embedded default) cannot be delayed: there every batch settles at once.
    """
    from inference.tasks import settle_video_task

    if settle_video_task.app.conf.task_always_eager:
        settle_video_task.apply_async((video_id, model_version_id))
        return
    now = time.time()
    window = settlement_window(now)
    video_key = (video_id, model_version_id)
    if _settlements_requested.get(video_key) == window:
        return
    if len(_settlements_requested) >= _SETTLEMENTS_REMEMBERED:
        _settlements_requested.clear()
    _settlements_requested[video_key] = window
    delay = settings.HYDRA_SETTLE_DELAY_SECONDS
    if cache.add(f"hydra:settle:{video_id}:{model_version_id}:{window}", True, timeout=delay + 60):
        countdown = (window + 1) * delay - now + SETTLEMENT_MARGIN_SECONDS
        settle_video_task.apply_async((video_id, model_version_id), countdown=countdown)


def settle_video(video: Video, model_version: ModelVersion) -> list[Verdict]:
    """One settlement pass: judge every pending feature of the video, then analyse it if coverage reached a step.

    Returns the verdicts of the analysis, if one ran.
    """
    trust.verify_pending(video, model_version)
    head_versions = selectors.active_head_versions(model_version)
    if not analysis_due(video, model_version, head_versions):
        return []
    return analyse_video(video, model_version, head_versions)


def close_client_session(session: ClientSession) -> None:
    """The client went away; it may come back and resume."""
    ClientSession.objects.filter(pk=session.pk, state=ClientSession.State.ACTIVE).update(
        state=ClientSession.State.CLOSED
    )
    trust.release_unfinished_assignments(session)
