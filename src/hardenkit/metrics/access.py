"""Who may read ``/metrics``: an address allow-list, a bearer token, nothing else.

Metrics show routes, error rates and traffic volumes: worth hiding from the
internet. The default allow-list holds loopback and the private ranges, where
scrapers live. The address is the TCP peer (``scope["client"]``), never a header
a client can write; and a request relayed by a proxy (it carries
``Forwarded``/``X-Forwarded-For``/``X-Real-IP``) is not let in by address at all,
because behind a proxy on a private network every client would look private.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigurationError

__all__ = ["DEFAULT_ALLOW", "AccessPolicy"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Loopback, RFC 1918, RFC 4193 unique-local IPv6 and CGNAT (RFC 6598, used by some clusters).
DEFAULT_ALLOW: tuple[str, ...] = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
)

_FORWARDED = frozenset({b"forwarded", b"x-forwarded-for", b"x-real-ip"})


def _networks(values: Iterable[str], *, option: str) -> tuple[Network, ...]:
    if isinstance(values, str):
        raise ConfigurationError(f"{option}: takes a list of networks, e.g. [{values!r}]")
    found: list[Network] = []
    for value in values:
        try:
            found.append(ipaddress.ip_network(value, strict=False))
        except (TypeError, ValueError):  # noqa: PERF203 - configuration time, once
            raise ConfigurationError(
                f"{option}: {value!r} is not an address or network; write e.g. '10.0.0.0/8' or '127.0.0.1'"
            ) from None
    return tuple(found)


class AccessPolicy:
    """Decides whether a scope may read the metrics."""

    def __init__(self, *, allow: Iterable[str] | None, token: str | None, trust_forwarded: bool) -> None:
        self.networks = _networks(DEFAULT_ALLOW if allow is None else allow, option="allow")
        if token is not None and (not isinstance(token, str) or len(token) < 16 or not token.isascii()):
            raise ConfigurationError(
                "token: use a random ASCII string of at least 16 characters, "
                "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        self._expected = None if token is None else f"Bearer {token}".encode("ascii")
        self.trust_forwarded = bool(trust_forwarded)

    def allows(self, scope: Mapping[str, Any]) -> bool:
        headers = scope.get("headers") or ()
        if self._expected is not None:
            for name, value in headers:
                if name == b"authorization" and hmac.compare_digest(value, self._expected):
                    return True
        if not self.networks:
            return False
        if not self.trust_forwarded and any(name in _FORWARDED for name, _ in headers):
            return False
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)
