"""Key management on any store: create, rotate, revoke, list, and the one verification routine that the
middleware, the CLI's ``verify`` and the admin app share."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from ..errors import ConfigurationError
from .keyformat import generate_key, new_key_id, parse_key
from .records import KeyHasher, KeyRecord, Principal, check_name, check_roles, parse_duration, utcnow
from .stores import KeyStore

__all__ = ["KeyManager", "authenticate"]


async def authenticate(
    text: str, store: KeyStore, hasher: KeyHasher, *, now: datetime | None = None
) -> tuple[KeyRecord | None, str]:
    """Check a presented key: (the record, "ok") or (None, why).

    A malformed key (wrong shape or checksum) is refused without a lookup. For well-formed keys the
    unknown-id and wrong-secret paths do the same work: one store lookup, one HMAC, one constant-time
    comparison (against a dummy hash when the id is unknown), so neither status, body nor time tells
    an attacker which ids exist. The state (expired, revoked) is looked at only after the hash
    matched.
    """
    parsed = parse_key(text)
    if parsed is None:
        return None, "malformed"
    record = await store.get(parsed.key_id)
    if not hasher.matches(text, record.hash if record is not None else None):
        return None, "unknown"
    assert record is not None  # matches() is False for a missing record
    state = record.state(now or utcnow())
    if state != "active":
        return None, state
    return record, "ok"


def expand_roles(roles: Iterable[str], implies: dict[str, tuple[str, ...]]) -> frozenset[str]:
    """The roles with everything they imply (admin -> operator -> readonly by default)."""
    result: set[str] = set()
    pending = list(roles)
    while pending:
        role = pending.pop()
        if role not in result:
            result.add(role)
            pending.extend(implies.get(role, ()))
    return frozenset(result)


def principal_of(record: KeyRecord, implies: dict[str, tuple[str, ...]] | None = None) -> Principal:
    return Principal(
        key_id=record.key_id,
        name=record.name,
        roles=expand_roles(record.roles, implies or {}),
        expires=record.expires,
    )


class KeyManager:
    """Create, rotate, revoke and list keys in ``store``; every change is one atomic ``modify``."""

    def __init__(self, store: KeyStore, hasher: KeyHasher | None = None) -> None:
        self.store = store
        self.hasher = hasher or KeyHasher()

    async def create(
        self,
        name: str,
        roles: Iterable[str] | str,
        *,
        expires: str | float | timedelta | None = None,
        now: datetime | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key for a new identity ``name``: (the key, shown once; its record)."""
        name = check_name(name)
        checked = check_roles(roles)
        if not checked:
            raise ConfigurationError("give the key at least one role (for example --role readonly)")
        now = now or utcnow()
        expiry = None if expires is None else now + parse_duration(expires, option="expires")

        def change(records: dict[str, KeyRecord]) -> tuple[str, KeyRecord]:
            if any(r.name == name and r.usable(now) for r in records.values()):
                raise ConfigurationError(f"a key named {name!r} already exists; rotate it or revoke it first")
            key = generate_key(_fresh_id(records))
            record = KeyRecord(
                key_id=key[5:17],
                name=name,
                roles=checked,
                hash=self.hasher.hash(key),
                created=now,
                expires=expiry,
            )
            records[record.key_id] = record
            return key, record

        return await self.store.modify(change, fingerprint=self.hasher.fingerprint)

    async def rotate(
        self,
        name: str,
        *,
        grace: str | float | timedelta = "24h",
        expires: str | float | timedelta | None = None,
        now: datetime | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key for ``name`` (same roles); the current ones stay valid for ``grace``, then are refused."""
        name = check_name(name)
        grace_delta = parse_duration(grace, option="grace")
        now = now or utcnow()

        def change(records: dict[str, KeyRecord]) -> tuple[str, KeyRecord]:
            current = [r for r in records.values() if r.name == name and r.usable(now)]
            if not current:
                raise ConfigurationError(
                    f"no active key named {name!r}; create one with 'hardenkit keys create'"
                )
            newest = max(current, key=lambda r: r.created)
            expiry = newest.expires
            if expires is not None:
                expiry = now + parse_duration(expires, option="expires")
            elif expiry is not None and newest.expires is not None:
                # Keep the identity's lifetime policy: the new key lives as long as the old one did.
                expiry = now + (newest.expires - newest.created)
            key = generate_key(_fresh_id(records))
            record = KeyRecord(
                key_id=key[5:17],
                name=name,
                roles=newest.roles,
                hash=self.hasher.hash(key),
                created=now,
                expires=expiry,
                extra={"rotated_from": newest.key_id},
            )
            retire = now + grace_delta
            for old in current:
                ends = old.expires if old.expires is not None and old.expires < retire else retire
                records[old.key_id] = old.with_changes(rotated=now, expires=ends, replaced_by=record.key_id)
            records[record.key_id] = record
            return key, record

        return await self.store.modify(change, fingerprint=self.hasher.fingerprint)

    async def revoke(self, name_or_id: str, *, now: datetime | None = None) -> list[KeyRecord]:
        """Revoke at once every unrevoked key of identity ``name_or_id`` (or the key with that id)."""
        now = now or utcnow()

        def change(records: dict[str, KeyRecord]) -> list[KeyRecord]:
            targets = [
                r
                for r in records.values()
                if (r.name == name_or_id or r.key_id == name_or_id) and r.revoked is None
            ]
            if not targets:
                raise ConfigurationError(f"no unrevoked key named {name_or_id!r}")
            done = []
            for record in targets:
                revoked = record.with_changes(revoked=now)
                records[record.key_id] = revoked
                done.append(revoked)
            return done

        return await self.store.modify(change, fingerprint=self.hasher.fingerprint)

    async def list(self) -> list[KeyRecord]:
        return sorted(await self.store.all(), key=lambda r: (r.name, r.created))

    async def verify(self, key: str) -> tuple[KeyRecord | None, str]:
        return await authenticate(key.strip(), self.store, self.hasher)


def _fresh_id(records: dict[str, KeyRecord]) -> str:
    for _ in range(100):
        key_id = new_key_id()
        if key_id not in records:
            return key_id
    raise RuntimeError("could not draw an unused key id")  # pragma: no cover - 36**12 ids
