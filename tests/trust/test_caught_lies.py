"""Issue 12, attack 1: a liar caught must never leave a verdict behind, in either direction.

A colluding pair of newcomers lies on every sample of a video and a settlement pass analyses
their agreed lies before the spot checks it queued have run (the order a real worker sees).
The spot checks reject every lie and quarantine the pair, leaving no feature of theirs behind;
the verdicts must then be those of the server's own features, at once.
"""

from __future__ import annotations

import numpy as np
import pytest

from inference import selectors
from inference.ml.quantise import dequantise, quantise
from inference.models import ClientSession, FrameFeature, Head, Verdict
from inference.services import analysis, settlement
from inference.services.server_features import compute_server_features
from inference.trust.verification import FollowUps
from moderation.models import Case
from tests.trust.harness import crafted_toward
from tests.trust.test_services import record, session_for, statuses
from videos.models import Video

pytestmark = pytest.mark.django_db(transaction=True)


def positive_scores(head, features: np.ndarray) -> np.ndarray:
    """The nudity head's score (P(porn) + P(hentai)) of features as they travel (uint8)."""
    columns = [head.class_names.index(c) for c in ("porn", "hentai")]
    return head.predict(dequantise(quantise(features)))[:, columns].sum(1)


def attack(video: Video, model_version, lie: np.ndarray, monkeypatch, settings) -> Verdict:
    """Two independent newcomers send ``lie`` for every sample; a pass analyses it before the spot checks run.

    Returns the verdict computed on the lies (what the old code left standing).
    """
    times = selectors.expected_sample_times(video)
    pair = [session_for(video, model_version, n, ip=f"10.7.{i}.1") for i, n in enumerate(("p", "q"))]
    # These synthetic clips score near their thresholds everywhere, where peers' agreement never
    # counts (test_steering): without the margin the lies are accepted first, as far from a threshold.
    settings.HYDRA_TRUST_BORDERLINE_MARGIN = -1.0
    held: list[FollowUps] = []
    queue = settlement.queue_follow_ups
    with monkeypatch.context() as patch:  # a busy worker: the follow-ups wait behind the analysis
        patch.setattr(settlement, "queue_follow_ups", held.append)
        for session in pair:
            record(session, times, lie)
        assert [statuses(s) for s in pair] == [{"accepted"}] * 2, "precondition: peers agreed on the lie"
        settlement.analyse_and_announce(video, model_version)
    on_lies = Verdict.objects.get(video=video, head_version__head__category="nudity")
    assert on_lies.coverage == 1.0
    for follow_ups in held:  # the spot checks (eager here) run now, after the verdict on the lies
        queue(follow_ups)
    for session in pair:
        session.refresh_from_db()
        assert session.state == ClientSession.State.QUARANTINED
        assert statuses(session) == {"rejected"}
    return on_lies


def server_scores(video, model_version, head) -> np.ndarray:
    times = selectors.expected_sample_times(video)
    return positive_scores(head, compute_server_features(video, times, model_version))


def test_colluders_lying_on_every_sample_cannot_hide_a_flagged_video(
    ready_video, model_version, nudity_head, seeded_spot_checks, monkeypatch, settings
):
    settings.HYDRA_PUBLICATION_POLICY = "hold"
    video = ready_video("flagged", pattern="erratic", seed=2)
    truth = compute_server_features(video, selectors.expected_sample_times(video), model_version)
    lie = np.stack([crafted_toward(nudity_head, v, ("neutral",)) for v in truth])
    true_scores, lie_scores = positive_scores(nudity_head, truth), positive_scores(nudity_head, lie)
    assert lie_scores.max() < true_scores.max(), "precondition: the lie scores every frame below the truth's peak"
    Head.objects.filter(category="nudity").update(threshold=float(lie_scores.max() + true_scores.max()) / 2)

    on_lies = attack(video, model_version, lie, monkeypatch, settings)
    assert not on_lies.flagged  # what the lie bought while it stood

    verdict = Verdict.objects.get(video=video, head_version__head__category="nudity")
    assert verdict.flagged and verdict.coverage == 1.0
    used = FrameFeature.objects.filter(video=video, status=FrameFeature.Status.ACCEPTED)
    assert set(used.values_list("session__is_server", flat=True)) == {True}
    assert Case.objects.filter(video=video, source=Case.Source.FLAG).exists()  # confirmed by the server
    video.refresh_from_db()
    assert video.visibility == Video.Visibility.HELD  # the lie never cleared it, even for a moment


def test_false_flags_on_a_clean_video_leave_no_flagged_verdict(
    ready_video, model_version, nudity_head, seeded_spot_checks, monkeypatch, settings
):
    video = ready_video("clean", pattern="calm", seed=9)
    truth = compute_server_features(video, selectors.expected_sample_times(video), model_version)
    lie = np.stack([crafted_toward(nudity_head, v, ("porn",)) for v in truth])
    true_scores, lie_scores = positive_scores(nudity_head, truth), positive_scores(nudity_head, lie)
    assert true_scores.max() < lie_scores.min(), "precondition: the lie scores every frame above the truth"
    Head.objects.filter(category="nudity").update(threshold=float(true_scores.max() + lie_scores.min()) / 2)

    on_lies = attack(video, model_version, lie, monkeypatch, settings)
    assert on_lies.flagged

    verdict = Verdict.objects.get(video=video, head_version__head__category="nudity")
    assert not verdict.flagged and verdict.coverage == 1.0 and verdict.segments == []
    assert not Case.objects.filter(video=video).exists()


def test_a_verdict_with_no_accepted_feature_left_says_nothing(
    ready_video, model_version, nudity_head, seeded_spot_checks
):
    """Rejection leaves nothing accepted (the server has not computed anything yet): the verdict is withdrawn."""
    video = ready_video("bare", pattern="erratic", seed=4)
    times = selectors.expected_sample_times(video)
    truth = compute_server_features(video, times, model_version)
    lie = np.stack([crafted_toward(nudity_head, v, ("porn",)) for v in truth])
    pair = [session_for(video, model_version, n, ip=f"10.8.{i}.1") for i, n in enumerate(("p", "q"))]
    for session in pair:
        FrameFeature.objects.bulk_create(
            FrameFeature(
                video=video,
                model_version=model_version,
                session=session,
                sample_ms=t,
                vector=quantise(lie)[i].tobytes(),
                backend="wasm",
                status=FrameFeature.Status.ACCEPTED,
            )
            for i, t in enumerate(times)
        )
    head_versions = selectors.active_head_versions(model_version)
    Head.objects.filter(category="nudity").update(threshold=0.5)
    head_versions = selectors.active_head_versions(model_version)
    assert any(v.flagged for v in analysis.analyse_video(video, model_version, head_versions, times))
    FrameFeature.objects.filter(video=video).update(status=FrameFeature.Status.REJECTED)

    withdrawn = analysis.analyse_video(video, model_version, head_versions, times)
    assert withdrawn and all(not v.flagged and v.coverage == 0.0 and v.segments == [] for v in withdrawn)
    assert not Verdict.objects.filter(video=video, flagged=True).exists()
