"""The client's IP address, believing ``X-Forwarded-For`` only as far as it was written by proxies we trust.

Rate limits (reports, websocket connects and messages, logins) and the trust layer's rule that
independent viewers come from different /24 networks all key on the client's address, so a
client must not be able to choose it. A proxy such as nginx with ``$proxy_add_x_forwarded_for``
*appends* the address it saw to whatever the client sent, so the header reads
``<anything the client wrote>, <client as seen by proxy 1>, <proxy 1 as seen by proxy 2> ...``.
Only the right-hand end is trustworthy. The rule (as in RFC 7239's advice and
Werkzeug's ``ProxyFix``), with ``HYDRA_TRUSTED_PROXIES`` the networks of our own proxies:

- the peer of the TCP connection is not a trusted proxy: it is the client; the header is ignored;
- otherwise walk the header from the right, skipping trusted proxies; the first address that
  is not one is the client (the rightmost untrusted hop);
- an entry that is not an IP address ends the walk: the last trusted hop is used.

Daphne must run *without* ``--proxy-headers`` (which takes the leftmost entry, the one the
client chose); the Procfile does. With ``HYDRA_TRUSTED_PROXIES`` empty (the default) the header
is never read: the right setting when daphne is reached directly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:  # settings.py imports this module: nothing here may load Django's request machinery
    from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Iterable[str]) -> list[Network]:
    """``HYDRA_TRUSTED_PROXIES`` entries (addresses or CIDR networks); ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {value!r}") from None
    return networks


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str | None:
    """The client's address given the TCP peer, the ``X-Forwarded-For`` value and the trusted proxy networks."""
    peer_address = _address(peer) if peer else None
    if peer_address is None:
        return peer
    if not trusted or not _trusted(peer_address, trusted):
        return str(peer_address)
    client = peer_address
    for hop in reversed([hop for hop in (forwarded_for or "").split(",") if hop.strip()]):
        hop_address = _address(hop)
        if hop_address is None:
            break
        client = hop_address
        if not _trusted(hop_address, trusted):
            break
    return str(client)


def from_request(request: HttpRequest) -> str | None:
    """The client address of a Django request (also ``AXES_CLIENT_IP_CALLABLE``)."""
    return client_address(
        request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"), settings.HYDRA_TRUSTED_PROXIES
    )


def from_scope(scope: dict[str, Any]) -> str | None:
    """The client address of an ASGI connection (the websocket consumer's scope)."""
    peer = (scope.get("client") or [None])[0]
    values = [value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"x-forwarded-for"]
    return client_address(peer, ",".join(values), settings.HYDRA_TRUSTED_PROXIES)
