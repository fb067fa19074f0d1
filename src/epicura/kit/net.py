"""The client's address, trusting `X-Forwarded-For` only from configured proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError:
        return None


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in net for net in proxies)


def client_ip(conn: HTTPConnection, proxies: Sequence[Network]) -> str:
    """Walk `X-Forwarded-For` from the right while the hop is a trusted proxy; the first
    untrusted hop is the client. Without a trusted peer the header is ignored."""
    peer = conn.client.host if conn.client else "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in conn.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        if _parse(hop) is None:
            break
        client = hop
        if not _trusted(hop, proxies):
            break
    return client
