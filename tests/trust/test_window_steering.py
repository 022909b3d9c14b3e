"""Issue 12, attack 3 on the violence head: in-tolerance lies spread over a window must not move its decision.

The shipped violence head (``pooled_linear``) scores windows of samples, so no sample alone has a
score and the per-frame borderline rule cannot guard it. Its weights are steep: a lie that passes
the cosine, norm and nudity-head measures moved its window logits by hundreds, so agreement also
bounds how far a sample can move a window logit (``HYDRA_TRUST_MAX_WINDOW_DIFFERENCE``), and after
each analysis every window whose score a lie within that bound could carry across the threshold
is computed by the server (``confirm_borderline_windows``) unless peers carry it: every sample of
the window holds an agreeing independent quorum, and each window is scored with its samples' most
severe replicas, so one honest replica per sample keeps the decision (docs/trust.md, defence 10).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from inference import heads, selectors
from inference.ml.quantise import dequantise, quantise
from inference.ml.violence import window_descriptors
from inference.models import ClientSession, FrameFeature, Head, HeadVersion, Recomputation, Verdict
from inference.services import pooled_heads, settlement
from inference.services.server_features import compute_server_features
from inference.trust import verification
from moderation.models import Case
from tests.trust.harness import strongest_in_tolerance
from tests.trust.test_services import establish, record, session_for, statuses

pytestmark = pytest.mark.django_db(transaction=True)

CLIPS = (("erratic", "erratic", 2), ("calm", "calm", 9), ("bars", "bars", 0), ("noise", "noise", 1))
CLOSE_PAINTINGS = ("float-matrix", "swscale")  # the GPU painting is recognised by the server's paintings


@pytest.fixture
def violence_head(model_version, nudity_head):
    """The shipped violence head, registered and active for the test CNN (``build_models`` does the same)."""
    pooled_heads.ensure_shipped_heads(model_version)
    version = HeadVersion.objects.filter(head__category="violence", model_version=model_version, is_active=True).first()
    assert version is not None, "the shipped violence weights match the test CNN"
    return heads.load_runner(version).head


def travelled(features: np.ndarray) -> np.ndarray:
    return dequantise(quantise(features))


def window_logits(head, features: np.ndarray) -> np.ndarray:
    descriptors, _ = window_descriptors(travelled(features), head.config)
    return ((descriptors - head.mean) / head.scale) @ head.coef + head.intercept


def strongest_lie(model_version, nudity_head, truth: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Each sample moved along ``direction`` as far as the full tolerance (window bound included) allows."""
    tolerance = verification.configured_tolerance(model_version)
    targets = np.clip(truth + 20.0 * direction, 0.0, None)
    return np.stack([strongest_in_tolerance(nudity_head, v, t, tolerance) for v, t in zip(truth, targets, strict=True)])


def lowering(head, size: int) -> np.ndarray:
    """The direction that lowers every window logit fastest through the window's mean."""
    weights = head.coef[:size] / head.scale[:size]
    return (-weights / np.linalg.norm(weights)).astype(np.float32)


def test_the_window_bound_separates_honest_paintings_from_steering_lies(
    ready_video, model_version, nudity_head, violence_head, truth_of, settings
):
    """The figures docs/trust.md gives, and the bound's soundness on real clips."""
    weights = verification.pooled_sensitivity(violence_head)
    bound = violence_head.config.window * settings.HYDRA_TRUST_MAX_WINDOW_DIFFERENCE
    figures = {}
    for title, pattern, seed in CLIPS:
        truth = truth_of(ready_video(title, pattern=pattern, seed=seed, seconds=8))
        base = window_logits(violence_head, truth.server)
        honest = {
            name: float((np.abs(travelled(truth.by_profile[name]) - travelled(truth.server)) @ weights).max())
            for name in (*CLOSE_PAINTINGS, "gpu-bilinear-chroma")
        }
        honest_moves = max(
            float(np.abs(window_logits(violence_head, f) - base).max()) for f in truth.by_profile.values()
        )
        lie = strongest_lie(model_version, nudity_head, truth.server, lowering(violence_head, truth.server.shape[1]))
        moved = float(np.abs(window_logits(violence_head, lie) - base).max())
        figures[title] = {"honest_bound": honest, "honest_logit_move": honest_moves, "lie_logit_move": moved}
        assert all(honest[name] <= settings.HYDRA_TRUST_MAX_WINDOW_DIFFERENCE for name in CLOSE_PAINTINGS)
        assert 0 < moved <= bound  # the bound holds, and a lie inside it still moves the logit
    print("\nTRUST-FIGURES window bound", json.dumps(figures, default=lambda x: round(x, 2)))


