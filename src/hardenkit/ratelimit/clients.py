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


#: Connections per process (per event loop) unless storage_options says otherwise.
DEFAULT_MAX_CONNECTIONS = 64


def client_options(uri: str, options: dict[str, Any], timeout: float = 0.5) -> tuple[dict[str, Any], int]:
    """limits.aio options for ``uri`` and the number of connections its pool may hold.

    Plain Redis/Valkey get a *blocking* pool: redis-py's default asyncio pool raises
    "Too many connections" under a burst, which would look like an outage. Cluster
    and Sentinel clients build their own pools; they get the same bound, and the
    script engine never asks them for more connections than that at once. Socket
    timeouts are a backstop: calls give up at storage_timeout on their own.
    """
    scheme = scheme_of(uri)
    connection = {k: v for k, v in options.items() if k != "implementation"}
    kept = {"implementation": options["implementation"]} if "implementation" in options else {}
    max_connections = int(connection.pop("max_connections", DEFAULT_MAX_CONNECTIONS))
    if "connection_pool" in options:
        return options, max_connections
    if scheme.startswith(("redis", "valkey")):
        connection.setdefault("socket_timeout", max(1.0, 2 * timeout))
        connection.setdefault("socket_connect_timeout", max(1.0, 2 * timeout))
    family = _POOLED.get(scheme)
    if family is None:
        if scheme.endswith(("+cluster", "+sentinel")):
            return {**kept, **connection, "max_connections": max_connections}, max_connections
        return options, max_connections
    module = importlib.import_module(f"{family}.asyncio")
    retry = importlib.import_module(f"{family}.asyncio.retry").Retry
    backoff = importlib.import_module(f"{family}.backoff").NoBackoff
    # No retries inside the client: the caller retries once on a fresh connection.
    connection.setdefault("retry", retry(backoff(), 0))
    pool = module.BlockingConnectionPool.from_url(
        uri.replace(f"{family}+unix://", "unix://", 1),
        max_connections=max_connections,
        timeout=None,
        **connection,
    )
    return {**kept, "connection_pool": pool}, max_connections


async def _close_storage(storage: Any) -> None:
    """Close the clients and pools behind a limits.aio Redis storage (other storages: nothing).

    A Sentinel storage also holds connections to the sentinels and a replica client.
    """
    bridge = getattr(storage, "bridge", None)
    if bridge is None:
        return
    clients = [bridge.get_connection(), getattr(bridge, "storage_replica", None)]
    sentinel = getattr(bridge, "sentinel", None)
    clients += list(getattr(sentinel, "sentinels", ()))
    for client in clients:
        if client is None:
            continue
        pool = getattr(client, "connection_pool", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()
        if pool is not None:
            await pool.disconnect()
