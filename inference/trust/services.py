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
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from inference import heads, selectors
from inference.ml.nsfw_head import WEIGHTS_FILE, NsfwHead
from inference.ml.quantise import dequantise
from inference.models import (
    ClientSession,
    Contributor,
    FrameFeature,
    ModelVersion,
    Recomputation,
    SampleAssignment,
    Verdict,
)
from inference.services import server_features
from inference.trust.agreement import (
    HeadProbabilities,
    SampleOutcome,
    Submission,
    Tolerance,
    judge_against_server,
    judge_by_peers,
)
from inference.trust.assignment import Identity, network_of, plan_assignment
from inference.trust.spot_checks import SpotCheckPolicy
from videos.models import Video

logger = logging.getLogger(__name__)

# Spot checks must be unpredictable to clients; tests replace this with a seeded random.Random.
spot_check_rng: random.Random = random.SystemRandom()

MISMATCH = "its features did not match the server's own for the same frames"
Status = FrameFeature.Status
Reason = Recomputation.Reason


@dataclass
class FollowUps:
    """What a trust step changed that needs work elsewhere; the caller queues it (``settlement.queue_follow_ups``).

    ``recompute``: (video, model version) pairs with new samples queued for the server's own
    features. ``reanalyse``: videos whose accepted features changed, so their verdicts must follow.
    Both keep the order in which they were found.
    """

    recompute: dict[tuple[int, int], None] = field(default_factory=dict)
    reanalyse: dict[int, None] = field(default_factory=dict)

    def update(self, other: FollowUps) -> FollowUps:
        self.recompute.update(other.recompute)
        self.reanalyse.update(other.reanalyse)
        return self

    def __bool__(self) -> bool:
        return bool(self.recompute or self.reanalyse)


def configured_tolerance() -> Tolerance:
    return Tolerance(
        min_cosine=settings.HYDRA_TRUST_MIN_COSINE,
        max_norm_ratio=settings.HYDRA_TRUST_MAX_NORM_RATIO,
        max_head_difference=settings.HYDRA_TRUST_MAX_HEAD_DIFFERENCE,
    )


def configured_spot_checks() -> SpotCheckPolicy:
    return SpotCheckPolicy(
        probation=settings.HYDRA_TRUST_PROBATION_RESULTS, floor=settings.HYDRA_TRUST_SPOT_CHECK_FLOOR
    )


def nudity_head(model_version: ModelVersion) -> NsfwHead:
    """The nsfwjs dense head shipped with this model version's artefacts (one cached copy per process)."""
    return heads.nsfw_head(Path(settings.HYDRA_MODEL_ROOT) / model_version.artefact_dir / WEIGHTS_FILE)


def _no_head(features: np.ndarray) -> np.ndarray:
    return np.zeros((len(features), 1), dtype=np.float32)


def head_probabilities(model_version: ModelVersion) -> HeadProbabilities:
    """The nudity head of this model version: agreement compares its decisions as well as features.

    A version registered without head weights (only hand-made test fixtures) is compared on
    features alone, with a warning.
    """
    try:
        return nudity_head(model_version).predict
    except FileNotFoundError:
        logger.warning("model version %s has no nudity head: agreement compares features only", model_version)
        return _no_head


# --- Who a session is ------------------------------------------------------------------------------


def contributor_key(session: ClientSession) -> str:
    """An account if logged in, else the device id the client gave, else the session alone."""
    if session.user_id is not None:
        return f"user:{session.user_id}"
    if session.device_id:
        return f"device:{session.device_id}"
    return f"session:{session.pk}"


def identity_of(session: ClientSession, uploader_id: int | None) -> Identity:
    return Identity(
        session_id=str(session.pk),
        user_id=session.user_id,
        device_id=session.device_id,
        network=network_of(session.ip_address),
        is_uploader=session.user_id is not None and session.user_id == uploader_id,
    )


CAUGHT_SESSION = "this session was quarantined for sending features that do not match the video"
CAUGHT_CONTRIBUTOR = "this account or device was quarantined"


