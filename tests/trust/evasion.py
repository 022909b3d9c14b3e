"""Monte Carlo of evasion: colluding viewers hide a video's flagged frames, against the real policy functions.

Pure (no Django): the server's assignment (``plan_assignment``), the spot-check draw
(``SpotCheckPolicy``) and the small-audience rule are the ones ``inference.trust`` runs; the
simulation only decides who arrives when and who lies. A colluder lies on every flagged
sample it holds (a lie far outside the tolerance: an in-tolerance one cannot move a decision,
``test_steering``) and tells the truth elsewhere. Evasion succeeds when every flagged sample is
held by colluders only (any honest replica disputes it, the server computes it, the liars are
quarantined and every verdict they touched recomputed) and no spot check falls on a lied sample.
Every viewer here is independent and established; the audience the judging pass sees is
everyone who had arrived when the sample got its replicas.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from inference.trust.assignment import Identity, plan_assignment
from inference.trust.spot_checks import SpotCheckPolicy


@dataclass(frozen=True)
class Attack:
    viewers: int  # the video's whole audience, colluders included
    colluding_share: float
    samples: int = 30
    flagged: tuple[int, ...] = (27, 28, 29)  # indexes of the flagged samples: the end, least covered by top-ups
    colluders_first: bool = True  # worst case: the uploader's friends arrive before anyone else
    record: int = 500  # every viewer, colluders included, is established (past the floor)


@dataclass(frozen=True)
class Policy:
    replicas: int = 2
    minimum: int = 4
    spot_checks: SpotCheckPolicy = field(default_factory=lambda: SpotCheckPolicy(probation=10, floor=0.02))
    min_audience: int = 5


def evaded(attack: Attack, policy: Policy, rng: random.Random) -> bool:
    colluders = max(1, round(attack.viewers * attack.colluding_share)) if attack.colluding_share else 0
    people = [(f"c{i}", True) for i in range(colluders)] + [(f"h{i}", False) for i in range(attack.viewers - colluders)]
    if attack.colluders_first:
        rng.shuffle(people)
        people.sort(key=lambda p: not p[1])
    else:
        rng.shuffle(people)
    times = [1000 * i for i in range(attack.samples)]
    flagged = {times[i] for i in attack.flagged}
    rate = policy.spot_checks.rate(attack.record)
    holders: dict[int, list[Identity]] = {t: [] for t in times}
    lying: dict[int, bool] = {t: False for t in times}  # a colluder holds it (and lies if flagged)
    honest: dict[int, bool] = {t: False for t in times}
    identities = [
        Identity(session_id=name, device_id=name, network=f"10.{i}.0.0/24") for i, (name, _) in enumerate(people)
    ]
    audience_when_agreed: dict[int, int] = {}  # how many viewers had arrived when the sample got its replicas
    for arrived, (identity, (_, is_colluder)) in enumerate(zip(identities, people, strict=True), start=1):
        for t in plan_assignment(times, identity, holders, replicas=policy.replicas, minimum=policy.minimum, rng=rng):
            holders[t].append(identity)
            (lying if is_colluder else honest)[t] = True
            if len(holders[t]) == policy.replicas:
                audience_when_agreed[t] = arrived
    for t in flagged:
        if not lying[t] or honest[t] or len(holders[t]) < policy.replicas:
            return False  # disputed (or never accepted: the server covers it)
        small = audience_when_agreed[t] < policy.min_audience  # judged by the pass that follows the replicas
        if rng.random() < (1.0 if small else rate):
            return False  # the spot check computes it: the liars are quarantined
    return True


def evasion_probability(attack: Attack, policy: Policy, runs: int, seed: int = 12) -> float:
    rng = random.Random(seed)
    return sum(evaded(attack, policy, rng) for _ in range(runs)) / runs
