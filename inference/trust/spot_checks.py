"""How often the server recomputes a sample that independent sessions already agreed on.

BOINC's adaptive replication is the anchor: a new host's results are replicated, and once it has
a record of valid results it is checked less and less; one wrong result resets it (here it also
quarantines it). Only results the server itself verified build the record, so two colluders
cannot vouch for each other.

A record is *established* after ``probation`` server-verified results. An established record
sets a sample's rate at ``(probation / (n + 1)) ** 2`` for ``n`` results, never below
``floor``. A newcomer's own record sets no rate: its work is replicated instead, and counts only
beside an established contributor (who vouches for nothing it did not compute itself, and whose
rate then applies) or the server (``verification.verify_samples``). What the server spends
*because* a record is new is a budget of ``probation_checks`` checks over its whole life, drawn
at ``probation_rate`` per accepted sample from the server's secret generator, so a newcomer cannot
tell which of its results were checked. Those checks are what its record grows on at first.
docs/trust.md (defence 4) has the figures.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SpotCheckPolicy:
    probation: int
    floor: float
    probation_checks: int = 5
    probation_rate: float = 0.25

    def __post_init__(self) -> None:
        if self.probation < 0 or self.probation_checks < 0:
            raise ValueError("probation and probation_checks must be >= 0")
        if not (0.0 <= self.floor <= 1.0 and 0.0 <= self.probation_rate <= 1.0):
            raise ValueError("floor and probation_rate must be probabilities")

    def established(self, record: int) -> bool:
        """Whether a record sets a rate and vouches for newcomers: ``probation`` server-verified results."""
        return record >= self.probation

    def rate(self, record: int) -> float:
        """Probability that the server recomputes one accepted sample of this established contributor."""
        if not self.established(record):
            raise ValueError("a newcomer's record sets no rate: its samples are drawn by probation_draw")
        return max(self.floor, min(1.0, (self.probation / (record + 1)) ** 2))

    def draw(self, records: Iterable[int], rng: random.Random) -> bool:
        """One draw per sample, at the rate of its least-established *established* contributor.

        One recomputation of the frame checks every contributor behind it at once, so the sample
        needs the highest of their rates, not one draw each (which would recompute a sample agreed
        by ``r`` established contributors at about ``r`` times the floor). Newcomers add nothing
        here: their checks come from their budget (``probation_draw``).
        """
        rates = [self.rate(n) for n in records if self.established(n)]
        return bool(rates) and rng.random() < max(rates)

    def probation_draw(self, checks_drawn: int, rng: random.Random) -> bool:
        """Whether a newcomer's accepted sample is checked because its record is new.

        ``checks_drawn``: how many such checks the record has had; none once the budget is spent.
        """
        return checks_drawn < self.probation_checks and rng.random() < self.probation_rate

    def expected_checks(self, results: int, peer_rate: float | None = None) -> float:
        """Expected server recomputations over an honest contributor's first ``results`` results.

        Each result is one sample agreed with an established contributor whose own rate is
        ``peer_rate`` (default the floor: a returning audience), drawn at that rate; while the
        newcomer has budget left its probation draw adds its own. Honest results move the record
        forward only when checked, so the record grows by the expected checks; once established
        the contributor's own rate applies (at least the peer's).
        """
        peer = self.floor if peer_rate is None else peer_rate
        checks = record = budget_spent = 0.0
        for _ in range(results):
            if self.established(int(record)):
                p = max(self.rate(int(record)), peer)
            else:
                own = self.probation_rate * min(1.0, max(0.0, self.probation_checks - budget_spent))
                budget_spent += (1 - peer) * own
                p = peer + (1 - peer) * own
            checks += p
            record += p
        return checks
