"""Settlement: a worker's pass over a video's newly stored features, read top to bottom in ``settle_video``.

1. verify: the trust layer judges every pending feature (peers' agreement, spot checks, the
   server's features); liars are quarantined (``inference.trust.services``).
2. compute verdicts: when coverage reached a new step, the heads score the accepted features
   (``inference.services.analysis``).
3. confirm with the server: a window head's score near its threshold (unless peers carry every
   sample of the window: the heads scored its most severe replicas), and a flagged verdict, stand
   only on frames the server computed itself; missing ones are queued, and the analysis that
   follows them decides. A head with a confirmer (nudity) then needs that larger network to
   confirm the flagged frames as well (``inference.services.flag_confirmation``); unconfirmed, the
   verdict is stored as not flagged.
4. announce: confirmed flags go to moderation (``signals.verdict_flagged``); a fully covered,
   clean video with no recomputation still open is cleared (``signals.video_cleared``).

Trust returns what it changed (``FollowUps``); this module queues that work with signals that
``inference.scheduling`` turns into Celery tasks. The server's own recomputations and the coverage
deadline (``settle_recomputations``, ``cover_video``) end the same way.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

from django.db import transaction

from inference import selectors, signals
from inference.models import HeadVersion, ModelVersion, Recomputation, Verdict
from inference.services import analysis, flag_confirmation, server_features
from inference.trust import services as trust
from inference.trust.verification import FollowUps
from videos.models import Video

logger = logging.getLogger(__name__)


def settle_video(video: Video, model_version: ModelVersion) -> list[Verdict]:
    """One settlement pass; returns the verdicts of the analysis, if coverage reached a step and one ran."""
    sample_times = selectors.expected_sample_times(video)
    queue_follow_ups(trust.verify_pending(video, model_version))
    head_versions = selectors.active_head_versions(model_version)
    if not analysis.analysis_due(video, model_version, head_versions, sample_times):
        # No new analysis, but a flag whose confirmation has not concluded (its scoring task failed or
        # was lost, or the video's lock was busy) is tried again: it must not wait for a later step.
        flagged = selectors.flagged_verdicts(video, head_versions)
        _confirm_and_announce(flag_confirmation.awaiting_confirmation(flagged), sample_times)
        return []
    return _analyse_confirm_announce(video, model_version, head_versions, sample_times)


def analyse_and_announce(
    video: Video, model_version: ModelVersion | None = None, head_versions: list[HeadVersion] | None = None
) -> list[Verdict]:
    """Steps 2 to 4 without waiting for a coverage step: trust changed the accepted features (or an operator asks)."""
    model_version = model_version or selectors.active_model_version()
    if model_version is None:
        logger.warning("no active model version; video %s not analysed", video.pk)
        return []
    if head_versions is None:
        head_versions = selectors.active_head_versions(model_version)
    return _analyse_confirm_announce(video, model_version, head_versions, selectors.expected_sample_times(video))


def _analyse_confirm_announce(
    video: Video, model_version: ModelVersion, head_versions: list[HeadVersion], sample_times: Sequence[int]
) -> list[Verdict]:
    verdicts = analysis.analyse_video(video, model_version, head_versions, sample_times)
    queue_follow_ups(trust.confirm_borderline_windows(video, model_version, verdicts))
    _confirm_and_announce(verdicts, sample_times)
    if (
        verdicts
        and not any(v.flagged for v in verdicts)
        and all(v.coverage >= 1.0 for v in verdicts)
        and not trust.verification_outstanding(video)
    ):
        # Open spot checks may still reject the features this verdict used: the analysis that
        # follows them clears the video.
        signals.video_cleared.send(sender=Video, video=video, verdicts=verdicts)
    return verdicts


def _confirm_and_announce(verdicts: Sequence[Verdict], sample_times: Sequence[int]) -> None:
    """Step 3 and the flagged half of step 4: a flag goes to moderation once the server and any confirmer back it."""
    for verdict in verdicts:
        if verdict.flagged and _confirmed_by_server(verdict, sample_times) and flag_confirmation.confirm_flag(verdict):
            signals.verdict_flagged.send(sender=Verdict, verdict=verdict)


def _confirmed_by_server(verdict: Verdict, sample_times: Sequence[int]) -> bool:
    confirmed, follow_ups = trust.confirm_flag_with_server(verdict, sample_times)
    queue_follow_ups(follow_ups)
    return confirmed


def settle_recomputations(video: Video, model_version: ModelVersion) -> list[int]:
    """The server computes every sample queued for this video and judges those samples; returns the times computed."""
    computed, follow_ups = trust.run_recomputations(
        video,
        model_version,
        server_features.compute_server_features,
        functools.partial(server_features.alternative_features, video, model_version),
    )
    queue_follow_ups(follow_ups)
    return computed


def cover_video(video: Video, model_version: ModelVersion) -> list[int]:
    """The coverage deadline: queue for the server every sample no session got accepted; returns them."""
    missing, follow_ups = trust.cover_video(video, model_version, selectors.expected_sample_times(video))
    queue_follow_ups(follow_ups)
    return missing


def queue_follow_ups(follow_ups: FollowUps) -> None:
    """Once committed: the server recomputes what trust queued, then verdicts follow the changed features."""
    for video_id, model_version_id in follow_ups.recompute:
        transaction.on_commit(
            functools.partial(
                signals.recomputation_requested.send,
                sender=Recomputation,
                video_id=video_id,
                model_version_id=model_version_id,
            )
        )
    for video_id in follow_ups.reanalyse:
        transaction.on_commit(
            functools.partial(signals.accepted_features_changed.send, sender=Video, video_id=video_id)
        )
