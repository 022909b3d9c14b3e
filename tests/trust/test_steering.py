"""Issue 12, attack 3: lies inside the agreement tolerance must not move a head's decision.

A colluding pair with long clean records (spot checks practically never drawn) agrees on the
strongest lie the tolerance lets through, on every sample, to pull a borderline frame under the
nudity threshold (hiding it: a false flag would still need the server's confirmation). Peer
agreement near a threshold does not count: the server computes the sample, and the verdict is
the truth's.
"""

from __future__ import annotations

import numpy as np
import pytest

from inference import selectors
from inference.models import FrameFeature, Head, Recomputation, Verdict
from inference.services import settlement
from inference.services.server_features import compute_server_features
from inference.trust import verification
from tests.trust.harness import crafted_toward, strongest_in_tolerance
from tests.trust.test_caught_lies import positive_scores
from tests.trust.test_services import establish, record, session_for, statuses

pytestmark = pytest.mark.django_db(transaction=True)


def steer(video, model_version, nudity_head, settings) -> tuple[float, Verdict]:
    settings.HYDRA_TRUST_SPOT_CHECK_FLOOR = 0.0
    settings.HYDRA_TRUST_MIN_AUDIENCE = 0  # the margin alone stands in the way (test_small_audience)
    times = selectors.expected_sample_times(video)
    truth = compute_server_features(video, times, model_version)
    tolerance = verification.configured_tolerance()
    lie = np.stack(
        [strongest_in_tolerance(nudity_head, v, crafted_toward(nudity_head, v, ("neutral",)), tolerance) for v in truth]
    )
    true_scores, lie_scores = positive_scores(nudity_head, truth), positive_scores(nudity_head, lie)
    peak = int(np.argmax(true_scores))
    shift = float(true_scores[peak] - lie_scores[peak])
    assert shift > 0.02, "precondition: the tolerance lets a lie move the score"
    # The threshold sits between the lie and the truth on the video's peak frame: the lie alone decides it.
    threshold = float(true_scores[peak] + lie_scores[peak]) / 2
    assert np.all(lie_scores < threshold)
    Head.objects.filter(category="nudity").update(threshold=threshold)
    pair = [session_for(video, model_version, n, ip=f"10.6.{i}.1") for i, n in enumerate(("p", "q"))]
    establish(*pair)  # farmed records: no spot check stands in the way
    for session in pair:
        record(session, times, lie)
    settlement.analyse_and_announce(video, model_version)
    return shift, Verdict.objects.get(video=video, head_version__head__category="nudity")


def test_a_farmed_pair_cannot_steer_a_borderline_frame_with_in_tolerance_lies(
    ready_video, model_version, nudity_head, seeded_spot_checks, settings
):
    video = ready_video("borderline", pattern="erratic", seed=2)
    shift, verdict = steer(video, model_version, nudity_head, settings)

    assert verdict.flagged  # the server computed the borderline frame; its score decides
    assert Recomputation.objects.filter(video=video, reason="dispute").exists()
    borderline = FrameFeature.objects.filter(video=video, session__is_server=True)
    assert borderline.exists() and set(borderline.values_list("status", flat=True)) == {"accepted"}
    # Nobody is quarantined for a lie the tolerance cannot tell from an honest browser.
    assert all(statuses(s) <= {"accepted"} for s in {f.session for f in FrameFeature.objects.filter(video=video)})
    print(f"\nTRUST-FIGURES steering in-tolerance shift={shift:.3f} flagged={verdict.flagged}")


def test_without_the_margin_the_same_lie_flips_the_decision(
    ready_video, model_version, nudity_head, seeded_spot_checks, settings
):
    """The control: the attack above is real, only the margin stops it."""
    settings.HYDRA_TRUST_BORDERLINE_MARGIN = -1.0
    video = ready_video("borderline", pattern="erratic", seed=2)
    _, verdict = steer(video, model_version, nudity_head, settings)
    assert not verdict.flagged  # hidden, and nothing asked the server
    assert not Recomputation.objects.exists()
