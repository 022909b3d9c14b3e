"""Analysis: the active heads turn a video's accepted features into per-sample scores and one verdict each.

Verdicts are computed and stored here; what happens to a flagged one (the server confirms it,
moderation hears of it) is the settlement pass's business (``inference.services.settlement``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

from inference import heads, selectors
from inference.ml.quantise import dequantise
from inference.ml.segments import SegmentPolicy, flagged_segments, top_frames
from inference.models import FrameScore, HeadVersion, ModelVersion, Verdict
from inference.services.registry import DEFAULT_SEGMENT_RULES
from videos.models import Video

logger = logging.getLogger(__name__)

TOP_FRAMES = 8


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
    video: Video,
    model_version: ModelVersion,
    head_versions: list[HeadVersion],
    sample_times: Sequence[int],
) -> list[Verdict]:
    """Run the head versions on the video's accepted features; store per-sample scores and one verdict per head.

    A sample with several agreeing replicas is scored, per head, with the one that pushes that
    head's decision furthest towards flagging (``HeadRunner.score_most_severe``).

    ``sample_times`` is the video's sample grid (``selectors.expected_sample_times``), computed
    once by the caller's pass. Idempotent: the scores of a head version are replaced and its
    verdict updated, so running it again on the same features gives the same rows. Heavy work
    (loading weights, inference) happens before the transaction; the video row is locked
    (NOWAIT) while rows are replaced, so two analyses of one video never interleave: the second
    fails fast and its task retries.
    """
    accepted = selectors.accepted_features(video, model_version, sample_times)
    if not accepted.sample_ms:
        return _withdraw_verdicts(video, head_versions)
    replicas = [dequantise(r) for r in accepted.replicas]
    for head_version in head_versions:
        trained_interval = head_version.config.get("sample_interval_ms", settings.HYDRA_SAMPLE_INTERVAL_MS)
        if trained_interval != settings.HYDRA_SAMPLE_INTERVAL_MS:
            logger.warning(
                "%s was trained on samples every %s ms but the site samples every %s ms; its windows span other times",
                head_version,
                trained_interval,
                settings.HYDRA_SAMPLE_INTERVAL_MS,
            )
    # Each head scores every sample with its most severe accepted replica (the server's own where it computed one):
    # a lie hides nothing unless every agreeing replica lies, and a false flag waits for the server (docs/trust.md).
    results = [(hv, heads.load_runner(hv).score_most_severe(replicas, accepted.positions)) for hv in head_versions]
    with transaction.atomic():
        Video.objects.select_for_update(nowait=True).filter(pk=video.pk).first()
        return [
            _store_head_result(video, model_version, head_version, accepted, result) for head_version, result in results
        ]


def _withdraw_verdicts(video: Video, head_versions: list[HeadVersion]) -> list[Verdict]:
    """No accepted feature is left (a liar's were all rejected): no verdict may stand on the rejected ones.

    The verdicts stay (moderation may link them) but say nothing: coverage 0, not flagged, no
    scores; the coverage deadline or new viewers fill the samples and the next analysis rewrites them.
    """
    with transaction.atomic():
        Video.objects.select_for_update(nowait=True).filter(pk=video.pk).first()
        FrameScore.objects.filter(video=video, head_version__in=head_versions).delete()
        verdicts = list(Verdict.objects.filter(video=video, head_version__in=head_versions))
        for verdict in verdicts:
            verdict.score, verdict.flagged, verdict.coverage = 0.0, False, 0.0
            verdict.segments, verdict.top_frames, verdict.stages = [], [], {}
            verdict.save(
                update_fields=["score", "flagged", "segments", "top_frames", "coverage", "stages", "computed_at"]
            )
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
    stored_segments = [list(segment) for segment in segments]
    verdict, _created = Verdict.objects.update_or_create(
        video=video,
        head_version=head_version,
        defaults={
            "model_version": model_version,
            "score": max(scores),
            "threshold": policy.threshold,
            "flagged": bool(segments),
            "segments": stored_segments,
            "top_frames": top_frames(accepted.sample_ms, scores, TOP_FRAMES),
            "coverage": accepted.coverage,
            # Later stages (a flag's confirmation) add theirs and may withdraw the flag.
            "stages": {"screen": {"flagged": bool(segments), "segments": stored_segments}},
        },
    )
    return verdict


def analysis_due(
    video: Video, model_version: ModelVersion, head_versions: list[HeadVersion], sample_times: Sequence[int]
) -> bool:
    """True when the video's coverage reached a step (HYDRA_ANALYSIS_COVERAGE_STEPS) not yet analysed.

    Two small queries; an analysis has a fixed cost (a few queries, rewriting the video's scores),
    so verdicts follow coverage in steps rather than after every stored batch.
    """
    if not head_versions:
        return False
    coverage = selectors.coverage(video, model_version, sample_times).fraction
    return _reached_step(coverage) > _reached_step(selectors.analysed_coverage(video, head_versions))


def _reached_step(coverage: float) -> int:
    return sum(1 for step in settings.HYDRA_ANALYSIS_COVERAGE_STEPS if coverage >= step - 1e-9)
