"""Judging features: the tolerance, the nudity head's decisions, and one verification of a set of samples.

``verify_samples`` compares every session's features of a sample with its peers' (or with the
server's own, and the server's other honest paintings of the frame) and says who was right and
who was proven wrong; what needs the server goes back as ``FollowUps``. Quarantining the wrong
ones is the caller's business (``inference.trust.services``).
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
from django.utils import timezone

from inference import heads, selectors
from inference.ml.nsfw_head import WEIGHTS_FILE, NsfwHead
from inference.ml.quantise import dequantise
from inference.ml.violence import STATISTICS, PooledHead
from inference.models import ClientSession, FrameFeature, ModelVersion, Recomputation
from inference.trust.agreement import (
    HeadProbabilities,
    NearThreshold,
    SampleOutcome,
    Submission,
    Tolerance,
    judge_against_server,
    judge_by_peers,
)
from inference.trust.assignment import spread_audience
from inference.trust.contributors import ContributorRecords, identity_of, record_key
from inference.trust.spot_checks import SpotCheckPolicy
from videos.models import Video

logger = logging.getLogger(__name__)

# Spot checks must be unpredictable to clients; tests replace this with a seeded random.Random.
spot_check_rng: random.Random = random.SystemRandom()

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


def configured_tolerance(model_version: ModelVersion | None = None) -> Tolerance:
    """The settings' tolerance; with ``model_version``, bounded for its active window heads too."""
    return Tolerance(
        min_cosine=settings.HYDRA_TRUST_MIN_COSINE,
        max_norm_ratio=settings.HYDRA_TRUST_MAX_NORM_RATIO,
        max_head_difference=settings.HYDRA_TRUST_MAX_HEAD_DIFFERENCE,
        max_window_difference=settings.HYDRA_TRUST_MAX_WINDOW_DIFFERENCE,
        window_weights=window_weights(model_version) if model_version is not None else (),
    )


def window_weights(model_version: ModelVersion) -> tuple[np.ndarray, ...]:
    """Per active pooled head, float[feature_size]: how far a unit change of one sample's feature moves a window logit.

    The pooled head's logit is linear in the window's standardised statistics; changing one of
    its W samples by ``d`` moves the mean by ``|d| / W``, the standard deviation by at most
    ``|d| / sqrt(W)`` and the mean absolute step by at most ``2 |d| / (W - 1)``, so
    ``|d| @ weights`` bounds the move of every window logit that holds the sample.
    """
    weights = []
    for head_version in selectors.active_head_versions(model_version):
        try:
            runner = heads.load_runner(head_version)
        except FileNotFoundError:
            continue
        if isinstance(runner, heads.PooledRunner):
            weights.append(pooled_sensitivity(runner.head))
    return tuple(weights)


def pooled_sensitivity(head: PooledHead) -> np.ndarray:
    """``window_weights`` of one pooled head."""
    window = head.config.window
    steepness = np.abs(head.coef / head.scale).astype(np.float64)
    factors = {"mean": 1 / window, "std": 1 / np.sqrt(window), "absdiff": 2 / (window - 1)}
    parts = [factors[name] for name in STATISTICS if name in head.config.statistics]
    size = len(steepness) // len(parts)
    return sum(f * steepness[i * size : (i + 1) * size] for i, f in enumerate(parts)).astype(np.float32)


def configured_spot_checks() -> SpotCheckPolicy:
    return SpotCheckPolicy(
        probation=settings.HYDRA_TRUST_PROBATION_RESULTS,
        floor=settings.HYDRA_TRUST_SPOT_CHECK_FLOOR,
        probation_checks=settings.HYDRA_TRUST_PROBATION_CHECKS,
        probation_rate=settings.HYDRA_TRUST_PROBATION_CHECK_RATE,
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


def window_of(runner: heads.HeadRunner) -> int:
    """How many consecutive samples one score of this head pools: 1 for per-frame heads."""
    if isinstance(runner, heads.PooledRunner):
        return runner.head.config.window
    if isinstance(runner, heads.TemporalRunner):
        return runner.config.window
    return 1


def window_near_threshold(runner: heads.HeadRunner, score: float, threshold: float) -> bool:
    """Whether a lie within the tolerance on every sample of a window could carry ``score`` across ``threshold``.

    For a pooled head the tolerance bounds each sample's move of a window logit by
    ``HYDRA_TRUST_MAX_WINDOW_DIFFERENCE`` (``window_weights``), so a window of W samples moves by
    at most W times that, compared in logits (scores saturate). A temporal head (LSTM) has no such
    bound: every window is near.
    """
    if not isinstance(runner, heads.PooledRunner):
        return True
    reach = runner.head.config.window * settings.HYDRA_TRUST_MAX_WINDOW_DIFFERENCE
    return abs(_logit(score) - _logit(threshold)) <= reach


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)  # float32 scores saturate near 17 logits
    return float(np.log(p / (1 - p)))


