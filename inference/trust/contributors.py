"""Who a session is, whose record it builds, and whether it (or the person or device behind it) was caught lying.

Two keys per session. The *record* (the spot-check reputation) is the account's if logged in
(all its devices and networks share it), else the network's (anonymous devices on one IPv4 /24
or IPv6 /48 share one), else the device's, else the session's: an identity farm on one network
builds one record, not one per device. The *quarantine* is the account's, else the device's,
else the session's: one anonymous liar behind a shared NAT does not lock out its neighbours (it
resets their shared record instead, so they are all checked from scratch).

A record counts only blind results (the server computed the sample after the contributor sent
it), at most one per distinct video (``ContributorVideo``), and grows no faster than its age allows.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import transaction
from django.db.models import F

from inference.models import ClientSession, Contributor, ContributorVideo, ProbationCheck
from inference.trust.assignment import Identity, independent, network_of
from inference.trust.spot_checks import SpotCheckPolicy


def contributor_key(session: ClientSession) -> str:
    """Who is quarantined: an account if logged in, else the device id the client gave, else the session alone."""
    if session.user_id is not None:
        return f"user:{session.user_id}"
    if session.device_id:
        return f"device:{session.device_id}"
    return f"session:{session.pk}"


def record_key(session: ClientSession) -> str:
    """Whose record a session builds: an account if logged in, else its network, else its device, else itself."""
    return record_key_of(user_id=session.user_id, ip=session.ip_address, device_id=session.device_id) or (
        f"session:{session.pk}"
    )


def record_key_of(*, user_id: int | None = None, ip: str | None = None, device_id: str = "") -> str | None:
    """``record_key`` from what is known of a viewer (None: only its session identifies it)."""
    if user_id is not None:
        return f"user:{user_id}"
    network = network_of(ip)
    if network:
        return f"net:{network}"
    return f"device:{device_id}" if device_id else None


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
    """The records behind one verification of one video: read in one query, written once per record.

    A pass touches a few records many times (once per sample), so they are read in one query and
    the credits are written at the end (``save``). A record advances at most once per video: the
    first blind server-verified result of a record on a video credits it (``ContributorVideo``),
    any further result of any session sharing that record on that video adds nothing. Reads see
    the credits already given in this verification. The probation budget is not written at the
    end but reserved when a check is drawn (``spot_check_due``): a conditional charge in the
    database, so passes running at once never spend more than the budget, and a ``ProbationCheck``
    row, so no pass of the same video draws a second one for the same record.
    """

    def __init__(
        self,
        sessions: Iterable[ClientSession],
        video_id: int,
        *,
        per_day: float,
        now: datetime,
        uploader_id: int | None = None,
    ) -> None:
        self._uploader_id = uploader_id
        keys = {record_key(session) for session in sessions}
        rows = Contributor.objects.filter(key__in=keys).values_list(
            "key", "consecutive_valid", "probation_checks", "created_at"
        )
        self._consecutive_valid = {key: valid for key, valid, _, _ in rows}
        self._probation_checks = {key: checks for key, _, checks, _ in rows}
        self._age_days = {key: max(0.0, (now - created).total_seconds() / 86_400) for key, _, _, created in rows}
        self._credited = set(
            ContributorVideo.objects.filter(contributor__key__in=keys, video_id=video_id).values_list(
                "contributor__key", flat=True
            )
        )
        self._checked = set(
            ProbationCheck.objects.filter(contributor__key__in=keys, video_id=video_id).values_list(
                "contributor__key", flat=True
            )
        )
        self._keys = keys
        self._video_id = video_id
        self._per_day = per_day
        self._new: set[str] = set()
        self._budgets_locked = False

    def consecutive_valid(self, session: ClientSession) -> int:
        """The record that sets the spot-check rate: credited videos, but no more than its age allows.

        A record grows by at most ``per_day`` per day since its first credit
        (``HYDRA_TRUST_RECORD_PER_DAY``): sessions opened in a burst buy nothing that time does
        not. A record without a row yet is empty.
        """
        return self._record(record_key(session))

    def _record(self, key: str) -> int:
        earned = self._consecutive_valid.get(key, 0)
        return min(earned, int(self._per_day * self._age_days.get(key, 0.0)))

    def record_valid(self, sessions: Iterable[ClientSession]) -> None:
        """Blind results the server verified: each record not yet credited for this video is, once.

        The uploader's own account earns nothing on its own videos: uploading is not independent work.
        """
        for session in sessions:
            if self._owns_video(session):
                continue
            key = record_key(session)
            if key not in self._credited:
                self._credited.add(key)
                self._new.add(key)
                self._consecutive_valid[key] = self._consecutive_valid.get(key, 0) + 1

    def vouched(
        self, newly: Sequence[ClientSession], agreeing: Iterable[ClientSession], policy: SpotCheckPolicy
    ) -> bool:
        """Whether every newcomer among ``newly`` agrees with an established contributor independent of it.

        ``agreeing``: every session whose features of the sample agree (accepted before or now). The
        uploader vouches for nobody on its own video, and newcomers never for each other: a sample
        agreed only among newcomers waits for an established replica or the server.
        """
        newcomers = [
            identity_of(s, self._uploader_id) for s in newly if not policy.established(self.consecutive_valid(s))
        ]
        if not newcomers:
            return True
        vouchers = [
            identity_of(s, self._uploader_id)
            for s in agreeing
            if not self._owns_video(s) and policy.established(self.consecutive_valid(s))
        ]
        return all(any(independent(voucher, newcomer) for voucher in vouchers) for newcomer in newcomers)

    def spot_check_due(self, sessions: Iterable[ClientSession], policy: SpotCheckPolicy, rng: random.Random) -> bool:
        """One draw at the established contributors' rate; failing that, each newcomer's probation draw.

        A newcomer is drawn only while its budget lasts, once per record and video over all passes,
        and not where a check would credit nothing (its record was credited on this video already, or
        the video is its own). A check the established rate drew verifies the newcomers for free. A
        probation draw counts only once its check is reserved in the database (``_reserve_check``).
        """
        sessions = list(sessions)
        if policy.draw([self.consecutive_valid(s) for s in sessions], rng):
            return True
        for session in sessions:
            key = record_key(session)
            if (
                policy.established(self.consecutive_valid(session))
                or self._owns_video(session)
                or key in self._credited
                or key in self._checked
            ):
                continue
            if policy.probation_draw(self._probation_checks.get(key, 0), rng) and self._reserve_check(key, policy):
                return True
        return False

    def _reserve_check(self, key: str, policy: SpotCheckPolicy) -> bool:
        """Charge a drawn probation check to the record, if its budget still allows and this video has none yet.

        Another pass may have spent the budget or checked this video since this one read the records:
        the charge is conditional on the stored count (an UPDATE that changes no row draws nothing)
        and on the unique ``ProbationCheck`` of the record and video, both in one savepoint. The budget
        locks are taken before (their own savepoint, released into the pass's transaction): rolling
        back a refused charge's savepoint would release them too in PostgreSQL.
        """
        with transaction.atomic():
            self._lock_budgets(policy)
        with transaction.atomic():
            contributor, _ = Contributor.objects.get_or_create(key=key)
            charged = Contributor.objects.filter(
                pk=contributor.pk, probation_checks__lt=policy.probation_checks
            ).update(probation_checks=F("probation_checks") + 1)
            if charged:
                _, charged = ProbationCheck.objects.get_or_create(contributor=contributor, video_id=self._video_id)
            if not charged:
                transaction.set_rollback(True)
        # Drawn here or not, this pass asks no more for this record: the stored count is what is left.
        spent = Contributor.objects.filter(key=key).values_list("probation_checks", flat=True).first()
        self._probation_checks[key] = spent or 0
        self._checked.add(key)
        return bool(charged)

    def _lock_budgets(self, policy: SpotCheckPolicy) -> None:
        """Before the first charge of a pass, lock every newcomer record of the pass that has budget left, in key order.

        The locks last until the pass's transaction ends; taking them all at once and in one order
        keeps two passes charging the same records from waiting on each other in a cycle.
        """
        if self._budgets_locked:
            return
        newcomers = {key for key in self._keys if not policy.established(self._record(key))}
        list(
            Contributor.objects.select_for_update()
            .filter(key__in=newcomers, probation_checks__lt=policy.probation_checks)
            .order_by("key")
            .values_list("pk", flat=True)
        )
        self._budgets_locked = True

    def _owns_video(self, session: ClientSession) -> bool:
        return self._uploader_id is not None and session.user_id == self._uploader_id

    def save(self) -> None:
        """Write the credits (the probation charges were written when drawn), records in key order.

        A credit another pass wrote first (the unique constraint) counts once.
        """
        if not self._new:
            return
        Contributor.objects.bulk_create([Contributor(key=key) for key in sorted(self._new)], ignore_conflicts=True)
        for contributor in Contributor.objects.filter(key__in=self._new).order_by("key"):
            _, created = ContributorVideo.objects.get_or_create(contributor=contributor, video_id=self._video_id)
            if created:
                Contributor.objects.filter(pk=contributor.pk).update(
                    consecutive_valid=F("consecutive_valid") + 1, valid_total=F("valid_total") + 1
                )
        self._new.clear()


def reset_records(sessions: Iterable[ClientSession]) -> None:
    """A caught session's record starts again: its account's, or its network's (the neighbours are checked anew)."""
    Contributor.objects.filter(key__in={record_key(session) for session in sessions}).update(consecutive_valid=0)
