"""Which sessions compute which sample times: the server decides, never the client.

Every sample time must be computed by at least ``replicas`` *independent* sessions before
agreement can accept it without the server. Two sessions are independent when nothing ties
them to one person: different accounts, different device ids and different networks (an IPv4
/24 or an IPv6 /48). The uploader's own sessions are never counted towards that quorum: they
may compute (every viewer helps), but only as a cross-check against what others agreed on.

The server also chooses *which* sessions replicate which samples, at random: a session's extra
work (the top-ups that cross-check what others sent) is drawn from a generator seeded with the
server's secret and the session's id (``assignment_rng``), so a client can neither choose its
samples nor predict which samples a later honest viewer will cross-check (a liar cannot put its
lies where audits reach last).

This module is pure (no Django); ``inference.trust.services`` stores the plans it makes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """What ties a session to a person, as far as the server can tell."""

    session_id: str
    user_id: int | None = None
    device_id: str = ""
    network: str = ""
    is_uploader: bool = False

    @property
    def counts_for_quorum(self) -> bool:
        return not self.is_uploader


def network_of(ip: str | None) -> str:
    """The network a session's address belongs to: its /24 (IPv4) or /48 (IPv6); "" when unknown."""
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def independent(a: Identity, b: Identity) -> bool:
    """True when two sessions share no account, device or network (unknown values tie nothing)."""
    if a.session_id == b.session_id:
        return False
    if a.user_id is not None and a.user_id == b.user_id:
        return False
    if a.device_id and a.device_id == b.device_id:
        return False
    return not (a.network and a.network == b.network)


def independent_quorum(identities: Iterable[Identity]) -> list[Identity]:
    """A greedy (in the given order) set of mutually independent sessions that count for the quorum."""
    chosen: list[Identity] = []
    for identity in identities:
        if identity.counts_for_quorum and all(independent(identity, other) for other in chosen):
            chosen.append(identity)
    return chosen


def spread_audience(arrivals: Iterable[tuple[float, Identity]], window: float) -> int:
    """How many independent viewers arrived apart: ``(arrival seconds, identity)``, counted in arrival order.

    A viewer counts when it is independent of every counted one (``independent_quorum``'s rule)
    and arrived at least ``window`` seconds after the last counted one: identities that arrive
    together (a group told to watch at once) count as one, however many networks they use.
    """
    counted: list[Identity] = []
    last: float | None = None
    for arrived, identity in sorted(arrivals, key=lambda arrival: arrival[0]):
        if not identity.counts_for_quorum or not all(independent(identity, other) for other in counted):
            continue
        if last is None or arrived - last >= window:
            counted.append(identity)
            last = arrived
    return len(counted)


def assignment_rng(secret: str, session_id: str) -> random.Random:
    """The generator that draws one session's extra work: keyed by the server's secret, unknown to any client."""
    digest = hmac.new(secret.encode(), f"assignment:{session_id}".encode(), hashlib.sha256).digest()
    return random.Random(int.from_bytes(digest, "big"))


def plan_assignment(
    sample_times: Sequence[int],
    newcomer: Identity,
    holders: Mapping[int, Sequence[Identity]],
    *,
    replicas: int,
    minimum: int,
    rng: random.Random,
    settled: Set[int] = frozenset(),
) -> list[int]:
    """The sample times a new session should compute.

    ``holders[t]`` are the live sessions already assigned (or done with) time ``t``; ``settled``
    times need no more replicas (the server computed them). The
    newcomer first takes every time that still lacks independent replicas and to which it adds
    independence; then, so that every session does some checkable work, it is topped up to
    ``minimum`` times with the least-held others, drawn at random by ``rng`` among equally held
    ones (extra replicas cost the server nothing, expose a liar the first time it disagrees
    with the rest, and land where no client can foresee).
    """
    needed: list[int] = []
    extra: list[tuple[int, int]] = []
    for t in sample_times:
        current = list(holders.get(t, ()))
        if any(h.session_id == newcomer.session_id for h in current):
            continue
        quorum = independent_quorum(current)
        adds_independence = newcomer.counts_for_quorum and all(independent(newcomer, h) for h in quorum)
        if t not in settled and len(quorum) < replicas and adds_independence:
            needed.append(t)
        else:
            extra.append((len(current), t))
    rng.shuffle(extra)
    extra.sort(key=lambda held: held[0])  # stable: least-held first, ties in random order
    top_up = [t for _, t in extra[: max(0, minimum - len(needed))]]
    return sorted(needed + top_up)


def under_replicated(
    sample_times: Sequence[int],
    holders: Mapping[int, Sequence[Identity]],
    *,
    replicas: int,
    settled: Set[int] = frozenset(),
) -> list[int]:
    """Times that are not settled and whose live holders do not include ``replicas`` independent sessions."""
    return [t for t in sample_times if t not in settled and len(independent_quorum(holders.get(t, ()))) < replicas]