def steer(video, model_version, nudity_head, head, settings, *, honest: bool) -> tuple[float, Verdict]:
    """A farmed pair lies on every sample (and, with ``honest``, an honest viewer sends the truth after them); the
    threshold sits between the lie's peak and the truth's, so the lie alone would decide the video."""
    settings.HYDRA_TRUST_SPOT_CHECK_FLOOR = 0.0
    settings.HYDRA_TRUST_MIN_AUDIENCE = 0  # test_small_audience covers the audience rule
    HeadVersion.objects.filter(head__category="nudity").update(is_active=False)  # violence alone decides
    times = selectors.expected_sample_times(video)
    truth = compute_server_features(video, times, model_version)
    lie = strongest_lie(model_version, nudity_head, truth, lowering(head, truth.shape[1]))
    true_peak, lie_peak = float(head.score(travelled(truth)).max()), float(head.score(travelled(lie)).max())
    assert lie_peak < true_peak, "precondition: the lie lowers the video's peak window"
    Head.objects.filter(category="violence").update(threshold=(true_peak + lie_peak) / 2)
    names = ("p", "q", "honest") if honest else ("p", "q")
    sessions = [session_for(video, model_version, n, ip=f"10.16.{i}.1") for i, n in enumerate(names)]
    establish(*sessions)
    for session in sessions:
        record(session, times, truth if session.device_id == "device-honest" else lie)
    settlement.analyse_and_announce(video, model_version)
    return true_peak - lie_peak, Verdict.objects.get(video=video, head_version__head__category="violence")


def test_a_farmed_pair_cannot_steer_a_borderline_window_beside_an_honest_viewer(
    ready_video, model_version, nudity_head, violence_head, seeded_spot_checks, settings
):
    """Every window is scored with its samples' most severe replicas: the honest one keeps the peak window over
    the threshold, the server confirms the flag on its own frames and the case opens. The peers carry the
    borderline windows (no ``borderline`` recomputation), and nobody is quarantined for a lie the tolerance cannot
    tell from an honest browser."""
    video = ready_video("borderline-window", pattern="erratic", seed=2)
    shift, verdict = steer(video, model_version, nudity_head, violence_head, settings, honest=True)

    assert verdict.flagged
    assert Case.objects.filter(video=video, source=Case.Source.FLAG).exists()
    assert set(Recomputation.objects.filter(video=video).values_list("reason", flat=True)) == {"flag"}
    sessions = ClientSession.objects.filter(video=video, is_server=False)
    assert all(s.state != ClientSession.State.QUARANTINED and statuses(s) == {"accepted"} for s in sessions)
    print(f"\nTRUST-FIGURES window steering score shift={shift:.3f} flagged={verdict.flagged}")


def test_scoring_the_first_replica_instead_lets_the_same_lie_hide_the_video(
    ready_video, model_version, nudity_head, violence_head, seeded_spot_checks, settings, monkeypatch
):
    """The control: the attack above is real, only the most severe replica stops it once peers carry windows."""
    monkeypatch.setattr(
        heads.PooledRunner,
        "score_most_severe",
        lambda runner, replicas, positions: runner.score(np.stack([r[0] for r in replicas]), positions),
    )
    video = ready_video("borderline-window", pattern="erratic", seed=2)
    _, verdict = steer(video, model_version, nudity_head, violence_head, settings, honest=True)
    assert not verdict.flagged
    assert not Recomputation.objects.exists()