def quarantine_if_caught(session: ClientSession) -> None:
    """A new session of a quarantined account or device starts quarantined (checked once its device is known).

    Storing a batch checks only the session's own state (one statement per batch); this makes
    that check cover the person and device behind the session too.
    """
    if session.state != ClientSession.State.QUARANTINED and refusal_reason(session):
        ClientSession.objects.filter(pk=session.pk).update(
            state=ClientSession.State.QUARANTINED, state_reason=CAUGHT_CONTRIBUTOR
        )
        session.state, session.state_reason = ClientSession.State.QUARANTINED, CAUGHT_CONTRIBUTOR


def refusal_reason(session: ClientSession) -> str | None:
    """Why this session may no longer contribute, or None: it, or the person or device behind it, was caught."""
    if session.state == ClientSession.State.QUARANTINED:
        return CAUGHT_CONTRIBUTOR if session.state_reason == CAUGHT_CONTRIBUTOR else CAUGHT_SESSION
    key = contributor_key(session)
    if key.startswith("session:"):
        return None  # no account or device: the contributor is the session, whose state was just read
    quarantined = Contributor.objects.filter(key=key, quarantined_at__isnull=False).exists()
    return CAUGHT_CONTRIBUTOR if quarantined else None


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
            settled=_server_settled(video, session.model_version),
        )
        SampleAssignment.objects.bulk_create(
            [SampleAssignment(session=session, sample_ms=t) for t in plan], ignore_conflicts=True
        )
        return sorted(session.sample_assignments.values_list("sample_ms", flat=True))


def release_unfinished_assignments(session: ClientSession) -> None:
    """A session left: what it had not sent goes back to the pool for the next sessions (or the server)."""
    SampleAssignment.objects.filter(session=session).exclude(
        sample_ms__in=FrameFeature.objects.filter(session=session).values("sample_ms")
    ).delete()


# --- Verification ----------------------------------------------------------------------------------


class ContributorRecords:
    """The spot-check records of a verification's contributors: read in one query, written once per contributor.

    A pass touches a few contributors many times (once per sample), so the records are read in one
    query, and the server-verified results are added up and written at the end (``save``) with one
    atomic increment per contributor. Reads see the results already counted in this verification,
    as a save per result would.
    """

    def __init__(self, sessions: Iterable[ClientSession]) -> None:
        keys = {contributor_key(session) for session in sessions}
        self._consecutive_valid = dict(Contributor.objects.filter(key__in=keys).values_list("key", "consecutive_valid"))
        self._new_valid: dict[str, int] = defaultdict(int)

    def consecutive_valid(self, session: ClientSession) -> int:
        """A contributor without a row yet has no record (the row's default)."""
        return self._consecutive_valid.get(contributor_key(session), 0)

    def record_valid(self, sessions: Iterable[ClientSession]) -> None:
        for session in sessions:
            key = contributor_key(session)
            self._consecutive_valid[key] = self._consecutive_valid.get(key, 0) + 1
            self._new_valid[key] += 1

    def spot_check_due(self, sessions: Iterable[ClientSession]) -> bool:
        records = [self.consecutive_valid(session) for session in sessions]
        return configured_spot_checks().draw(records, spot_check_rng)

    def save(self) -> None:
        if not self._new_valid:
            return
        Contributor.objects.bulk_create([Contributor(key=key) for key in self._new_valid], ignore_conflicts=True)
        by_count: dict[int, list[str]] = defaultdict(list)
        for key, count in self._new_valid.items():
            by_count[count].append(key)
        for count, keys in by_count.items():
            Contributor.objects.filter(key__in=keys).update(
                consecutive_valid=F("consecutive_valid") + count, valid_total=F("valid_total") + count
            )
        self._new_valid.clear()


def request_recomputation(
    video: Video, model_version: ModelVersion, sample_ms: Iterable[int], reason: str
) -> FollowUps:
    """Open a recomputation per sample (once per sample while open); the follow-up runs them on the server."""
    times = sorted(set(sample_ms))
    if not times:
        return FollowUps()
    Recomputation.objects.bulk_create(
        [Recomputation(video=video, model_version=model_version, sample_ms=t, reason=reason) for t in times],
        ignore_conflicts=True,
    )
    return FollowUps(recompute={(video.pk, model_version.pk): None})


# What judging reads of a session: who it is (identity_of, contributor_key), whether it is the server.
JUDGED_SESSION_FIELDS = ("user_id", "device_id", "ip_address", "is_server", "state")

