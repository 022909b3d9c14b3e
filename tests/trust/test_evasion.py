"""Issue 12's figures: the probability that colluders hide a flagged video, at 10% and 30% of its viewers.

Monte Carlo over the real assignment, spot-check and audience policy (``tests.trust.evasion``), for
the issue's three attacks (lies on every sample, farmed records, in-tolerance steering) and the
arrival patterns that favour colluders, under the shipped rule (the heads score the most severe of
agreeing replicas, so a borderline sample held by an independent quorum is not computed) and the
rule before it (every borderline sample computed). Worst cases for the server: colluders are established
(except where their records were farmed), and the flagged samples are the last of the video.
"""

from __future__ import annotations

import json

import pytest

from tests.trust.evasion import Attack, Lies, Policy, days_to_floor, evasion_probability, farmed_record, visits_to_floor

RUNS = 300
AUDIENCES = (
    ("6 viewers, 30 samples", {"viewers": 6, "samples": 30}),
    ("20 viewers, 30 samples", {"viewers": 20, "samples": 30}),
    ("20 viewers, 120 samples", {"viewers": 20, "samples": 120, "flagged": (117, 118, 119)}),
)
FARMED = farmed_record(sessions=22 * 14, distinct_videos=1, days=35 / 86_400)  # issue 12's farm: 35 s, one video
SCENARIOS = {
    "flagged lies, colluders first": {},
    "flagged lies, random arrivals": {"arrival": "random"},
    "flagged lies, colluders together": {"arrival": "together"},
    "lies on every sample (attack 1)": {"lies": Lies.EVERY_SAMPLE},
    "farmed records (attack 2)": {"record": FARMED},
    "in-tolerance lies (attack 3)": {"lies": Lies.IN_TOLERANCE},
}


POLICIES = {
    "most severe replica (shipped)": Policy(),
    "every borderline sample computed (before)": Policy(peer_carried=0),
}
NOISE = 4 * (0.25 / RUNS) ** 0.5  # four standard deviations of a Monte Carlo estimate at its widest


@pytest.mark.parametrize("share", [0.1, 0.3])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_colluders_never_hide_a_flagged_video(scenario, share):
    figures = {
        policy: {
            name: evasion_probability(Attack(colluding_share=share, **audience, **SCENARIOS[scenario]), rules, RUNS)
            for name, audience in AUDIENCES
        }
        for policy, rules in POLICIES.items()
    }
    print("\nTRUST-FIGURES evasion", json.dumps({"scenario": scenario, "share": share, **figures}))
    assert all(p == 0.0 for by_audience in figures.values() for p in by_audience.values()), figures


@pytest.mark.parametrize("share", [0.1, 0.3])
def test_a_quorum_of_colluders_on_an_established_audience_is_stopped_only_as_plain_lies_are(share):
    """The scenario where the most severe replica gives in-tolerance lies a non-zero chance: an established audience
    arrived apart and left before the flagged samples, so the colluders alone form their quorum, unseen by the
    audience rule. Every borderline sample computed (the rule before) stops in-tolerance lies there; scoring the
    most severe replica stops them exactly as well as lies far outside the tolerance are stopped, i.e. only by a
    later honest replica (the server's top-ups) or a spot check: P = q (1 - r)^k for k lied samples, q the chance
    that no honest replica ever joins them, r the colluders' spot-check rate (the floor, 0.02). With no later
    viewer (6 viewers: 2 colluders, 4 leavers) q = 1."""
    figures = {}
    for name, audience in AUDIENCES:
        late = {"colluding_share": share, "arrival": "late", **audience}
        attack, plain = Attack(lies=Lies.IN_TOLERANCE, **late), Attack(**late)
        figures[name] = {
            "in-tolerance, before": evasion_probability(attack, Policy(peer_carried=0), RUNS),
            "in-tolerance, most severe replica": evasion_probability(attack, Policy(), RUNS),
            "far outside the tolerance": evasion_probability(plain, Policy(), RUNS),
        }
    print("\nTRUST-FIGURES evasion, quorum of colluders", json.dumps({"share": share, **figures}))
    for row in figures.values():
        assert row["in-tolerance, before"] == 0.0
        assert abs(row["in-tolerance, most severe replica"] - row["far outside the tolerance"]) <= NOISE
    bound = (1 - Policy().spot_checks.floor) ** len(Attack(viewers=6, colluding_share=share).flagged)
    if share == 0.3:  # 2 colluders among 6 viewers, nobody after them: only spot checks
        assert abs(figures["6 viewers, 30 samples"]["in-tolerance, most severe replica"] - bound) <= 0.05
    assert all(row["in-tolerance, most severe replica"] <= bound + 0.05 for row in figures.values())


def test_a_farm_counts_for_nothing_and_the_floor_costs_a_week_of_distinct_videos():
    assert FARMED == 0  # 14 accounts x 22 sessions in 35 s on one video: still on probation
    policy = Policy()
    days, small, established = days_to_floor(policy), visits_to_floor(policy, True), visits_to_floor(policy, False)
    print("\nTRUST-FIGURES farm", json.dumps({"days": days, "visits_small": small, "visits_established": established}))
    assert days == 7 and small == 70
    assert 300 < established < 350


@pytest.mark.parametrize(
    ("scenario", "unguarded_policy", "at_least"),
    [
        # The first arrivals hold every sample; without the audience rule only the floor and the later
        # honest viewers' top-ups (drawn at random by the server, so they reach the flagged samples too)
        # stand in the way: 0.97 when top-ups were taken in sample order, about 0.1 now.
        ("flagged lies, colluders first", {"min_audience": 0}, 0.05),
        # Five established colluders arriving in one burst would count as an audience of five.
        ("flagged lies, colluders together", {"arrival_window": 0.0}, 0.05),
        # In-tolerance lies are never exposed by a comparison: only the borderline rule stops them.
        ("in-tolerance lies (attack 3)", {"borderline_guard": False}, 0.05),
        # The most severe replica lifts that rule where a quorum holds the sample: with the audience rule off, the
        # colluders holding the first quorum of the flagged samples hide them (the audience rule stands in the way).
        ("in-tolerance lies (attack 3)", {"min_audience": 0}, 0.05),
    ],
)
def test_controls_each_attack_succeeds_without_its_defence(scenario, unguarded_policy, at_least):
    attack = Attack(viewers=20, colluding_share=0.3, samples=120, flagged=(117, 118, 119), **SCENARIOS[scenario])
    unguarded = evasion_probability(attack, Policy(**unguarded_policy), RUNS)
    print(f"\nTRUST-FIGURES evasion without the defence ({scenario}): {unguarded:.3f}")
    assert unguarded > at_least
