"""Issue 12, attacks 2 and 4: farmed records, and a video only the attacker's identities watch.

Records: only blind results count (the server computed the sample after the contributor sent
it), and a record grows no faster than its age allows. Audience: on a video with fewer than
``HYDRA_TRUST_MIN_AUDIENCE`` independent established viewers every agreed sample is checked.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from inference import selectors
from inference.models import ClientSession, Contributor, Head, Recomputation, Verdict
from inference.services import settlement
from inference.services.server_features import compute_server_features
from inference.trust import contributors
from inference.trust.tasks import cover_video
from moderation.models import Case
from tests.trust.harness import crafted_toward
from tests.trust.test_caught_lies import positive_scores
from tests.trust.test_services import establish, record, session_for, statuses

pytestmark = pytest.mark.django_db(transaction=True)


def hide(video, model_version, nudity_head, settings, *, colluders: int = 2, apart_s: float = 0) -> list[ClientSession]:
    """Colluders with long, aged records (floor 0: no random spot check) lie the video clean on every sample.

    They arrive ``apart_s`` seconds after one another (0: together), each on its own network.
    """
    settings.HYDRA_TRUST_SPOT_CHECK_FLOOR = 0.0
    settings.HYDRA_TRUST_BORDERLINE_MARGIN = -1.0  # the audience rule alone stands in the way (test_steering)
    times = selectors.expected_sample_times(video)
    truth = compute_server_features(video, times, model_version)
    lie = np.stack([crafted_toward(nudity_head, v, ("neutral",)) for v in truth])
    true_scores, lie_scores = positive_scores(nudity_head, truth), positive_scores(nudity_head, lie)
    assert lie_scores.max() < true_scores.max(), "precondition: the lie scores every frame below the truth's peak"
    Head.objects.filter(category="nudity").update(threshold=float(lie_scores.max() + true_scores.max()) / 2)
    pair = [session_for(video, model_version, f"c{i}", ip=f"10.5.{i}.1") for i in range(colluders)]
    for i, session in enumerate(pair):
        ClientSession.objects.filter(pk=session.pk).update(created_at=timezone.now() - timedelta(seconds=apart_s * i))
    establish(*pair)
    for session in pair:
        record(session, times, lie)
    settlement.analyse_and_announce(video, model_version)
    for session in pair:
        session.refresh_from_db()
    return pair


def test_established_colluders_alone_on_a_video_are_checked_on_every_sample(
    ready_video, model_version, nudity_head, seeded_spot_checks, settings
):
    video = ready_video("friends-only", pattern="erratic", seed=2)
    pair = hide(video, model_version, nudity_head, settings)
    assert all(s.state == ClientSession.State.QUARANTINED and statuses(s) == {"rejected"} for s in pair)
    assert Verdict.objects.get(video=video, head_version__head__category="nudity").flagged
    assert Case.objects.filter(video=video, source=Case.Source.FLAG).exists()


def test_without_the_audience_rule_the_same_pair_hides_the_video(
    ready_video, model_version, nudity_head, seeded_spot_checks, settings
):
    """The control: the attack above is real, only the audience rule stops it."""
    settings.HYDRA_TRUST_MIN_AUDIENCE = 0
    video = ready_video("friends-only", pattern="erratic", seed=2)
    pair = hide(video, model_version, nudity_head, settings)
    assert all(statuses(s) == {"accepted"} for s in pair)
    assert not Verdict.objects.get(video=video, head_version__head__category="nudity").flagged
    assert not Recomputation.objects.exists()


def test_established_colluders_arriving_together_are_a_concentrated_audience(
    ready_video, model_version, nudity_head, seeded_spot_checks, settings
):
    """Five established identities on five networks, told to watch at once, count as one viewer."""
    video = ready_video("group", pattern="erratic", seed=2)
    group = hide(video, model_version, nudity_head, settings, colluders=5)
    assert all(s.state == ClientSession.State.QUARANTINED and statuses(s) == {"rejected"} for s in group)
    assert Verdict.objects.get(video=video, head_version__head__category="nudity").flagged


def test_the_same_group_spread_over_minutes_is_an_audience(
    ready_video, model_version, nudity_head, seeded_spot_checks, settings
):
    """The control: arrivals a window apart count, so the group above is stopped by the arrival rule alone.

    (Spread arrivals do not help a real group: the first two are judged while they are alone.)
    """
    video = ready_video("group", pattern="erratic", seed=2)
    group = hide(video, model_version, nudity_head, settings, colluders=5, apart_s=61)
    assert all(statuses(s) == {"accepted"} for s in group)
    assert not Verdict.objects.get(video=video, head_version__head__category="nudity").flagged


def test_cross_checks_on_server_computed_samples_build_no_record(
    ready_video, model_version, nudity_head, seeded_spot_checks
):
    """The farm of issue 12: accounts opening sessions in a burst on a video the server already computed."""
    video = ready_video("computed", pattern="calm", seed=9)
    times = selectors.expected_sample_times(video)
    truth = compute_server_features(video, times, model_version)
    cover_video.delay(video.pk)  # the server computed every sample (or an attacker's throwaway forced it to)
    accounts = [get_user_model().objects.create_user(f"farmer{a}", password="pw-farmer-1") for a in range(3)]
    farm = [
        session_for(video, model_version, f"farm{a}-{i}", ip=f"10.4.{3 * a + i}.1", user=account)
        for a, account in enumerate(accounts)
        for i in range(3)
    ]
    for session in farm:
        record(session, times, truth)  # honest, and every answer already known
    assert all(statuses(s) == {"accepted"} for s in farm)
    assert not Contributor.objects.filter(consecutive_valid__gt=0).exists()


def test_a_farm_earns_one_result_per_record_and_video(ready_video, model_version, nudity_head, seeded_spot_checks):
    """Blind work in a burst: an account's devices and networks, and anonymous devices on one /24, are one record each.

    Every sample is new to the server and every result is verified by it (probation and the small
    audience check all of them), yet each record advances once for the video.
    """
    video = ready_video("farmed", pattern="calm", seed=9)
    times = selectors.expected_sample_times(video)
    truth = compute_server_features(video, times, model_version)
    farmer = get_user_model().objects.create_user("farmer", password="pw-farmer-1")
    account = [session_for(video, model_version, f"acct{i}", ip=f"10.8.{i}.1", user=farmer) for i in range(4)]
    neighbours = [session_for(video, model_version, f"nat{i}", ip=f"10.9.0.{i + 1}") for i in range(4)]
    for session in account + neighbours:
        record(session, times, truth)
    cover_video.delay(video.pk)  # whatever peers did not get accepted, the server computes now
    assert all(statuses(s) == {"accepted"} for s in account + neighbours)
    assert Recomputation.objects.filter(video=video).count() == len(times)  # every result was verified blind
    records = dict(Contributor.objects.filter(consecutive_valid__gt=0).values_list("key", "consecutive_valid"))
    assert records == {f"user:{farmer.pk}": 1, "net:10.9.0.0/24": 1}


def test_an_uploader_earns_no_record_on_their_own_video(ready_video, model_version, nudity_head, seeded_spot_checks):
    """Watching one's own upload is not independent work: the same blind, server-verified results credit a
    stranger's record and not the uploader's."""
    video = ready_video("own", pattern="calm", seed=9)
    times = selectors.expected_sample_times(video)
    truth = compute_server_features(video, times, model_version)
    stranger = get_user_model().objects.create_user("stranger", password="pw-stranger-1")
    own = session_for(video, model_version, "own", ip="10.12.0.1", user=video.owner)
    other = session_for(video, model_version, "other", ip="10.13.0.1", user=stranger)
    for session in (own, other):
        record(session, times, truth)
    cover_video.delay(video.pk)
    assert statuses(own) == statuses(other) == {"accepted"}
    records = dict(Contributor.objects.filter(consecutive_valid__gt=0).values_list("key", "consecutive_valid"))
    assert records == {f"user:{stranger.pk}": 1}


def test_a_record_grows_no_faster_than_its_age():
    def record_of(age: timedelta, earned: int) -> int:
        session = ClientSession(device_id=f"dev-{age}-{earned}")
        contributor, _ = Contributor.objects.update_or_create(
            key=contributors.record_key(session), defaults={"consecutive_valid": earned}
        )
        Contributor.objects.filter(pk=contributor.pk).update(created_at=timezone.now() - age)
        records = contributors.ContributorRecords([session], video_id=0, per_day=10, now=timezone.now())
        return records.consecutive_valid(session)

    assert record_of(timedelta(minutes=1), 88) == 0  # a burst of sessions: still on probation
    assert record_of(timedelta(days=1), 88) == 10
    assert record_of(timedelta(days=7), 88) == 70  # the floor's rate (10 / 71)^2 < 0.02 is reached after 7 days
    assert record_of(timedelta(days=365), 88) == 88
