"""The pure trust policy: independence, assignment plans, agreement and spot-check rates."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from inference.trust.agreement import (
    SEVERE_QUORUM,
    Submission,
    Tolerance,
    compare_to_reference,
    judge_against_server,
    judge_by_peers,
)
from inference.trust.assignment import (
    Identity,
    assignment_rng,
    independent,
    network_of,
    plan_assignment,
    spread_audience,
    under_replicated,
)
from inference.trust.spot_checks import SpotCheckPolicy

TOLERANCE = Tolerance(min_cosine=0.98, max_norm_ratio=1.06, max_head_difference=0.1)


def fake_head(vectors: np.ndarray) -> np.ndarray:
    """A two-class softmax on the first feature: enough to see a decision move."""
    logits = np.stack([vectors[:, 0] * 4.0, np.full(len(vectors), 2.0)], axis=1)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 6, 64).astype(np.float32)


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("203.0.113.7", "203.0.113.0/24"),
        ("2001:db8:1:2::5", "2001:db8:1::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("", ""),
        (None, ""),
        ("not an address", ""),
    ],
)
def test_network_of(ip, network):
    assert network_of(ip) == network


def test_independence_needs_distinct_account_device_and_network():
    a = Identity("a", user_id=1, device_id="d1", network="10.0.0.0/24")
    assert independent(a, Identity("b", user_id=2, device_id="d2", network="10.0.1.0/24"))
    assert not independent(a, Identity("b", user_id=1, device_id="d2", network="10.0.1.0/24"))
    assert not independent(a, Identity("b", user_id=2, device_id="d1", network="10.0.1.0/24"))
    assert not independent(a, Identity("b", user_id=2, device_id="d2", network="10.0.0.0/24"))
    assert not independent(a, a)
    # Anonymous sessions on different devices and networks are independent.
    assert independent(Identity("x", device_id="d3"), Identity("y", device_id="d4"))


def test_each_time_goes_to_two_independent_sessions_and_never_to_the_uploader_alone():
    times = [0, 1000, 2000, 3000]
    holders: dict[int, list[Identity]] = {}
    uploader = Identity("u", user_id=1, device_id="du", network="10.0.0.0/24", is_uploader=True)
    sessions = [
        uploader,
        Identity("s1", device_id="d1", network="10.0.1.0/24"),
        Identity("s1-same-net", device_id="d9", network="10.0.1.0/24"),
        Identity("s2", user_id=7, device_id="d2", network="10.0.2.0/24"),
    ]
    plans = {}
    for s in sessions:
        plans[s.session_id] = plan_assignment(times, s, holders, replicas=2, minimum=2, rng=random.Random(0))
        for t in plans[s.session_id]:
            holders.setdefault(t, []).append(s)
    assert len(plans["u"]) == 2  # a cross-check only, topped up to the minimum (drawn by the server)
    assert plans["s1"] == times
    # Adds no independence: the minimum, least-held first (those the uploader was not given).
    assert plans["s1-same-net"] == sorted(set(times) - set(plans["u"]))
    assert plans["s2"] == times
    assert under_replicated(times, holders, replicas=2) == []
    # Without s2 every time lacks its second independent replica (the uploader does not count).
    without_s2 = {t: [h for h in hs if h.session_id != "s2"] for t, hs in holders.items()}
    assert under_replicated(times, without_s2, replicas=2) == times


def test_a_session_is_not_assigned_what_it_already_holds_or_what_the_server_settled():
    s = Identity("s", device_id="d")
    assert plan_assignment([0, 1000], s, {0: [s]}, replicas=2, minimum=0, rng=random.Random(0)) == [1000]
    assert plan_assignment([0, 1000, 2000], s, {}, replicas=2, minimum=0, rng=random.Random(0), settled={1000}) == [
        0,
        2000,
    ]
    # Settled times are still good extra work: a cross-check against the server's own features.
    assert plan_assignment([0, 1000], s, {}, replicas=2, minimum=2, rng=random.Random(0), settled={0, 1000}) == [
        0,
        1000,
    ]
    assert under_replicated([0, 1000], {}, replicas=2, settled={0}) == [1000]


def test_the_server_draws_which_samples_a_late_session_cross_checks():
    """Top-ups are drawn with the server's secret: a client cannot pick them nor foresee where audits land."""
    times = [1000 * i for i in range(30)]
    first, second = (
        Identity("a", device_id="da", network="10.0.1.0/24"),
        Identity("b", device_id="db", network="10.0.2.0/24"),
    )
    holders = {t: [first, second] for t in times}  # covered: a late session only cross-checks

    def plan(session_id: str, secret: str = "server-secret") -> list[int]:
        late = Identity(session_id, device_id=f"d-{session_id}", network="10.9.0.0/24")
        return plan_assignment(times, late, holders, replicas=2, minimum=4, rng=assignment_rng(secret, session_id))

    assert plan("late-1") == plan("late-1")  # a reconnect is given the same draw
    assert plan("late-1") != plan("late-1", secret="another-server")  # the secret, not the request, decides
    drawn = [t for i in range(200) for t in plan(f"late-{i}")]
    assert len(drawn) == 800 and set(drawn) == set(times)  # every sample is audited, the last ones too
    assert max(drawn.count(t) for t in times) < 3 * 800 / len(times)  # about uniformly
    # Least-held samples still come first: randomness only breaks ties.
    thin = {**holders, 29_000: [first]}
    late = Identity("late-x", device_id="dx", network="10.9.0.0/24", user_id=5)
    assert 29_000 in plan_assignment(times, late, thin, replicas=2, minimum=4, rng=assignment_rng("s", "late-x"))


