"""Storage URIs and the network clients behind them: scheme parsing, masking, pools, closing.

Imports the client library (redis, valkey) lazily, when a pool is built.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def mask_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable storage uri>"
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def scheme_of(uri: str) -> str:
    return uri.partition("://")[0].lower()


# -- limits' strategies ------------------------------------------------------------------


_POOLED = {
    "redis": "redis",
    "rediss": "redis",
    "redis+unix": "redis",
    "valkey": "valkey",
    "valkeys": "valkey",
}


def client_options(uri: str, options: dict[str, Any], timeout: float = 0.5) -> dict[str, Any]:
    """limits.aio options for ``uri``: a *blocking* connection pool for plain Redis/Valkey.

    redis-py's default asyncio pool raises "Too many connections" under a burst, which
    would look like an outage; a blocking pool makes the burst wait for a connection
    instead (bounded by storage_timeout).
    """
    scheme = scheme_of(uri)
    family = _POOLED.get(scheme)
    if family is None or "connection_pool" in options:
        return options
    module = importlib.import_module(f"{family}.asyncio")
    connection = {k: v for k, v in options.items() if k != "implementation"}
    max_connections = int(connection.pop("max_connections", 64))
    # A hung server must not hold a connection for ever (calls give up at storage_timeout).
    connection.setdefault("socket_timeout", max(1.0, 2 * timeout))
    connection.setdefault("socket_connect_timeout", max(1.0, 2 * timeout))
    pool = module.BlockingConnectionPool.from_url(
        uri.replace(f"{family}+unix://", "unix://", 1),
        max_connections=max_connections,
        timeout=None,
        **connection,
    )
    kept = {"implementation": options["implementation"]} if "implementation" in options else {}
    return {**kept, "connection_pool": pool}


async def _close_storage(storage: Any) -> None:
    """Close the client and pool behind a limits.aio Redis storage (other storages: nothing)."""
    bridge = getattr(storage, "bridge", None)
    if bridge is None:
        return
    client = bridge.get_connection()
    pool = getattr(client, "connection_pool", None)
    close = getattr(client, "aclose", None)
    if close is not None:
        await close()
    if pool is not None:
        await pool.disconnect()