def test_every_replica_lying_hides_the_video_when_nothing_else_stands_in_the_way(
    ready_video, model_version, nudity_head, violence_head, seeded_spot_checks, settings
):
    """The residual the evasion harness prices: the farmed pair alone, with the audience rule and spot checks
    switched off, holds every replica of every window."""
    video = ready_video("borderline-window", pattern="erratic", seed=2)
    _, verdict = steer(video, model_version, nudity_head, violence_head, settings, honest=False)
    assert not verdict.flagged
    assert not Recomputation.objects.exists()


def test_below_a_quorum_the_window_guard_still_sends_borderline_windows_to_the_server(
    ready_video, model_version, nudity_head, violence_head, seeded_spot_checks, settings
):
    """``HYDRA_TRUST_REPLICAS=1``: a pair on one network is not two independent replicas, so its windows are not
    peer-carried; the server computes the borderline windows and its features decide."""
    settings.HYDRA_TRUST_REPLICAS = 1
    settings.HYDRA_TRUST_SPOT_CHECK_FLOOR = 0.0
    settings.HYDRA_TRUST_MIN_AUDIENCE = 0
    HeadVersion.objects.filter(head__category="nudity").update(is_active=False)
    video = ready_video("borderline-window", pattern="erratic", seed=2)
    times = selectors.expected_sample_times(video)
    truth = compute_server_features(video, times, model_version)
    lie = strongest_lie(model_version, nudity_head, truth, lowering(violence_head, truth.shape[1]))
    true_peak, lie_peak = (float(violence_head.score(travelled(f)).max()) for f in (truth, lie))
    Head.objects.filter(category="violence").update(threshold=(true_peak + lie_peak) / 2)
    pair = [session_for(video, model_version, n, ip=f"10.18.0.{i + 1}") for i, n in enumerate(("p", "q"))]
    establish(*pair)
    for session in pair:
        record(session, times, lie)
    settlement.analyse_and_announce(video, model_version)

    assert Verdict.objects.get(video=video, head_version__head__category="violence").flagged
    assert Recomputation.objects.filter(video=video, reason="borderline").exists()
    assert Case.objects.filter(video=video, source=Case.Source.FLAG).exists()


def test_an_over_severe_window_replica_raises_no_false_flag_and_its_liar_is_quarantined(
    ready_video, model_version, nudity_head, violence_head, seeded_spot_checks, settings
):
    """A colluder agrees with an honest viewer (whose browser paints half the tolerance away from the server) but
    pushes its replica a whole tolerance further along the head's weights: the severe windows cross the threshold,
    the server computes the flagged frames before any case, its features decide, and the liar, now out of the
    server's tolerance, is quarantined. No verdict stays flagged and no case opens."""
    settings.HYDRA_TRUST_SPOT_CHECK_FLOOR = 0.0
    settings.HYDRA_TRUST_MIN_AUDIENCE = 0
    HeadVersion.objects.filter(head__category="nudity").update(is_active=False)
    video = ready_video("false-window", pattern="calm", seed=9)
    times = selectors.expected_sample_times(video)
    truth = compute_server_features(video, times, model_version)
    up = -lowering(violence_head, truth.shape[1])
    strongest = strongest_lie(model_version, nudity_head, truth, up)
    honest_features = (truth + 0.5 * (strongest - truth)).astype(np.float32)
    lie = strongest_lie(model_version, nudity_head, honest_features, up)
    true_peak, honest_peak, lie_peak = (
        float(violence_head.score(travelled(f)).max()) for f in (truth, honest_features, lie)
    )
    assert lie_peak > max(true_peak, honest_peak), "precondition: the lie raises the video's peak window"
    Head.objects.filter(category="violence").update(threshold=(max(true_peak, honest_peak) + lie_peak) / 2)
    honest, liar = (session_for(video, model_version, n, ip=f"10.19.{i}.1") for i, n in enumerate(("h", "l")))
    establish(honest, liar)
    record(honest, times, honest_features)
    record(liar, times, lie)
    assert statuses(liar) == {"accepted"}  # within the tolerance of the honest replica
    settlement.analyse_and_announce(video, model_version)

    verdict = Verdict.objects.get(video=video, head_version__head__category="violence")
    assert not verdict.flagged
    assert not Case.objects.filter(video=video).exists()
    assert Recomputation.objects.filter(video=video, reason="flag").exists()
    liar.refresh_from_db()
    honest.refresh_from_db()
    assert liar.state == ClientSession.State.QUARANTINED and statuses(liar) == {"rejected"}
    assert honest.state != ClientSession.State.QUARANTINED