def test_viewers_arriving_together_count_once_towards_the_audience():
    group = [(100.0 + i, Identity(f"c{i}", device_id=f"dc{i}", network=f"10.{i}.0.0/24")) for i in range(6)]
    assert spread_audience(group, window=60) == 1  # six networks, one arrival
    apart = [(100.0 + 61 * i, identity) for i, (_, identity) in enumerate(group)]
    assert spread_audience(apart, window=60) == 6
    same_net = [(100.0 + 61 * i, Identity(f"n{i}", device_id=f"dn{i}", network="10.1.0.0/24")) for i in range(6)]
    assert spread_audience(same_net, window=60) == 1  # not independent
    uploader = [(0.0, Identity("u", user_id=1, is_uploader=True))]
    assert spread_audience(uploader + apart[:2], window=60) == 2  # the uploader never counts


def test_agreement_accepts_small_noise_and_refuses_scaling_and_head_flips():
    v = vector(1)
    noisy = v + np.random.default_rng(2).normal(0, 0.05, v.shape).astype(np.float32)
    assert compare_to_reference(v, noisy, fake_head)[0].within(TOLERANCE)
    scaled = compare_to_reference(v, v * 1.5, fake_head)[0]
    assert scaled.cosine == pytest.approx(1.0)
    assert not scaled.within(TOLERANCE)
    flipped = v.copy()
    flipped[0] = 0.0 if v[0] > 0.5 else 6.0  # one coordinate: tiny in cosine, large for the head
    comparison = compare_to_reference(v, flipped, fake_head)[0]
    assert comparison.cosine > 0.98
    assert not comparison.within(TOLERANCE)
    assert not compare_to_reference(v, np.zeros_like(v), fake_head)[0].within(TOLERANCE)
    assert not compare_to_reference(np.zeros_like(v), np.zeros_like(v), fake_head)[0].within(TOLERANCE)


def _sub(session: str, vec: np.ndarray, **identity) -> Submission:
    return Submission(Identity(session, **identity), vec)


def test_peers_accept_only_with_an_independent_quorum_and_dispute_any_disagreement():
    v = vector(3)
    a = _sub("a", v, device_id="da", network="10.0.1.0/24")
    b_same_device = _sub("b", v + 0.01, device_id="da", network="10.0.2.0/24")
    c = _sub("c", v + 0.01, device_id="dc", network="10.0.3.0/24")
    liar = _sub("l", vector(4), device_id="dl", network="10.0.4.0/24")
    assert judge_by_peers([a], TOLERANCE, fake_head, replicas=2).accepted == frozenset()
    waiting = judge_by_peers([a, b_same_device], TOLERANCE, fake_head, replicas=2)
    assert waiting.accepted == frozenset() and not waiting.needs_server
    agreed = judge_by_peers([a, b_same_device, c], TOLERANCE, fake_head, replicas=2)
    assert agreed.accepted == {"a", "b", "c"}
    dispute = judge_by_peers([a, c, liar], TOLERANCE, fake_head, replicas=2)
    assert dispute.needs_server and dispute.accepted == frozenset()


def test_one_replica_accepts_a_lone_independent_viewer_but_never_the_uploader_alone():
    v = vector(3)
    viewer = _sub("a", v, device_id="da", network="10.0.1.0/24")
    uploader = _sub("u", v, device_id="du", network="10.0.2.0/24", is_uploader=True)
    liar = _sub("l", vector(4), device_id="dl", network="10.0.4.0/24")
    assert judge_by_peers([viewer], TOLERANCE, fake_head, replicas=1).accepted == {"a"}
    assert judge_by_peers([uploader], TOLERANCE, fake_head, replicas=1).accepted == frozenset()
    assert judge_by_peers([viewer, liar], TOLERANCE, fake_head, replicas=1).needs_server  # still compared
    assert judge_by_peers([], TOLERANCE, fake_head, replicas=1).accepted == frozenset()


