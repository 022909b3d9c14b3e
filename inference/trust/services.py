"""Trust use cases: assign samples, verify what sessions send, quarantine liars, fill coverage gaps.

Features arrive ``pending``. A sample's features become ``accepted`` when independent sessions
agree on them (then a spot check may still recompute it) or when the server computed the
sample itself; the server's features settle every dispute. Whoever the server proves wrong is
quarantined with everything it ever sent. docs/trust.md describes the whole design.

Nothing here queues a task: a function that opens recomputations or changes accepted features
returns ``FollowUps``, and its caller (``inference.services.settlement``) queues them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from inference import heads, selectors
from inference.models import (
    ClientSession,
    Contributor,
    FrameFeature,
    FrameScore,
    ModelVersion,
    Recomputation,
    SampleAssignment,
    Verdict,
)
from inference.services import server_features
from inference.trust.agreement import SEVERE_QUORUM
from inference.trust.assignment import Identity, assignment_rng, independent_quorum, plan_assignment
from inference.trust.contributors import contributor_key, identity_of, refusal_reason, reset_records
from inference.trust.verification import (
    JUDGED_SESSION_FIELDS,
    AlternativeFeatures,
    FollowUps,
    request_recomputation,
    verify_samples,
    window_near_threshold,
    window_of,
)
from videos.models import Video

logger = logging.getLogger(__name__)

MISMATCH = "its features did not match the server's own for the same frames"
Status = FrameFeature.Status
Reason = Recomputation.Reason


# --- Assignment ------------------------------------------------------------------------------------


def _live_holders(video: Video, model_version: ModelVersion) -> dict[int, list[Identity]]:
    """Per sample time, the sessions that hold it: active ones assigned it, or any that sent it (not rejected)."""
    sessions = {
        s.pk: identity_of(s, video.owner_id)
        for s in ClientSession.objects.filter(video=video, model_version=model_version, is_server=False).exclude(
            state=ClientSession.State.QUARANTINED
        )
    }
    holders: dict[int, dict[str, Identity]] = defaultdict(dict)
    assigned = SampleAssignment.objects.filter(
        session_id__in=sessions, session__state=ClientSession.State.ACTIVE
    ).values_list("session_id", "sample_ms")
    sent = (
        FrameFeature.objects.filter(session_id__in=sessions)
        .exclude(status=Status.REJECTED)
        .values_list("session_id", "sample_ms")
    )
    for session_id, sample_ms in [*assigned, *sent]:
        identity = sessions[session_id]
        holders[sample_ms][identity.session_id] = identity
    return {t: list(by_id.values()) for t, by_id in holders.items()}


def _server_settled(video: Video, model_version: ModelVersion) -> set[int]:
    return set(
        FrameFeature.objects.filter(video=video, model_version=model_version, session__is_server=True).values_list(
            "sample_ms", flat=True
        )
    )


def assign_samples(session: ClientSession, sample_times: Sequence[int]) -> list[int]:
    """The sample times this session must compute, out of the video's ``sample_times``.

    A session keeps what it was given (a reconnecting client resumes it) and is topped up with
    times that still lack independent replicas, e.g. because an earlier session left. Planning
    is serialised per video (a row lock) so two sessions joining at once see each other.
    """
    if session.is_server or refusal_reason(session):
        return []
    with transaction.atomic():
        video = Video.objects.select_for_update().get(pk=session.video_id)
        plan = plan_assignment(
            sample_times,
            identity_of(session, video.owner_id),
            _live_holders(video, session.model_version),
            replicas=settings.HYDRA_TRUST_REPLICAS,
            minimum=settings.HYDRA_TRUST_MIN_ASSIGNMENT,
            rng=assignment_rng(settings.SECRET_KEY, str(session.pk)),
            settled=_server_settled(video, session.model_version),
        )
        SampleAssignment.objects.bulk_create(
            [SampleAssignment(session=session, sample_ms=t) for t in plan], ignore_conflicts=True
        )
        return sorted(session.sample_assignments.values_list("sample_ms", flat=True))


def release_unfinished_assignments(session_ids: Iterable) -> None:
    """Sessions left: what they had not sent goes back to the pool for the next sessions (or the server)."""
    SampleAssignment.objects.filter(session_id__in=list(session_ids)).exclude(
        Exists(FrameFeature.objects.filter(session_id=OuterRef("session_id"), sample_ms=OuterRef("sample_ms")))
    ).delete()


def close_stale_sessions(video: Video, now: datetime) -> int:
    """Close the video's browser sessions silent for HYDRA_TRUST_SESSION_STALE_SECONDS; give back what they owe.

    ``disconnect()`` never runs when a daphne process crashes or restarts, so without this a socket
    dropped abnormally would hold its samples forever, and two throwaway sockets could take every
    sample of a video from its later viewers. Run before a video's work is assigned, so the bound
    holds in every deployment (no periodic task needed). A swept session may still resume: closing
    only returns the samples it had not sent. Returns how many sessions were closed.
    """
    cutoff = now - timedelta(seconds=settings.HYDRA_TRUST_SESSION_STALE_SECONDS)
    stale = list(
        ClientSession.objects.filter(
            video=video, state=ClientSession.State.ACTIVE, is_server=False, last_seen_at__lt=cutoff
        ).values_list("pk", flat=True)
    )
    if stale:
        ClientSession.objects.filter(pk__in=stale, state=ClientSession.State.ACTIVE).update(
            state=ClientSession.State.CLOSED, state_reason="silent past HYDRA_TRUST_SESSION_STALE_SECONDS"
        )
        release_unfinished_assignments(stale)
    return len(stale)


@transaction.atomic
def verify_pending(video: Video, model_version: ModelVersion) -> FollowUps:
    """Judge every pending feature of the video (a settlement pass, in a worker); quarantine whoever is proven wrong.

    Judging is serialised per video (a row lock): two passes judging the same sample at once
    would each miss the other's status changes. Samples still waiting for a replica stay pending
    and are judged again by the next pass.
    """
    Video.objects.select_for_update().filter(pk=video.pk).first()
    pending = (
        FrameFeature.objects.filter(video=video, model_version=model_version, status=Status.PENDING)
        .exclude(session__state=ClientSession.State.QUARANTINED)
        .values_list("sample_ms", flat=True)
        .distinct()
    )
    times = list(pending)
    if not times:
        return FollowUps()
    wrong, follow_ups = verify_samples(video, model_version, times)
    return follow_ups.update(quarantine_sessions(wrong, MISMATCH))


# --- Quarantine ------------------------------------------------------------------------------------


def _sessions_of(key: str) -> Q:
    kind, _, value = key.partition(":")
    field = {"user": "user_id", "device": "device_id", "session": "pk"}[kind]
    return Q(**{field: value}, is_server=False)


def quarantine_sessions(sessions: Iterable[ClientSession], reason: str) -> FollowUps:
    """Discard everything the contributors behind these sessions sent and make the server redo what they held.

    Samples that still have an agreeing independent quorum without them stay accepted; the
    others are recomputed by the server. Every video they touched must be analysed again.
    """
    keys = {contributor_key(s) for s in sessions}
    follow_ups = FollowUps()
    if not keys:
        return follow_ups
    now = timezone.now()
    for key in keys:
        contributor, _ = Contributor.objects.select_for_update().get_or_create(key=key)
        if contributor.quarantined_at is None:
            contributor.quarantined_at = now
            contributor.quarantine_reason = reason
        contributor.invalid_total += 1
        contributor.consecutive_valid = 0
        contributor.save()
        logger.warning("quarantined contributor %s: %s", key, reason)
    who = Q()
    for key in keys:
        who |= _sessions_of(key)
    caught = ClientSession.objects.filter(who)
    reset_records(caught.only("user_id", "ip_address", "device_id"))
    caught.update(state=ClientSession.State.QUARANTINED, state_reason=reason)
    SampleAssignment.objects.filter(session__in=caught).delete()
    # Every sample they ever sent, including those already rejected by the verification that
    # caught them: a verdict may have been computed while those were still accepted.
    sent = FrameFeature.objects.filter(session__in=caught)
    touched: dict[tuple[int, int], set[int]] = defaultdict(set)
    for video_id, model_version_id, t in sent.values_list("video_id", "model_version_id", "sample_ms"):
        touched[(video_id, model_version_id)].add(t)
    sent.exclude(status=Status.REJECTED).update(status=Status.REJECTED)
    for (video_id, model_version_id), times in touched.items():
        follow_ups.update(
            _reverify_without_quarantined(
                Video.objects.get(pk=video_id), ModelVersion.objects.get(pk=model_version_id), times
            )
        )
    return follow_ups


def _reverify_without_quarantined(video: Video, model_version: ModelVersion, times: set[int]) -> FollowUps:
    """Make the video's verdicts stand only on what remains accepted once a liar's features are gone.

    Accepted features that leaned on the quarantined peer are judged again; every touched sample
    left without accepted features goes to the server (coverage dropped), and the verdicts are
    computed again at once from what remains accepted plus the server's own features.
    """
    settled = _server_settled(video, model_version)
    peer_judged = times - settled
    FrameFeature.objects.filter(
        video=video, model_version=model_version, sample_ms__in=peer_judged, status=Status.ACCEPTED
    ).update(status=Status.PENDING)
    wrong, follow_ups = verify_samples(video, model_version, peer_judged)
    follow_ups.update(quarantine_sessions(wrong, MISMATCH))
    uncovered = uncovered_sample_times(video, model_version, sorted(times))
    follow_ups.update(request_recomputation(video, model_version, uncovered, Reason.QUARANTINE))
    follow_ups.reanalyse[video.pk] = None
    return follow_ups


# --- The server's own recomputations -------------------------------------------------------------------


ServerFeatures = Callable[[Video, Sequence[int], ModelVersion], np.ndarray]


def run_recomputations(
    video: Video, model_version: ModelVersion, compute: ServerFeatures, alternatives: AlternativeFeatures
) -> tuple[list[int], FollowUps]:
    """Compute every open recomputation of this video with the server's CNN, then settle those samples.

    Rows are claimed with SKIP LOCKED so two workers never compute the same sample twice.
    Returns the sample times computed.
    """
    follow_ups = FollowUps()
    with transaction.atomic():
        claimed = list(
            Recomputation.objects.select_for_update(skip_locked=True).filter(
                video=video, model_version=model_version, done_at__isnull=True
            )
        )
        if not claimed:
            return [], follow_ups
        times = sorted({r.sample_ms for r in claimed})
        missing = sorted(set(times) - _server_settled(video, model_version))
        features = compute(video, missing, model_version) if missing else None
        # Judge under the video's lock, like verify_pending: a batch stored meanwhile is either seen
        # here or, once this commits, judged against the server's features by the next pass.
        Video.objects.select_for_update().filter(pk=video.pk).first()
        if missing:
            server_features.store_server_features(video, model_version, missing, features)
        wrong, found = verify_samples(video, model_version, missing, rejudge_accepted=True, alternatives=alternatives)
        follow_ups.update(found)
        more_wrong, found = verify_samples(
            video, model_version, sorted(set(times) - set(missing)), alternatives=alternatives
        )
        follow_ups.update(found)
        Recomputation.objects.filter(pk__in=[r.pk for r in claimed]).update(done_at=timezone.now())
        follow_ups.update(quarantine_sessions(wrong | more_wrong, MISMATCH))  # every video the liars touched
        # The analysis prefers the server's own features: even a spot check that proved nobody
        # wrong changed the verdicts' input, and a pending clearance waits for this analysis.
        follow_ups.reanalyse[video.pk] = None
    return missing, follow_ups


def verification_outstanding(video: Video) -> bool:
    """True while the server still has samples of this video to compute: its verdicts may yet change."""
    return Recomputation.objects.filter(video=video, done_at__isnull=True).exists()


def uncovered_sample_times(video: Video, model_version: ModelVersion, sample_times: Sequence[int]) -> list[int]:
    """The given sample times that have no accepted features."""
    covered = set(selectors.coverage(video, model_version, sample_times).covered_ms)
    return [t for t in sample_times if t not in covered]


def cover_video(video: Video, model_version: ModelVersion, sample_times: Sequence[int]) -> tuple[list[int], FollowUps]:
    """Queue for the server every sample no session got accepted; returns them."""
    missing = uncovered_sample_times(video, model_version, sample_times)
    with transaction.atomic():
        follow_ups = request_recomputation(video, model_version, missing, Reason.COVERAGE)
    return missing, follow_ups


# --- Flags and the coverage deadline ------------------------------------------------------------------


def flagged_sample_times(segments: Iterable[Sequence[float]], sample_times: Sequence[int]) -> list[int]:
    """The sample times inside flagged segments ``[[start_ms, end_ms, score], ...]``."""
    spans = [(float(s[0]), float(s[1])) for s in segments]
    return [t for t in sample_times if any(start <= t <= end for start, end in spans)]


def confirm_flag_with_server(verdict: Verdict, sample_times: Sequence[int]) -> tuple[bool, FollowUps]:
    """True when the server computed every frame of the flagged segments itself; else queue them and say False.

    A case must never reach the moderators on client features alone (false flags would flood
    the queue and could get clean videos taken down): the recomputation re-runs the analysis,
    and the verdict that follows stands on the server's own features. ``sample_times`` is the
    video's sample grid.
    """
    video, model_version = verdict.video, verdict.model_version
    times = flagged_sample_times(verdict.segments, sample_times)
    missing = sorted(set(times) - _server_settled(video, model_version))
    if not missing:
        return True, FollowUps()
    with transaction.atomic():
        return False, request_recomputation(video, model_version, missing, Reason.FLAG)


def peer_carried(video: Video, model_version: ModelVersion) -> set[int]:
    """Sample times whose accepted client features come from at least ``SEVERE_QUORUM`` independent sessions.

    The heads score such a sample with its most severe replica (``analysis.analyse_video``), so a lie inside the
    tolerance moves a decision there only if every one of those sessions lies.
    """
    rows = (
        FrameFeature.objects.filter(
            video=video, model_version=model_version, status=Status.ACCEPTED, session__is_server=False
        )
        .select_related("session")
        .only("sample_ms", "session_id", *(f"session__{name}" for name in JUDGED_SESSION_FIELDS))
    )
    holders: dict[int, list[Identity]] = defaultdict(list)
    for feature in rows:
        holders[feature.sample_ms].append(identity_of(feature.session, video.owner_id))
    return {t for t, identities in holders.items() if len(independent_quorum(identities)) >= SEVERE_QUORUM}


def confirm_borderline_windows(video: Video, model_version: ModelVersion, verdicts: Iterable[Verdict]) -> FollowUps:
    """Window heads (pooled, temporal): a score an in-tolerance lie could move across the threshold rests on the server
    or on samples peers carry.

    A per-frame head is guarded when peers agree (``verification.near_thresholds``); a window
    head's score exists only once the analysis pooled several samples, so it is guarded here,
    right after each analysis. A window whose score an in-tolerance lie could have carried across
    the head's threshold (``verification.window_near_threshold``; a temporal head's always) needs
    nothing more when every sample of it is server-computed or ``peer_carried`` (of a pooled head:
    the analysis scored its most severe replicas, so one honest replica per sample keeps its
    decision); otherwise each of its samples the server has not computed is queued
    (``Reason.BORDERLINE``). The recomputation re-runs the analysis on the server's features, and
    a clean video is cleared only when none is open, so such a lie can neither hide nor raise a
    decision (a raised one waits for the server's confirmation of every flag).
    """
    settled = _server_settled(video, model_version)
    carried = settled | peer_carried(video, model_version)
    needed: set[int] = set()
    for verdict in verdicts:
        runner = heads.load_runner(verdict.head_version)
        reach = window_of(runner) - 1
        if reach == 0:
            continue
        bounded = isinstance(runner, heads.PooledRunner)
        scores = list(
            FrameScore.objects.filter(video=video, head_version=verdict.head_version)
            .order_by("sample_ms")
            .values_list("sample_ms", "score")
        )
        for i, (_, score) in enumerate(scores):
            if window_near_threshold(runner, score, verdict.threshold):
                window = [t for t, _ in scores[max(0, i - reach) : i + reach + 1]]
                if not bounded or not carried.issuperset(window):
                    needed.update(window)
    missing = sorted(needed - settled)
    with transaction.atomic():
        return request_recomputation(video, model_version, missing, Reason.BORDERLINE)


def coverage_countdown_seconds(sample_count: int, seconds_left: float) -> int:
    """Seconds until the server starts covering a video whose full coverage is due in ``seconds_left``.

    The server starts early enough to compute every sample itself by then (a fixed slack for
    queueing and loading the model, plus a per-sample estimate); a deadline that is due now, or
    too close for that, starts at once. How long a video may wait is moderation's policy
    (``moderation.services.start_coverage_deadline``).
    """
    budget = settings.HYDRA_TRUST_COVERAGE_SLACK_SECONDS + sample_count * settings.HYDRA_TRUST_SERVER_SECONDS_PER_SAMPLE
    return max(0, int(seconds_left - budget))
