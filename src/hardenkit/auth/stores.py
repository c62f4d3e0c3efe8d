"""Key stores behind one small interface: a JSON file, environment variables, memory (and Redis, in
``redis_store``).

A store answers ``get(key_id)`` on the request path and applies management changes atomically with
``modify(change)``, where ``change`` edits a ``{key_id: KeyRecord}`` dict in place. Stores hold only
:class:`~hardenkit.auth.records.KeyRecord` objects: hashes, never secrets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..errors import ConfigurationError, StateError
from .records import KeyRecord, check_roles

__all__ = ["EnvKeyStore", "FileKeyStore", "KeyStore", "MemoryKeyStore", "open_store"]

logger = logging.getLogger("hardenkit.auth")

T = TypeVar("T")
Change = Callable[[dict[str, KeyRecord]], T]
FILE_FORMAT = "hardenkit-keys/1"
ENV_PREFIX = "HARDENKIT_APIKEY_"


class KeyStore:
    """The interface every store offers (subclass it for your own)."""

    #: False for stores that cannot be changed at runtime (environment variables).
    writable: bool = True
    #: The pepper fingerprint recorded by the store, when it records one.
    pepper_fingerprint: str | None = None

    async def get(self, key_id: str) -> KeyRecord | None:
        """The record for ``key_id`` (whatever its state), or None. Called on the request path."""
        raise NotImplementedError

    async def all(self) -> list[KeyRecord]:
        """Every record, for listing."""
        raise NotImplementedError

    async def modify(self, change: Change[T], *, fingerprint: str | None = None) -> T:
        """Run ``change`` on ``{key_id: record}`` atomically (a lock held) and save what it left."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections (Redis); a no-op for the others."""


class MemoryKeyStore(KeyStore):
    """Records in a dict: for tests, benchmarks and apps that build their keys in code."""

    def __init__(self, records: Mapping[str, KeyRecord] | None = None) -> None:
        self._records: dict[str, KeyRecord] = dict(records or {})

    async def get(self, key_id: str) -> KeyRecord | None:
        return self._records.get(key_id)

    async def all(self) -> list[KeyRecord]:
        return list(self._records.values())

    async def modify(self, change: Change[T], *, fingerprint: str | None = None) -> T:
        records = dict(self._records)
        result = change(records)
        self._records = records
        return result


