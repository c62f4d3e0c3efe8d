"""RedisKeyStore: key records shared by a fleet through Redis (redis.asyncio, imported on first use).

Layout under ``prefix`` (``hardenkit:auth`` by default): ``<prefix>:key:<id>`` holds one record as
JSON, ``<prefix>:ids`` the set of ids, ``<prefix>:pepper`` the pepper fingerprint, ``<prefix>:lock`` the
lock that management changes hold. Each process caches lookups (found or not) for ``cache_ttl``
seconds in a bounded table, so a key revoked on one machine is refused on every machine within
``cache_ttl`` seconds (2 by default), and a busy server makes at most one Redis call per key id and
interval. When Redis cannot be reached, lookups raise :class:`~hardenkit.errors.StorageUnavailable`
(the middleware answers 503) except for ids still in the cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from typing import Any

from ..errors import ConfigurationError, StorageUnavailable
from .records import KeyRecord
from .stores import Change, KeyStore, T

__all__ = ["RedisKeyStore"]

logger = logging.getLogger("hardenkit.auth")

_DUMMY = json.dumps(
    {
        "id": "000000000000",
        "name": "unknown",
        "roles": ["readonly"],
        "hash": "0" * 64,
        "created": "2000-01-01T00:00:00+00:00",
        "expires": None,
        "rotated": None,
        "revoked": None,
        "replaced_by": None,
    }
)


class RedisKeyStore(KeyStore):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "hardenkit:auth",
        cache_ttl: float = 2.0,
        cache_size: int = 10_000,
        timeout: float = 0.5,
    ) -> None:
        if (
            isinstance(cache_ttl, bool)
            or not isinstance(cache_ttl, (int, float))
            or not 0 <= cache_ttl <= 300
        ):
            raise ConfigurationError(f"cache_ttl: expected seconds in [0, 300], got {cache_ttl!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ConfigurationError(f"cache_size: expected a whole number >= 1, got {cache_size!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
            raise ConfigurationError(f"timeout: expected seconds in (0, 60], got {timeout!r}")
        self.url = url
        self.prefix = prefix
        self.cache_ttl = float(cache_ttl)
        self.cache_size = cache_size
        self.timeout = float(timeout)
        self._cache: OrderedDict[str, tuple[float, KeyRecord | None]] = OrderedDict()
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._down = False

    def __repr__(self) -> str:
        return f"<RedisKeyStore prefix={self.prefix!r}>"

    def _redis(self) -> Any:
        loop = asyncio.get_running_loop()
        # redis.asyncio connections belong to the loop that made them: a new loop (a test client, a
        # worker restarted in the same process) gets a new client.
        if self._client is None or self._loop is not loop:
            try:
                import redis.asyncio as aioredis
            except ImportError:  # pragma: no cover - the test extra installs redis
                raise ConfigurationError(
                    "the Redis key store needs redis-py: pip install 'hardenkit[redis]'"
                ) from None
            self._client = aioredis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                decode_responses=True,
            )
            self._loop = loop
        return self._client

    def _key(self, key_id: str) -> str:
        return f"{self.prefix}:key:{key_id}"

    def _failed(self, exc: Exception) -> StorageUnavailable:
        if not self._down:
            logger.error("API key store (Redis) unreachable: %s", exc)
            self._down = True
        return StorageUnavailable(f"Redis key store unreachable: {exc}")

    def _succeeded(self) -> None:
        if self._down:
            logger.warning("API key store (Redis) reachable again")
            self._down = False

    async def get(self, key_id: str) -> KeyRecord | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            raw = await self._redis().get(self._key(key_id))
        except Exception as exc:
            if cached is not None:
                return cached[1]  # stale but known: better than refusing a known client
            raise self._failed(exc) from None
        self._succeeded()
        # An unknown id decodes a record of the same shape, so a lookup's time does not tell which
        # ids exist (the rest of the check already does the same work on both paths).
        decoded = KeyRecord.from_dict(json.loads(raw if raw is not None else _DUMMY))
        record = decoded if raw is not None else None
        if self.cache_ttl > 0:
            self._cache[key_id] = (now + self.cache_ttl, record)
            self._cache.move_to_end(key_id)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return record

    async def _read_all(self, client: Any) -> dict[str, KeyRecord]:
        ids = sorted(await client.smembers(f"{self.prefix}:ids"))
        if not ids:
            return {}
        raws = await client.mget([self._key(key_id) for key_id in ids])
        return {
            key_id: KeyRecord.from_dict(json.loads(raw))
            for key_id, raw in zip(ids, raws, strict=True)
            if raw is not None
        }

    async def all(self) -> list[KeyRecord]:
        try:
            return list((await self._read_all(self._redis())).values())
        except Exception as exc:
            raise self._failed(exc) from None

    async def fingerprint(self) -> str | None:
        value: str | None = await self._redis().get(f"{self.prefix}:pepper")
        return value

    async def modify(self, change: Change[T], *, fingerprint: str | None = None) -> T:
        client = self._redis()
        async with client.lock(f"{self.prefix}:lock", timeout=30, blocking_timeout=30):
            recorded = await client.get(f"{self.prefix}:pepper")
            if fingerprint is not None and recorded is not None and recorded != fingerprint:
                raise ConfigurationError(
                    f"the Redis key store was written with another pepper (fingerprint {recorded}, yours "
                    f"{fingerprint}); set HARDENKIT_AUTH_PEPPER to the one it was created with"
                )
            before = await self._read_all(client)
            records = dict(before)
            result = change(records)
            async with client.pipeline(transaction=True) as pipe:
                if recorded is None and fingerprint is not None:
                    pipe.set(f"{self.prefix}:pepper", fingerprint)
                for key_id in before.keys() - records.keys():
                    pipe.delete(self._key(key_id))
                    pipe.srem(f"{self.prefix}:ids", key_id)
                for key_id, record in records.items():
                    if before.get(key_id) != record:
                        pipe.set(self._key(key_id), json.dumps(record.to_dict()))
                        pipe.sadd(f"{self.prefix}:ids", key_id)
                await pipe.execute()
        self._cache.clear()
        return result

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
