"""Which sessions compute which sample times: the server decides, never the client.

Every sample time must be computed by at least ``replicas`` *independent* sessions before
agreement can accept it without the server. Two sessions are independent when nothing ties
them to one person: different accounts, different device ids and different networks (an IPv4
/24 or an IPv6 /48). The uploader's own sessions are never counted towards that quorum: they
may compute (every viewer helps), but only as a cross-check against what others agreed on.

This module is pure (no Django); ``inference.trust.services`` stores the plans it makes.
"""

from __future__ import annotations

import ipaddress
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


def plan_assignment(
    sample_times: Sequence[int],
    newcomer: Identity,
    holders: Mapping[int, Sequence[Identity]],
    *,
    replicas: int,
    minimum: int,
    settled: Set[int] = frozenset(),
) -> list[int]:
    """The sample times a new session should compute.

    ``holders[t]`` are the live sessions already assigned (or done with) time ``t``; ``settled``
    times need no more replicas (the server computed them). The
    newcomer first takes every time that still lacks independent replicas and to which it adds
    independence; then, so that every session does some checkable work, it is topped up to
    ``minimum`` times with the least-held others (extra replicas cost the server nothing and
    expose a liar the first time it disagrees with the rest).
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
    extra.sort()
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