def test_the_borderline_margin_applies_only_below_two_independent_replicas():
    """From two independent agreeing replicas the heads score the most severe one, so a sample near a threshold
    is accepted; one replica alone (``replicas=1``), or two that are not independent, still go to the server."""
    v = vector(3)
    a = _sub("a", v, device_id="da", network="10.0.1.0/24")
    same_network = _sub("b", v + 0.01, device_id="db", network="10.0.1.0/24")
    c = _sub("c", v + 0.01, device_id="dc", network="10.0.3.0/24")
    uploader = _sub("u", v, device_id="du", network="10.0.5.0/24", is_uploader=True)
    assert SEVERE_QUORUM == 2

    def near(features: np.ndarray) -> bool:
        return True  # every sample scores near a threshold

    assert judge_by_peers([a, c], TOLERANCE, fake_head, replicas=2, near_threshold=near).accepted == {"a", "c"}
    assert judge_by_peers([a, c], TOLERANCE, fake_head, replicas=1, near_threshold=near).accepted == {"a", "c"}
    for alone in ([a], [a, same_network], [a, uploader]):
        outcome = judge_by_peers(alone, TOLERANCE, fake_head, replicas=1, near_threshold=near)
        assert outcome.needs_server and outcome.accepted == frozenset()


def test_the_server_decides_disputes():
    v = vector(5)
    outcome = judge_against_server([_sub("honest", v + 0.01), _sub("liar", vector(6))], v, TOLERANCE, fake_head)
    assert outcome.accepted == {"honest"}
    assert outcome.rejected == {"liar"}


def test_an_established_rate_decays_to_the_floor_and_a_newcomer_sets_none():
    """Issue 15 changed probation: a newcomer's record no longer sets a rate of 1 for its samples (it did before)."""
    policy = SpotCheckPolicy(probation=10, floor=0.02)
    assert [policy.established(n) for n in (0, 9, 10)] == [False, False, True]
    with pytest.raises(ValueError):
        policy.rate(9)
    rates = [policy.rate(n) for n in range(10, 200)]
    assert rates[0] == pytest.approx((10 / 11) ** 2)
    assert all(a >= b for a, b in itertools.pairwise(rates))
    assert policy.rate(10_000) == 0.02
    rng = random.Random(0)
    assert not any(policy.draw([3], rng) for _ in range(1000))  # a newcomer alone draws nothing here
    drawn = sum(policy.draw([10_000], rng) for _ in range(20_000)) / 20_000
    assert drawn == pytest.approx(0.02, abs=0.005)


def test_a_newcomer_is_checked_at_most_its_budget_and_an_honest_one_far_less_than_before():
    policy = SpotCheckPolicy(probation=10, floor=0.02, probation_checks=5, probation_rate=0.25)
    rng = random.Random(2)
    assert sum(policy.probation_draw(0, rng) for _ in range(20_000)) / 20_000 == pytest.approx(0.25, abs=0.01)
    assert not any(policy.probation_draw(5, rng) for _ in range(1000))  # the budget is spent
    # Every result of an honest newcomer is a sample agreed with an established peer at the floor.
    before = SpotCheckPolicy(probation=10, floor=0.02, probation_checks=10, probation_rate=1.0)
    assert before.expected_checks(100) == pytest.approx(30.1, abs=0.1)  # rate 1 for its first 10 results
    assert policy.expected_checks(100) == pytest.approx(7.0, abs=0.1)
    assert policy.expected_checks(1000) < before.expected_checks(1000)
    assert policy.expected_checks(100_000) / 100_000 == pytest.approx(0.02, abs=0.002)
    # The checks drawn because it is new: the budget, whatever the peers.
    newness = policy.expected_checks(10_000, peer_rate=0.0)
    assert newness == pytest.approx(5.0, abs=0.01)


def test_a_sample_is_drawn_once_at_its_least_established_contributors_rate():
    policy = SpotCheckPolicy(probation=10, floor=0.02)
    rng = random.Random(1)
    # Two established contributors agreeing on a sample: one recomputation checks both, at the floor.
    drawn = sum(policy.draw([10_000, 20_000], rng) for _ in range(20_000)) / 20_000
    assert drawn == pytest.approx(0.02, abs=0.005)
    # A newcomer beside an established one: the established rate decides (the newcomer's budget draws apart).
    drawn = sum(policy.draw([10_000, 3], rng) for _ in range(20_000)) / 20_000
    assert drawn == pytest.approx(0.02, abs=0.005)
    drawn = sum(policy.draw([10, 10_000], rng) for _ in range(20_000)) / 20_000
    assert drawn == pytest.approx((10 / 11) ** 2, abs=0.01)  # the just-established one's rate
    assert not policy.draw([], rng)


@pytest.mark.parametrize(
    "bad",
    [
        {"probation": -1, "floor": 0.1},
        {"probation": 1, "floor": 1.5},
        {"probation": 1, "floor": 0.1, "probation_checks": -1},
        {"probation": 1, "floor": 0.1, "probation_rate": 2.0},
    ],
)
def test_spot_check_policy_refuses_nonsense(bad):
    with pytest.raises(ValueError):
        SpotCheckPolicy(**bad)
