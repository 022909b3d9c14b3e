"""Monte Carlo of evasion: colluding viewers hide a video's flagged frames, against the real policy functions.

Pure (no Django): the server's assignment (``plan_assignment``, its top-ups drawn at random as the
server draws them), the spot-check draw (``SpotCheckPolicy``) and the audience rule
(``spread_audience``) are the ones ``inference.trust`` runs; the simulation only decides who
arrives when and who lies. Evasion succeeds when every flagged sample is held by colluders only
and no colluder holding one is ever caught (any honest replica of a lied sample disputes it, the
server computes it and quarantines the liars with every verdict they touched; a spot check or the
small-audience check computes a sample) and, for in-tolerance lies, no flagged sample is
computed for being borderline: the server computes a borderline sample that rests on fewer than
``Policy.peer_carried`` independent replicas; one that holds them is scored with its most severe
replica, so it hides only when every replica lies and neither a spot check nor the audience rule
computes it.

Scenarios (``Lies``, ``Attack.arrival``, ``Attack.record``), issue 12's three attacks among them:

* ``FLAGGED``: lies far outside the tolerance on the flagged samples only, the truth elsewhere;
* ``EVERY_SAMPLE``: lies on every sample held (attack 1: a caught liar leaves nothing behind);
* ``IN_TOLERANCE``: lies the tolerance cannot tell from an honest browser on the flagged samples
  (attack 3; they can move a decision only near a threshold, where the server computes);
* farmed records (attack 2): colluders whose records were farmed in a burst, which count for
  what the record rules allow (``farmed_record``), i.e. nothing;
* a sybil farm (issue 15): ``Attack.sybils`` fresh devices (newcomers, each its own record and
  network) join the colluders; a newcomer counts only beside an established contributor
  independent of it, or the server (``Policy.newcomers``), and its probation budget is spent
  (the worst case: a patient sybil spends it on honest work first) unless ``sybil_budget`` says;
* arrivals: colluders first, at random, or together in one burst (a concentrated audience), or
  late: ``Policy.min_audience`` established honest viewers arrive apart first and leave before
  sending the flagged samples (released), so the colluders form those samples' quorum on an
  established audience, where the audience rule no longer computes what peers agree on.

``lies_past_probability`` is the closed form docs/trust.md gives for k lies getting past the server
when each lied sample's replicas are drawn at random among the viewers (no audience rule, no
assignment order); ``random_holders_evaded`` is its Monte Carlo check.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import StrEnum

from inference.trust.assignment import Identity, plan_assignment, spread_audience
from inference.trust.spot_checks import SpotCheckPolicy


class Lies(StrEnum):
    FLAGGED = "flagged"
    EVERY_SAMPLE = "every_sample"
    IN_TOLERANCE = "in_tolerance"


ESTABLISHED = 500  # a record earned over years: spot checks at the floor


@dataclass(frozen=True)
class Attack:
    viewers: int  # the video's whole audience, colluders included, sybils not
    colluding_share: float
    samples: int = 30
    flagged: tuple[int, ...] = (27, 28, 29)  # indexes of the flagged samples
    # "first": the uploader's friends before anyone else; "random"; "together": one burst; "late": after an
    # established audience that left before the flagged samples
    arrival: str = "first"
    lies: Lies = Lies.FLAGGED
    record: int = ESTABLISHED  # the colluders' record as the rules count it (honest viewers are established)
    sybils: int = 0  # fresh devices of the colluders (newcomers), arriving with them
    sybil_budget: int = 0  # probation checks a sybil has left (0: spent on honest work beforehand)


class Newcomers(StrEnum):
    """What a sample agreed only among newcomers (no established holder) becomes where the audience is not small."""

    WAIT = "wait"  # issue 15: pending until an established replica (which disputes a lie) or the server
    CHECKED = "checked"  # before issue 15: every newcomer sample checked (rate 1 during probation)
    TRUSTED = "trusted"  # the control: accepted, drawn only by the newcomers' probation budgets


@dataclass(frozen=True)
class Policy:
    replicas: int = 2
    minimum: int = 4
    spot_checks: SpotCheckPolicy = field(
        default_factory=lambda: SpotCheckPolicy(probation=10, floor=0.02, probation_checks=5, probation_rate=0.25)
    )
    newcomers: Newcomers = Newcomers.WAIT
    min_audience: int = 5
    arrival_window: float = 60.0
    borderline_guard: bool = True  # in-tolerance lies decide only near a threshold, where the server computes
    # A borderline sample held by at least this many independent agreeing replicas is decided by peers, not computed
    # by the server: the heads score its most severe replica, so an in-tolerance lie decides it only when every
    # holder lies (shipped: 2, ``agreement.SEVERE_QUORUM``; 0: every borderline sample is computed, the rule before).
    # Issue 16's tight-agreement exemption (measured, not adopted) has this same model here: colluders agree
    # tightly among themselves, an honest holder never agrees tightly with a lie.
    peer_carried: int = 2


def farmed_record(sessions: int, distinct_videos: int, days: float, per_day: float = 10.0) -> int:
    """What a farm's record counts for: once per distinct video, no faster than ``per_day`` a day.

    Sessions add nothing: a burst of sessions on one video is one credit at most.
    """
    del sessions
    return min(distinct_videos, int(per_day * days))


def _floor_record(policy: Policy) -> int:
    checks = policy.spot_checks
    return next(n for n in range(checks.probation, 100_000) if checks.rate(n) <= checks.floor)


def days_to_floor(policy: Policy, per_day: float = 10.0) -> int:
    """Days before a record can reach the floor's rate, at ``per_day`` credits a day."""
    return math.ceil(_floor_record(policy) / per_day)