AlternativeFeatures = Callable[[int], np.ndarray]
"""sample_ms -> float32[V, D]: the server's features of that frame painted as other browsers paint it."""


def verify_samples(
    video: Video,
    model_version: ModelVersion,
    sample_ms: Iterable[int],
    *,
    rejudge_accepted: bool = False,
    alternatives: AlternativeFeatures | None = None,
) -> tuple[set[ClientSession], FollowUps]:
    """Judge the features of these samples; returns the sessions proven wrong (not yet quarantined).

    With the server's features present, pending client features are judged against them (and
    accepted ones too when ``rejudge_accepted``: right after the server computed the sample).
    Nobody is proven wrong before its features were also compared with the other honest
    paintings of the frame (``alternatives``, CNN work that only Celery workers do: without them
    a mismatch stays pending and the sample goes to the workers). Without the server's features,
    peers must agree; a dispute or a spot check queues the sample for the server.

    The whole call costs a fixed number of queries and one head call, whatever the number of
    samples and sessions.
    """
    times = sorted(set(sample_ms))
    features = list(
        FrameFeature.objects.select_for_update(of=("self",))
        .filter(video=video, model_version=model_version, sample_ms__in=times)
        .exclude(status=Status.REJECTED)
        .exclude(session__state=ClientSession.State.QUARANTINED)
        .select_related("session")
        .only("sample_ms", "vector", "status", "session_id", *(f"session__{name}" for name in JUDGED_SESSION_FIELDS))
        .order_by("sample_ms", "received_at", "pk")
    )
    by_time: dict[int, list[FrameFeature]] = defaultdict(list)
    for feature in features:
        by_time[feature.sample_ms].append(feature)
    vectors = {feature.pk: _dequantised(feature) for feature in features}
    head = batch_head(head_probabilities(model_version), vectors.values())
    records = ContributorRecords(f.session for f in features if not f.session.is_server)
    tolerance = configured_tolerance()
    changes = StatusChanges()
    wrong: set[ClientSession] = set()
    disputed: list[int] = []
    spot_checked: list[int] = []

    identities = {session.pk: identity_of(session, video.owner_id) for session in {f.session for f in features}}

    def submissions(rows: Sequence[FrameFeature]) -> list[Submission]:
        return [Submission(identities[f.session_id], vectors[f.pk]) for f in rows]

    for t, rows in by_time.items():
        server = next((f for f in rows if f.session.is_server), None)
        clients = [f for f in rows if not f.session.is_server]
        if server is not None:
            judged = [f for f in clients if f.status == Status.PENDING or rejudge_accepted]
            sent, truth = submissions(judged), vectors[server.pk]
            outcome = judge_against_server(sent, truth, tolerance, head)
            if outcome.rejected and alternatives is None:
                outcome = SampleOutcome(accepted=outcome.accepted)
                disputed.append(t)
            elif outcome.rejected:
                outcome = judge_against_server(sent, truth, tolerance, head, alternatives(t))
            changes.apply(judged, outcome)
            records.record_valid(f.session for f in judged if str(f.session_id) in outcome.accepted)
            wrong.update(f.session for f in judged if str(f.session_id) in outcome.rejected)
            continue
        outcome = judge_by_peers(submissions(clients), tolerance, head, replicas=settings.HYDRA_TRUST_REPLICAS)
        if outcome.needs_server:
            disputed.append(t)
            continue
        newly = [f for f in clients if f.status == Status.PENDING and str(f.session_id) in outcome.accepted]
        changes.apply(newly, outcome)
        if newly and records.spot_check_due(f.session for f in newly):
            spot_checked.append(t)
    changes.save()
    records.save()
    follow_ups = request_recomputation(video, model_version, disputed, Reason.DISPUTE)
    follow_ups.update(request_recomputation(video, model_version, spot_checked, Reason.SPOT_CHECK))
    return wrong, follow_ups


def _dequantised(feature: FrameFeature) -> np.ndarray:
    return dequantise(np.frombuffer(bytes(feature.vector), dtype=np.uint8))