def _decode_file(data: Any, path: str) -> tuple[dict[str, KeyRecord], str | None]:
    if data == {}:
        return {}, None
    if (
        not isinstance(data, dict)
        or data.get("format") != FILE_FORMAT
        or not isinstance(data.get("keys"), dict)
    ):
        raise StateError(
            f"{path} is not a hardenkit key file (expected {{'format': {FILE_FORMAT!r}, 'keys': {{...}}}})"
        )
    records: dict[str, KeyRecord] = {}
    for key_id, raw in data["keys"].items():
        try:
            record = KeyRecord.from_dict(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{path}: key {key_id!r} is malformed: {exc}") from None
        records[record.key_id] = record
    fingerprint = data.get("pepper")
    return records, fingerprint if isinstance(fingerprint, str) else None


class FileKeyStore(KeyStore):
    """A JSON file of key records, shared by the CLI and every server process reading it.

    Writes go through :class:`hardenkit.lock.JsonState` (a file lock, atomic replace, backups), so
    concurrent ``hardenkit keys create`` runs lose nothing. Servers check the file's identity (inode,
    size, mtime) at most every ``reload_interval`` seconds, in a worker thread, and reload it when it
    changed: a revoke takes effect within that interval, without a restart. A file that cannot be
    parsed keeps the last good snapshot in force, and the problem is logged once.
    """

    def __init__(self, path: str | os.PathLike[str], *, reload_interval: float = 1.0) -> None:
        from ..lock import JsonState

        if (
            isinstance(reload_interval, bool)
            or not isinstance(reload_interval, (int, float))
            or not (0 <= reload_interval <= 3600)
        ):
            raise ConfigurationError(
                f"reload_interval: expected seconds in [0, 3600], got {reload_interval!r}"
            )
        self.path = os.path.abspath(os.fspath(path))
        self._state = JsonState(self.path, backups=3)
        self.reload_interval = float(reload_interval)
        self._records: dict[str, KeyRecord] = {}
        self._identity: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        # Set while a reload runs; requests arriving meanwhile use the current snapshot, except
        # before the first load, when there is none yet: they wait for it.
        self._reloading: Any = None
        self._loaded = False
        self._broken: str | None = None

    def __repr__(self) -> str:
        return f"<FileKeyStore {self.path!r}>"

    def _identity_now(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load(self) -> tuple[tuple[int, int, int] | None, dict[str, KeyRecord], str | None]:
        identity = self._identity_now()
        if identity is None:
            return None, {}, None
        records, fingerprint = _decode_file(self._state.read(), self.path)
        return identity, records, fingerprint

    def load_now(self) -> None:
        """Read the file at once (blocking); servers call it in a worker thread."""
        identity, records, fingerprint = self._load()
        self._identity, self._records, self.pepper_fingerprint = identity, records, fingerprint
        self._checked = time.monotonic()
        self._loaded = True

    async def _refresh(self) -> None:
        running = self._reloading
        if running is not None:
            if not self._loaded:
                await running.wait()
                if not self._loaded:  # the first load was cancelled: try again
                    await self._refresh()
            return
        if time.monotonic() - self._checked < self.reload_interval:
            return
        import anyio
        import anyio.to_thread

        done = self._reloading = anyio.Event()
        try:
            identity = await anyio.to_thread.run_sync(self._identity_now)
            if identity is None and self._broken != "missing":
                logger.warning(
                    "API key file %s does not exist; every key is refused until it does", self.path
                )
                self._broken = "missing"
            if identity != self._identity:
                try:
                    identity, records, fingerprint = await anyio.to_thread.run_sync(self._load)
                except (StateError, OSError, ValueError) as exc:
                    if self._broken != str(exc):
                        logger.error(
                            "API key file %s cannot be used (%s); keeping the last good keys", self.path, exc
                        )
                        self._broken = str(exc)
                else:
                    self._identity, self._records, self.pepper_fingerprint = identity, records, fingerprint
                    self._broken = None
            self._checked = time.monotonic()
            self._loaded = True
        finally:
            self._reloading = None
            done.set()

    async def get(self, key_id: str) -> KeyRecord | None:
        await self._refresh()
        return self._records.get(key_id)

    async def all(self) -> list[KeyRecord]:
        import anyio.to_thread

        await anyio.to_thread.run_sync(self.load_now)
        return list(self._records.values())

    def modify_sync(self, change: Change[T], *, fingerprint: str | None = None) -> T:
        """``modify`` for scripts and the CLI (blocking)."""
        new_file = not os.path.exists(self.path)
        with self._state.update() as data:
            records, recorded = _decode_file(data, self.path)
            if fingerprint is not None and recorded is not None and recorded != fingerprint:
                raise ConfigurationError(
                    f"{self.path} was written with another pepper (fingerprint {recorded}, yours {fingerprint}); "
                    "set HARDENKIT_AUTH_PEPPER to the one the file was created with"
                )
            result = change(records)
            data.clear()
            data["format"] = FILE_FORMAT
            data["pepper"] = recorded or fingerprint
            data["keys"] = {key_id: record.to_dict() for key_id, record in sorted(records.items())}
        if new_file:
            # Hashes only, but whoever can write the file can add a key: owner-only from the start
            # (later writes keep the mode, as atomic_write copies it).
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
        self.load_now()
        return result

    async def modify(self, change: Change[T], *, fingerprint: str | None = None) -> T:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(lambda: self.modify_sync(change, fingerprint=fingerprint))


def parse_env_entry(name: str, value: str) -> KeyRecord:
    """``id=<id>;hash=<hex>;roles=a,b[;expires=<iso>]`` as ``hardenkit keys create --store env`` prints."""
    fields: dict[str, str] = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        field, sep, text = part.partition("=")
        if not sep:
            raise ValueError(f"expected field=value, got {part!r}")
        fields[field.strip()] = text.strip()
    roles = check_roles([role for role in fields.get("roles", "").split(",") if role], option=name)
    return KeyRecord.from_dict(
        {
            "id": fields["id"],
            "name": name,
            "roles": list(roles),
            "hash": fields["hash"],
            "created": fields.get("created"),
            "expires": fields.get("expires") or None,
        }
    )


class EnvKeyStore(KeyStore):
    """Key records from ``HARDENKIT_APIKEY_<NAME>`` variables (hashes only), read once at start-up.

    Read-only: rotating or revoking means changing the variables and restarting, as for any setting
    that lives in the environment.
    """

    writable = False

    def __init__(self, environ: Mapping[str, str] | None = None, *, prefix: str = ENV_PREFIX) -> None:
        source = os.environ if environ is None else environ
        self._records: dict[str, KeyRecord] = {}
        for variable, value in source.items():
            if not variable.startswith(prefix) or variable == prefix:
                continue
            name = variable[len(prefix) :].lower().replace("__", ".")
            try:
                record = parse_env_entry(name, value)
            except (KeyError, ValueError) as exc:
                raise ConfigurationError(
                    f"{variable}: expected 'id=<id>;hash=<64 hex>;roles=a,b[;expires=<ISO time>]' "
                    f"(as 'hardenkit keys create --store env' prints): {exc}"
                ) from None
            self._records[record.key_id] = record

    async def get(self, key_id: str) -> KeyRecord | None:
        return self._records.get(key_id)

    async def all(self) -> list[KeyRecord]:
        return list(self._records.values())

    async def modify(self, change: Change[T], *, fingerprint: str | None = None) -> T:
        raise ConfigurationError(
            "the environment key store is read-only: change the HARDENKIT_APIKEY_* variables and restart"
        )


def open_store(spec: KeyStore | str | os.PathLike[str], **options: Any) -> KeyStore:
    """A store from its description: an instance, ``"env"``, ``"redis://..."``, ``"memory"`` or a file path."""
    if isinstance(spec, KeyStore):
        return spec
    text = os.fspath(spec)
    if not isinstance(text, str) or not text:
        raise ConfigurationError(
            f"store: expected a file path, 'env', 'memory' or a redis:// URL, got {spec!r}"
        )
    if text == "env":
        return EnvKeyStore()
    if text == "memory":
        return MemoryKeyStore()
    if text.split("://", 1)[0] in ("redis", "rediss", "unix", "valkey", "valkeys"):
        from .redis_store import RedisKeyStore

        return RedisKeyStore(text, **options)
    if "://" in text and not text.startswith("file://"):
        raise ConfigurationError(
            f"store: unknown scheme in {text!r}; use a file path, 'env' or redis://host:6379/0"
        )
    return FileKeyStore(text.removeprefix("file://"), **options)