def visits_to_floor(policy: Policy, small_audiences: bool) -> float:
    """Expected visits of distinct videos to credit a record to the floor.

    On small audiences every agreed sample is checked, so a visit credits once for sure. Elsewhere
    a visit of ``minimum`` samples credits only when a check falls on one of them: while the record
    is new, its probation draw (at most one per visit, ``probation_checks`` in all) or the
    established peer's floor; once established, its own rate.
    """
    n = _floor_record(policy)
    if small_audiences:
        return float(n)
    checks, m = policy.spot_checks, policy.minimum
    budget = min(checks.probation_checks, checks.probation)
    newcomer = budget / (1 - ((1 - checks.probation_rate) * (1 - checks.floor)) ** m) if budget else 0.0
    unaided = (checks.probation - budget) / (1 - (1 - checks.floor) ** m)
    return newcomer + unaided + sum(1 / (1 - (1 - checks.rate(k)) ** m) for k in range(checks.probation, n))


def evaded(attack: Attack, policy: Policy, rng: random.Random) -> bool:
    colluders = max(1, round(attack.viewers * attack.colluding_share)) if attack.colluding_share else 0
    people = [(f"c{i}", True) for i in range(colluders)] + [(f"h{i}", False) for i in range(attack.viewers - colluders)]
    rng.shuffle(people)
    sybils = [(f"s{i}", True) for i in range(attack.sybils)]
    if attack.arrival in ("first", "together"):
        people.sort(key=lambda p: not p[1])
        people = people[:colluders] + sybils + people[colluders:]
    else:
        people = people + sybils
        rng.shuffle(people)
    checks = policy.spot_checks
    records = {name: attack.record if is_colluder else ESTABLISHED for name, is_colluder in people}
    records.update({name: 0 for name, _ in sybils})
    budget = {name: attack.sybil_budget if name.startswith("s") else checks.probation_checks for name in records}
    leavers: set[str] = set()
    if attack.arrival == "late":  # an established audience first; it leaves before the flagged samples
        honest = [p for p in people if not p[1]]
        people = honest[: policy.min_audience] + [p for p in people if p[1]] + honest[policy.min_audience :]
        leavers = {name for name, _ in honest[: policy.min_audience]}
    times = [1000 * i for i in range(attack.samples)]
    flagged = {times[i] for i in attack.flagged}
    holders: dict[int, list[tuple[Identity, bool]]] = {t: [] for t in times}
    arrivals: list[tuple[float, Identity] | None] = []  # in arrival order; None: not established
    seen_by_pass: dict[int, int] = {}  # per sample, how many arrivals the pass that judges its quorum has seen
    # One burst: its pass runs once all are in.
    burst = colluders + attack.sybils if attack.arrival == "together" else 0
    for arrived, (name, is_colluder) in enumerate(people):
        identity = Identity(session_id=name, device_id=name, network=f"10.{arrived}.0.0/24")
        # Apart by more than the arrival window, except colluders arriving together in one burst.
        at = 0.0 if burst and is_colluder else (arrived + 1) * 2 * policy.arrival_window
        arrivals.append((at, identity) if checks.established(records[name]) else None)
        current = {t: [h for h, _ in hs] for t, hs in holders.items()}
        for t in plan_assignment(times, identity, current, replicas=policy.replicas, minimum=policy.minimum, rng=rng):
            if name in leavers and t in flagged:
                continue  # left before sending it: released to the next session (release_unfinished_assignments)
            holders[t].append((identity, is_colluder))
            if len(holders[t]) == policy.replicas:
                seen_by_pass[t] = max(arrived + 1, burst)
    audience_when_agreed = {
        t: spread_audience([a for a in arrivals[:seen] if a is not None], policy.arrival_window)
        for t, seen in seen_by_pass.items()
    }
    lied = flagged if attack.lies is not Lies.EVERY_SAMPLE else set(times)

    def drawn(t: int) -> bool:
        """The spot-check draw of a sample only colluders hold, on an audience that is not small."""
        held = [records[identity.session_id] for identity, _ in holders[t]]
        if checks.draw(held, rng):
            return True
        for identity, _ in holders[t]:
            name = identity.session_id
            if not checks.established(records[name]) and checks.probation_draw(
                checks.probation_checks - budget[name], rng
            ):
                budget[name] -= 1
                return True
        return False

    def caught(t: int) -> bool:
        """Whether the colluders' lie on ``t`` is exposed: a dispute, the audience check or a spot check."""
        kinds = [is_colluder for _, is_colluder in holders[t]]
        if not any(kinds):
            return False
        if attack.lies is Lies.IN_TOLERANCE:
            return False  # agrees with the truth within the tolerance: no comparison can expose it
        if not all(kinds) or len(kinds) < policy.replicas:
            return True  # an honest replica disputes it (or it never reaches a quorum: the server covers it)
        if audience_when_agreed[t] < policy.min_audience:
            return True
        if not any(checks.established(records[identity.session_id]) for identity, _ in holders[t]):
            if policy.newcomers is Newcomers.WAIT:
                return True  # pending: an established replica disputes it, or the deadline's server computes it
            if policy.newcomers is Newcomers.CHECKED:
                return True  # rate 1 during probation
        return drawn(t)

    def peer_carried(t: int) -> bool:
        """Whether peers decide a borderline sample that only colluders hold, unseen by the server."""
        if not policy.peer_carried or len(holders[t]) < policy.peer_carried:
            return False
        if audience_when_agreed[t] < policy.min_audience:
            return False  # a small audience: the server computes every agreed sample
        return not drawn(t)  # a spot check computes it

    for t in flagged:
        if not holders[t] or not all(is_colluder for _, is_colluder in holders[t]):
            return False  # an honest replica holds it: its truth decides (disputed, or agreed by the server)
        if attack.lies is Lies.IN_TOLERANCE and policy.borderline_guard and not peer_carried(t):
            return False  # a decision an in-tolerance lie can move is borderline: the server computes it
    exposed = {t for t in lied if any(c for _, c in holders[t]) and caught(t)}
    liars_of_flagged = {identity.session_id for t in flagged for identity, _ in holders[t]}
    caught_liars = {identity.session_id for t in exposed for identity, c in holders[t] if c}
    return not (liars_of_flagged & caught_liars)