def batch_head(head: HeadProbabilities, vectors: Iterable[np.ndarray]) -> HeadProbabilities:
    """``head``, run once over every vector a verification will compare, instead of once per pair.

    Agreement asks for the head's probabilities of a few vectors per sample; on a batch that is
    many tiny matrix products, each with numpy's fixed overhead. The returned function answers
    from the batch's probabilities (looked up by the vector's bytes) and runs the head only on
    vectors it has not seen, such as the server's other paintings of a frame.
    """
    known = [np.asarray(vector, dtype=np.float32) for vector in vectors]
    probabilities = {row.tobytes(): p for row, p in zip(known, head(np.stack(known)), strict=True)} if known else {}

    def predict(features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)
        unseen = [i for i, row in enumerate(features) if row.tobytes() not in probabilities]
        if unseen:
            for i, p in zip(unseen, head(features[unseen]), strict=True):
                probabilities[features[i].tobytes()] = p
        return np.stack([probabilities[row.tobytes()] for row in features])

    return predict


class StatusChanges:
    """The statuses a verification decided, written with one UPDATE per status instead of one per row."""

    def __init__(self) -> None:
        self._by_status: dict[str, set[int]] = defaultdict(set)

    def apply(self, features: Sequence[FrameFeature], outcome: SampleOutcome) -> None:
        for feature in features:
            session_id = str(feature.session_id)
            status = (
                Status.ACCEPTED
                if session_id in outcome.accepted
                else Status.REJECTED
                if session_id in outcome.rejected
                else None
            )
            if status is not None and feature.status != status:
                feature.status = status
                self._by_status[status].add(feature.pk)

    def save(self) -> None:
        for status, pks in self._by_status.items():
            FrameFeature.objects.filter(pk__in=pks).update(status=status)
        self._by_status.clear()


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
    caught.update(state=ClientSession.State.QUARANTINED, state_reason=reason)
    SampleAssignment.objects.filter(session__in=caught).delete()
    discarded = FrameFeature.objects.filter(session__in=caught).exclude(status=Status.REJECTED)
    affected: dict[tuple[int, int], set[int]] = defaultdict(set)
    for video_id, model_version_id, t in discarded.values_list("video_id", "model_version_id", "sample_ms"):
        affected[(video_id, model_version_id)].add(t)
    discarded.update(status=Status.REJECTED)
    for (video_id, model_version_id), times in affected.items():
        follow_ups.update(
            _reverify_without_quarantined(
                Video.objects.get(pk=video_id), ModelVersion.objects.get(pk=model_version_id), times
            )
        )
    return follow_ups


def _reverify_without_quarantined(video: Video, model_version: ModelVersion, times: set[int]) -> FollowUps:
    """Accepted features that leaned on a quarantined peer are judged again; what lost its quorum goes to the server."""
    settled = _server_settled(video, model_version)
    peer_judged = times - settled
    FrameFeature.objects.filter(
        video=video, model_version=model_version, sample_ms__in=peer_judged, status=Status.ACCEPTED
    ).update(status=Status.PENDING)
    wrong, follow_ups = verify_samples(video, model_version, peer_judged)
    follow_ups.update(quarantine_sessions(wrong, MISMATCH))
    uncovered = uncovered_sample_times(video, model_version, sorted(peer_judged))
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
        if any(r.reason != Reason.SPOT_CHECK for r in claimed):
            # A spot check that confirms what peers agreed on changes no verdict input beyond the
            # tolerance, so only other recomputations (flags, disputes, gaps) re-run the analysis.
            follow_ups.reanalyse[video.pk] = None
    return missing, follow_ups


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


def coverage_countdown_seconds(video: Video, sample_count: int) -> int:
    """Seconds until the server starts covering a ready video's gaps.

    Full coverage is due ``HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS`` after the video became ready,
    so the server starts early enough to compute every sample itself by then (a fixed slack for
    queueing and loading the model, plus a per-sample estimate). A video no viewer can reach
    (held before publication) is started at once.
    """
    if settings.HYDRA_PUBLICATION_POLICY == "hold" or video.visibility != Video.Visibility.PUBLISHED:
        return 0
    budget = settings.HYDRA_TRUST_COVERAGE_SLACK_SECONDS + sample_count * settings.HYDRA_TRUST_SERVER_SECONDS_PER_SAMPLE
    return max(0, int(settings.HYDRA_TRUST_COVERAGE_DEADLINE_SECONDS - budget))