def near_thresholds(model_version: ModelVersion, vectors: Iterable[np.ndarray]) -> NearThreshold:
    """Whether features score within ``HYDRA_TRUST_BORDERLINE_MARGIN`` of any active per-frame head's threshold.

    Per-frame heads (a softmax's class sum: nudity) are checked on the sample alone; ``vectors``
    are those the verification compares, run through each head once. Heads that score windows of
    samples (pooled, temporal) are not checked here, since a sample alone has no score of theirs:
    ``services.confirm_borderline_windows`` guards them after each analysis.
    """
    margin = settings.HYDRA_TRUST_BORDERLINE_MARGIN
    vectors = list(vectors)
    checks: list[tuple[HeadProbabilities, list[int], float]] = []
    for head_version in selectors.active_head_versions(model_version):
        try:
            runner = heads.load_runner(head_version)
        except FileNotFoundError:
            logger.warning("%s has no weights: its threshold is not guarded", head_version)
            continue
        if isinstance(runner, heads.ClassSumRunner):
            columns = [runner.class_names.index(name) for name in runner.positive_classes]
            checks.append((batch_head(runner.predict, vectors), columns, head_version.head.threshold))

    def near(features: np.ndarray) -> bool:
        return any(
            bool(np.any(np.abs(predict(features)[:, columns].sum(axis=1) - threshold) <= margin))
            for predict, columns, threshold in checks
        )

    return near


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
        .only(
            "sample_ms",
            "vector",
            "status",
            "received_at",
            "session_id",
            *(f"session__{name}" for name in JUDGED_SESSION_FIELDS),
        )
        .order_by("sample_ms", "received_at", "pk")
    )
    by_time: dict[int, list[FrameFeature]] = defaultdict(list)
    for feature in features:
        by_time[feature.sample_ms].append(feature)
    vectors = {feature.pk: _dequantised(feature) for feature in features}
    head = batch_head(head_probabilities(model_version), vectors.values())
    near_threshold = near_thresholds(model_version, vectors.values())
    viewers = list(
        ClientSession.objects.filter(video=video, model_version=model_version, is_server=False)
        .exclude(state=ClientSession.State.QUARANTINED)
        .only("pk", "created_at", *JUDGED_SESSION_FIELDS)
    )
    records = ContributorRecords(
        viewers,
        video.pk,
        per_day=settings.HYDRA_TRUST_RECORD_PER_DAY,
        now=timezone.now(),
        uploader_id=video.owner_id,
    )
    small_audience = audience_is_small(video, viewers, records)
    tolerance = configured_tolerance(model_version)
    policy = configured_spot_checks()
    changes = StatusChanges()
    wrong: set[ClientSession] = set()
    disputed: list[int] = []
    spot_checked: list[int] = []
    joined = False

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
            # Only a blind result builds a record: one sent before the server knew the answer. A
            # cross-check on a sample the server had already computed may catch a liar but earns
            # nothing, and a record advances at most once per video (ContributorRecords).
            records.record_valid(
                f.session
                for f in judged
                if str(f.session_id) in outcome.accepted and f.received_at < server.received_at
            )
            wrong.update(f.session for f in judged if str(f.session_id) in outcome.rejected)
            continue
        outcome = judge_by_peers(
            submissions(clients),
            tolerance,
            head,
            replicas=settings.HYDRA_TRUST_REPLICAS,
            near_threshold=near_threshold,
        )
        if outcome.needs_server:
            disputed.append(t)
            continue
        newly = [f for f in clients if f.status == Status.PENDING and str(f.session_id) in outcome.accepted]
        agreeing = [f.session for f in clients if str(f.session_id) in outcome.accepted]
        if not small_audience and not records.vouched([f.session for f in newly], agreeing, policy):
            continue  # agreed only among newcomers: pending until an established replica or the server
        # A replica that joins already accepted ones can be the more severe one the heads score (analysis), as
        # long as it is a new record among fewer than the heads score (``selectors.accepted_features``): the
        # re-analyses a watched video costs are bounded by its samples, not by its audience.
        scored = {record_key(f.session) for f in clients if f.status == Status.ACCEPTED}
        joined |= (
            bool(scored)
            and len(scored) < settings.HYDRA_TRUST_SCORED_REPLICAS
            and any(record_key(f.session) not in scored for f in newly)
        )
        changes.apply(newly, outcome)
        checked = small_audience or records.spot_check_due((f.session for f in newly), policy, spot_check_rng)
        if newly and checked:
            spot_checked.append(t)
    withdrawn = changes.save()
    records.save()
    follow_ups = request_recomputation(video, model_version, disputed, Reason.DISPUTE)
    follow_ups.update(request_recomputation(video, model_version, spot_checked, Reason.SPOT_CHECK))
    if withdrawn or joined:
        follow_ups.reanalyse[video.pk] = None  # a verdict may rest on what was just rejected, or miss a new replica
    return wrong, follow_ups


def audience_is_small(video: Video, viewers: Sequence[ClientSession], records: ContributorRecords) -> bool:
    """Fewer than ``HYDRA_TRUST_MIN_AUDIENCE`` independent, established viewers who arrived apart.

    Established: past probation (records grow no faster than their age and once per video, so a
    burst of new accounts is not established). Independent: no shared account, device or
    network, and never the uploader. Apart: viewers arriving within
    ``HYDRA_TRUST_ARRIVAL_WINDOW_SECONDS`` of the last counted one count once
    (``spread_audience``), so a group of established identities told to watch together is a
    concentrated audience. On such a video the replicas could all be the uploader's friends, so
    the server computes every sample peers agree on (the strongest audit replica); evasion
    there needs the server to be wrong.
    """
    probation = settings.HYDRA_TRUST_PROBATION_RESULTS
    established = [
        (s.created_at.timestamp(), identity_of(s, video.owner_id))
        for s in viewers
        if records.consecutive_valid(s) >= probation
    ]
    window = settings.HYDRA_TRUST_ARRIVAL_WINDOW_SECONDS
    return spread_audience(established, window) < settings.HYDRA_TRUST_MIN_AUDIENCE


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
        self._withdrawn = False

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
                self._withdrawn |= feature.status == Status.ACCEPTED
                feature.status = status
                self._by_status[status].add(feature.pk)

    def save(self) -> bool:
        """Write the changes; True when an accepted feature lost that status (verdicts may have used it)."""
        for status, pks in self._by_status.items():
            FrameFeature.objects.filter(pk__in=pks).update(status=status)
        self._by_status.clear()
        withdrawn, self._withdrawn = self._withdrawn, False
        return withdrawn