def test_a_steep_lie_beside_an_honest_viewer_is_a_dispute_and_quarantined(
    ready_video, model_version, nudity_head, violence_head, seeded_spot_checks, settings
):
    """Inside the cosine, norm and nudity measures but far along the violence weights: the window bound catches it."""
    settings.HYDRA_TRUST_MIN_AUDIENCE = 0
    video = ready_video("steep", pattern="calm", seed=9)
    times = selectors.expected_sample_times(video)
    truth = compute_server_features(video, times, model_version)
    settings.HYDRA_TRUST_MAX_WINDOW_DIFFERENCE = float("inf")
    steep = strongest_lie(model_version, nudity_head, truth, lowering(violence_head, truth.shape[1]))
    settings.HYDRA_TRUST_MAX_WINDOW_DIFFERENCE = 12.0
    assert float(np.abs(window_logits(violence_head, steep) - window_logits(violence_head, truth)).max()) > 100
    honest, liar = (session_for(video, model_version, n, ip=f"10.17.{i}.1") for i, n in enumerate(("h", "l")))
    establish(honest, liar)
    record(honest, times, truth)
    record(liar, times, steep)
    liar.refresh_from_db()
    assert liar.state == ClientSession.State.QUARANTINED and statuses(liar) == {"rejected"}
    assert statuses(honest) == {"accepted"}
    assert FrameFeature.objects.filter(video=video, session__is_server=True).exists()


def test_a_crowd_cannot_push_the_honest_replica_out_of_an_exactly_scored_window(ready_video, model_version, settings):
    """Review attack: past ``SEVERE_COMBINATIONS`` the most severe score dropped replicas, and a crowd ranked above
    the honest one could push it out. The heads now score one replica per contributor record, the first
    ``HYDRA_TRUST_SCORED_REPLICAS`` (6) records that hold the sample: exact for the shipped window of 3 (6^3 = 216).
    One account's seven sessions count once; of eight independent viewers, the first five join it."""
    from django.contrib.auth.models import User

    video = ready_video("crowded-window", pattern="erratic", seed=2)
    times = selectors.expected_sample_times(video)
    codes = quantise(compute_server_features(video, times, model_version))
    crowd_owner = User.objects.create_user("crowd")
    crowd = [session_for(video, model_version, f"crowd{i}", ip=f"10.18.{i}.1", user=crowd_owner) for i in range(7)]
    viewers = [session_for(video, model_version, f"v{i}", ip=f"10.19.{i}.1") for i in range(8)]
    for order, session in enumerate([crowd[0], *viewers[:2], *crowd[1:], *viewers[2:]]):
        # Each session's own vector: the truth's codes shifted by its order (kept below the uint8 ceiling).
        vectors = np.minimum(codes.astype(np.int16), 200) + order
        FrameFeature.objects.bulk_create(
            FrameFeature(
                video=video,
                model_version=model_version,
                session=session,
                sample_ms=t,
                vector=vectors[i].astype(np.uint8).tobytes(),
                backend="wasm",
                status=FrameFeature.Status.ACCEPTED,
            )
            for i, t in enumerate(times)
        )
    accepted = selectors.accepted_features(video, model_version, times)
    assert settings.HYDRA_TRUST_SCORED_REPLICAS == 6
    base = np.minimum(codes.astype(np.int16), 200)
    for i, replicas in enumerate(accepted.replicas):
        # crowd[0], viewers 0-1, then (the crowd's six other sessions skipped) viewers 2-4.
        assert sorted(int(r[0]) - int(base[i][0]) for r in replicas) == [0, 1, 2, 9, 10, 11]
