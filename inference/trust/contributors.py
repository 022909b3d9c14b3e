"""Who a session is, and whether it (or the person or device behind it) was caught lying.

A contributor is an account if logged in (all its devices and networks share one record), else
the device id the client gave, else the session alone; the spot-check records and quarantines
are kept per contributor. A record counts only blind results (the server computed the sample
after the contributor sent it) and grows no faster than its age allows.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db.models import F

from inference.models import ClientSession, Contributor
from inference.trust.assignment import Identity, network_of
from inference.trust.spot_checks import SpotCheckPolicy


def contributor_key(session: ClientSession) -> str:
    """An account if logged in, else the device id the client gave, else the session alone."""
    if session.user_id is not None:
        return f"user:{session.user_id}"
    if session.device_id:
        return f"device:{session.device_id}"
    return f"session:{session.pk}"


def identity_of(session: ClientSession, uploader_id: int | None) -> Identity:
    return Identity(
        session_id=str(session.pk),
        user_id=session.user_id,
        device_id=session.device_id,
        network=network_of(session.ip_address),
        is_uploader=session.user_id is not None and session.user_id == uploader_id,
    )


CAUGHT_SESSION = "this session was quarantined for sending features that do not match the video"
CAUGHT_CONTRIBUTOR = "this account or device was quarantined"


def quarantine_if_caught(session: ClientSession) -> None:
    """A new session of a quarantined account or device starts quarantined (checked once its device is known).

    Storing a batch checks only the session's own state (one statement per batch); this makes
    that check cover the person and device behind the session too.
    """
    if session.state != ClientSession.State.QUARANTINED and refusal_reason(session):
        ClientSession.objects.filter(pk=session.pk).update(
            state=ClientSession.State.QUARANTINED, state_reason=CAUGHT_CONTRIBUTOR
        )
        session.state, session.state_reason = ClientSession.State.QUARANTINED, CAUGHT_CONTRIBUTOR


def refusal_reason(session: ClientSession) -> str | None:
    """Why this session may no longer contribute, or None: it, or the person or device behind it, was caught."""
    if session.state == ClientSession.State.QUARANTINED:
        return CAUGHT_CONTRIBUTOR if session.state_reason == CAUGHT_CONTRIBUTOR else CAUGHT_SESSION
    key = contributor_key(session)
    if key.startswith("session:"):
        return None  # no account or device: the contributor is the session, whose state was just read
    quarantined = Contributor.objects.filter(key=key, quarantined_at__isnull=False).exists()
    return CAUGHT_CONTRIBUTOR if quarantined else None


class ContributorRecords:
    """The spot-check records of a verification's contributors: read in one query, written once per contributor.

    A pass touches a few contributors many times (once per sample), so the records are read in one
    query, and the server-verified results are added up and written at the end (``save``) with one
    atomic increment per contributor. Reads see the results already counted in this verification,
    as a save per result would.
    """

    def __init__(self, sessions: Iterable[ClientSession], *, per_day: float, now: datetime) -> None:
        keys = {contributor_key(session) for session in sessions}
        rows = Contributor.objects.filter(key__in=keys).values_list("key", "consecutive_valid", "created_at")
        self._consecutive_valid = {key: valid for key, valid, _ in rows}
        self._age_days = {key: max(0.0, (now - created).total_seconds() / 86_400) for key, _, created in rows}
        self._per_day = per_day
        self._new_valid: dict[str, int] = defaultdict(int)

    def consecutive_valid(self, session: ClientSession) -> int:
        """The record that sets the spot-check rate: server-verified results, but no more than its age allows.

        A record grows by at most ``per_day`` results per day since the contributor's first
        server-verified result (``HYDRA_TRUST_RECORD_PER_DAY``): sessions opened in a burst buy
        nothing that time does not. A contributor without a row yet has no record.
        """
        key = contributor_key(session)
        earned = self._consecutive_valid.get(key, 0)
        return min(earned, int(self._per_day * self._age_days.get(key, 0.0)))

    def record_valid(self, sessions: Iterable[ClientSession]) -> None:
        for session in sessions:
            key = contributor_key(session)
            self._consecutive_valid[key] = self._consecutive_valid.get(key, 0) + 1
            self._new_valid[key] += 1

    def spot_check_due(self, sessions: Iterable[ClientSession], policy: SpotCheckPolicy, rng: random.Random) -> bool:
        records = [self.consecutive_valid(session) for session in sessions]
        return policy.draw(records, rng)

    def save(self) -> None:
        if not self._new_valid:
            return
        Contributor.objects.bulk_create([Contributor(key=key) for key in self._new_valid], ignore_conflicts=True)
        by_count: dict[int, list[str]] = defaultdict(list)
        for key, count in self._new_valid.items():
            by_count[count].append(key)
        for count, keys in by_count.items():
            Contributor.objects.filter(key__in=keys).update(
                consecutive_valid=F("consecutive_valid") + count, valid_total=F("valid_total") + count
            )
        self._new_valid.clear()
