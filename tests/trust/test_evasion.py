"""Issue 12's figures: the probability that colluders hide a flagged video, at 10% and 30% of its viewers.

Monte Carlo over the real assignment and spot-check policy (``tests.trust.evasion``). Worst cases
for the server: every colluder is established, lies far outside the tolerance only on the
flagged samples, and the flagged samples sit where honest top-ups reach last.
"""

from __future__ import annotations

import json

import pytest

from tests.trust.evasion import Attack, Policy, evasion_probability

RUNS = 500
AUDIENCES = (
    ("6 viewers, 30 samples", {"viewers": 6, "samples": 30}),
    ("20 viewers, 30 samples", {"viewers": 20, "samples": 30}),
    ("20 viewers, 120 samples", {"viewers": 20, "samples": 120, "flagged": (117, 118, 119)}),
)


@pytest.mark.parametrize("share", [0.1, 0.3])
@pytest.mark.parametrize("colluders_first", [True, False])
def test_colluders_never_hide_a_flagged_video(share, colluders_first):
    figures = {}
    for name, audience in AUDIENCES:
        attack = Attack(colluding_share=share, colluders_first=colluders_first, **audience)
        figures[name] = evasion_probability(attack, Policy(), RUNS)
    print("\nTRUST-FIGURES evasion", json.dumps({"share": share, "colluders_first": colluders_first, **figures}))
    assert all(p == 0.0 for p in figures.values()), figures


def test_without_the_audience_rule_early_colluders_hide_it():
    """The control: the first arrivals hold every sample; the audience rule checks what they agree on.

    Without it, only the spot-check floor and the later honest viewers' top-ups (drawn at random
    by the server, so they reach the flagged samples too) stand in the way: 0.97 when top-ups
    were taken in sample order, about 0.1 now.
    """
    attack = Attack(viewers=20, colluding_share=0.3, samples=120, flagged=(117, 118, 119))
    unguarded = evasion_probability(attack, Policy(min_audience=0), RUNS)
    print(f"\nTRUST-FIGURES evasion without the audience rule: {unguarded:.3f}")
    assert unguarded > 0.05
