"""Client identity for the rate limiter: the peer address, trusted proxies, key functions.

Nothing here trusts a client-supplied header unless the peer that sent it is a
configured trusted proxy; every parser is bounded, so a malformed or oversized
header degrades to "use the peer address", never to an exception.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from starlette.types import Scope

    IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Bytes of a forwarding header that are looked at; longer values are cut from the
#: left, which keeps the right-most (proxy-appended, trustworthy) part.
MAX_FORWARDED_BYTES = 8192
#: Hops walked from the right before giving up on finding an untrusted address.
MAX_HOPS = 32
#: Keys longer than this (or with unusual characters) are replaced by a digest, so a
#: huge API key cannot bloat the storage and odd bytes cannot upset memcached.
MAX_KEY_CHARS = 128
_SAFE_KEY = re.compile(r"^[A-Za-z0-9._:\-\[\]@+=]+$")

UNKNOWN_CLIENT = "unknown"


def parse_networks(values: Iterable[str] | str | None, *, option: str) -> tuple[IPNetwork, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = [part.strip() for part in values.split(",") if part.strip()]
    networks: list[IPNetwork] = []
    for value in values:
        if not isinstance(value, str):
            raise ConfigurationError(f"{option}: expected CIDR strings like '10.0.0.0/8', got {value!r}")
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ConfigurationError(
                f"{option}: {value!r} is not an IP address or network; write CIDRs like "
                "'10.0.0.0/8', '192.168.1.7' or 'fd00::/8'"
            ) from None
    return tuple(networks)


def parse_ip(text: str) -> IPAddress | None:
    """An address from a header or scope value, or None; accepts ports and IPv6 brackets."""
    text = text.strip().strip('"').strip()
    if not text or len(text) > 64:
        return None
    if text.startswith("["):  # "[2001:db8::1]:4711" or "[2001:db8::1]"
        end = text.find("]")
        if end == -1:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # "192.0.2.1:8080"
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _header_values(scope: Scope, name: bytes) -> str:
    """All values of header ``name`` joined with commas, as one list (RFC 9110 5.3)."""
    parts = [value for key, value in scope.get("headers", ()) if key.lower() == name]
    if not parts:
        return ""
    joined = b",".join(parts)
    if len(joined) > MAX_FORWARDED_BYTES:
        joined = joined[-MAX_FORWARDED_BYTES:]
    return joined.decode("latin-1")


def _forwarded_for(text: str) -> list[str]:
    """The ``for=`` values of a ``Forwarded`` header (RFC 7239), left to right."""
    found: list[str] = []
    for element in text.split(","):
        value = ""
        for pair in element.split(";"):
            name, sep, raw = pair.partition("=")
            if sep and name.strip().lower() == "for":
                value = raw.strip()
        # An element without for= still is a hop; keep its place so counting stays right.
        found.append(value)
    return found


class ClientAddress:
    """Finds the client address of a request, honouring only trusted proxies."""

    def __init__(
        self,
        *,
        trusted_proxies: Sequence[IPNetwork],
        proxy_header: str,
        ipv6_prefix: int,
    ) -> None:
        self.trusted = tuple(trusted_proxies)
        self.proxy_header = proxy_header
        self.ipv6_prefix = ipv6_prefix

    def peer(self, scope: Scope) -> str | None:
        client = scope.get("client")
        if not client:
            return None
        host = client[0]
        return host if isinstance(host, str) and host else None

    def address(self, scope: Scope) -> IPAddress | None:
        """The client's IP address, or None when it cannot be known."""
        peer_text = self.peer(scope)
        peer = parse_ip(peer_text) if peer_text is not None else None
        if peer is None or not self.trusted or not in_networks(peer, self.trusted):
            return peer
        if self.proxy_header == "forwarded":
            hops = _forwarded_for(_header_values(scope, b"forwarded"))
        else:
            xff = _header_values(scope, b"x-forwarded-for")
            if not xff and self.proxy_header == "auto":
                # "auto": X-Forwarded-For when the request has it, else Forwarded. A proxy
                # that sets X-Forwarded-For always does, so a forged Forwarded is never read.
                hops = _forwarded_for(_header_values(scope, b"forwarded"))
            else:
                hops = xff.split(",")
        # Walk from the right: each trusted proxy vouches for the hop on its left.
        client = peer
        for raw in reversed(hops[-MAX_HOPS:]):
            hop = parse_ip(raw)
            if hop is None:
                # Garbage or an obfuscated identifier: the last trusted hop is all we know.
                return client
            client = hop
            if not in_networks(hop, self.trusted):
                return hop
        return client

    def key(self, scope: Scope) -> str:
        """The storage key for ``key="ip"``: the address, an IPv6 client's /prefix network."""
        if not self.trusted:
            peer = self.peer(scope)
            if peer is None:
                return UNKNOWN_CLIENT
            if ":" not in peer:
                # Fast path: an IPv4 peer (or a test client's name) is its own key.
                return safe_key(peer)
        address = self.address(scope)
        if address is None:
            peer = self.peer(scope)
            return safe_key(peer) if peer is not None else UNKNOWN_CLIENT
        if isinstance(address, ipaddress.IPv6Address) and self.ipv6_prefix < 128:
            # One IPv6 subscriber usually holds a whole /64: limit the network, not each address.
            return str(ipaddress.IPv6Network((address, self.ipv6_prefix), strict=False))
        return str(address)


def safe_key(text: str) -> str:
    """``text`` if short and plain, else a digest (keys go into storage key names)."""
    if len(text) <= MAX_KEY_CHARS and _SAFE_KEY.match(text):
        return text
    return "sha256-" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def header_value(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower-case bytes), or None."""
    for key, value in scope.get("headers", ()):
        if key == name or key.lower() == name:
            text: str = value.decode("latin-1").strip()
            return text or None
    return None