def evasion_probability(attack: Attack, policy: Policy, runs: int, seed: int = 12) -> float:
    rng = random.Random(seed)
    return sum(evaded(attack, policy, rng) for _ in range(runs)) / runs


def lies_past_probability(
    established_share: float, sybil_share: float, k: int, *, replicas: int, rate: float, newcomers: Newcomers
) -> float:
    """Closed form: the probability that all of ``k`` lied samples get past the server.

    Each lied sample's ``replicas`` holders are drawn at random among the viewers, a share
    ``established_share`` of them established colluders (spot-check rate ``rate``), a share
    ``sybil_share`` fresh colluding devices with their probation budget spent, the rest honest
    (any honest holder disputes the lie). A sample gets past when every holder is a colluder, the
    rule lets it count, and the draw misses it; samples are independent. With ``a = e + s``:

    * ``WAIT`` (issue 15): newcomers count only beside an established holder: ``(a^R - s^R)(1 - r)``;
    * ``CHECKED`` (before): any newcomer holder is checked: ``e^R (1 - r)``;
    * ``TRUSTED`` (the control): ``(a^R - s^R)(1 - r) + s^R``.
    """
    a = established_share + sybil_share
    with_established = a**replicas - sybil_share**replicas
    per_sample = {
        Newcomers.WAIT: with_established * (1 - rate),
        Newcomers.CHECKED: established_share**replicas * (1 - rate),
        Newcomers.TRUSTED: with_established * (1 - rate) + sybil_share**replicas,
    }[newcomers]
    return per_sample**k


def random_holders_evaded(
    established_share: float,
    sybil_share: float,
    k: int,
    *,
    policy: Policy,
    rate_record: int,
    rng: random.Random,
) -> bool:
    """One draw of ``lies_past_probability``'s model through the policy's own draws (``SpotCheckPolicy``)."""
    checks = policy.spot_checks
    for _ in range(k):
        records = []
        for _ in range(policy.replicas):
            u = rng.random()
            if u >= established_share + sybil_share:
                return False  # an honest holder disputes the lie
            records.append(rate_record if u < established_share else 0)
        if not any(checks.established(n) for n in records):
            if policy.newcomers is not Newcomers.TRUSTED:
                return False  # pending (WAIT) or checked at rate 1 (CHECKED): the server sees the lie
            continue  # budgets spent: nothing draws it
        if policy.newcomers is Newcomers.CHECKED and not all(checks.established(n) for n in records):
            return False
        if checks.draw(records, rng):
            return False
    return True
