"""How often the server recomputes a sample that independent sessions already agreed on.

BOINC's adaptive replication is the anchor: a new host is always checked, and once it has a
record of valid results it is checked less and less; one wrong result resets it (here it also
quarantines it). Only results the server itself verified build the record, so two colluders
cannot vouch for each other.

The rate for a contributor with ``n`` consecutive server-verified valid results is 1 during a
probation of ``probation`` results, then ``(probation / (n + 1)) ** 2``, never below ``floor``.
Because only checks advance the record, an honest contributor's checks grow like the cube
root of its results (about 30 in its first 100, 66 in 1,000) until the floor takes over
(about 2,000 results at the defaults); the floor bounds the steady-state server share of the
work, and with it the offload ratio, near ``1 / floor``. docs/trust.md has the figures.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SpotCheckPolicy:
    probation: int
    floor: float

    def __post_init__(self) -> None:
        if self.probation < 0:
            raise ValueError("probation must be >= 0")
        if not 0.0 <= self.floor <= 1.0:
            raise ValueError("floor must be a probability")

    def rate(self, consecutive_valid: int) -> float:
        """Probability that the server recomputes one accepted sample of this contributor."""
        if consecutive_valid < self.probation:
            return 1.0
        return max(self.floor, min(1.0, (self.probation / (consecutive_valid + 1)) ** 2))

    def draw(self, records: Iterable[int], rng: random.Random) -> bool:
        """One draw per sample, at the rate of its least-established contributor.

        One recomputation of the frame checks every contributor behind it at once, so the sample
        needs the highest of their rates, not one draw each (which would recompute a sample agreed
        by ``r`` established contributors at about ``r`` times the floor).
        """
        rates = [self.rate(n) for n in records]
        return bool(rates) and rng.random() < max(rates)

    def expected_checks(self, results: int) -> float:
        """Expected server recomputations over an honest contributor's first ``results`` results.

        Honest results only move the record forward when checked, so this is the expected
        number of checks when each check advances the record by one.
        """
        checks = 0.0
        record = 0.0
        for _ in range(results):
            p = self.rate(int(record))
            checks += p
            record += p
        return checks
