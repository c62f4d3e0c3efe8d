"""Key records, the principal, keyed hashing and duration parsing (standard library only).

Why a keyed SHA-256 (HMAC) rather than a slow password hash: a hardenkit key carries 256 bits from
:mod:`secrets`, so there is no dictionary to try and brute force is out of reach whatever the hash
speed; a slow hash (bcrypt, scrypt, argon2) would only add milliseconds of CPU to every request and
hand an attacker a cheap denial of service. The key (the "pepper") keeps a leaked key file useless for
confirming a leaked key unless the pepper leaks too; it lives outside the file
(``HARDENKIT_AUTH_PEPPER``), and the file records only its fingerprint so a mismatch is reported
instead of refusing every key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import ConfigurationError

__all__ = ["KeyHasher", "KeyRecord", "Principal", "parse_duration", "utcnow"]

PEPPER_ENV = "HARDENKIT_AUTH_PEPPER"
# Used when no pepper is configured: public, so the hash is then plain domain-separated SHA-256,
# still safe for 256-bit random keys (see the module docstring); docs/auth.md says to set one.
_BUILTIN_PEPPER = b"hardenkit-api-key-v1"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ROLE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class Secret(str):
    """A string whose repr hides it: the pepper read from the environment, so ``Kit.describe()`` and
    tracebacks never show it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'********'"


def env_secret(text: str) -> Secret:
    return Secret(text)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def parse_duration(text: str | float | timedelta, *, option: str) -> timedelta:
    """``"90d"``, ``"24h"``, ``"15m"``, ``"30s"``, ``"2w"``, plain seconds, or a timedelta."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise ConfigurationError(
                f"{option}: expected a duration such as 90d, 24h, 15m or 30s, got {text!r}"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 0 or seconds > 100 * 365 * 86400:
        raise ConfigurationError(f"{option}: duration out of range: {text!r}")
    return timedelta(seconds=seconds)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"key name must be 1-64 characters [A-Za-z0-9_.@-] (e.g. 'ci'), got {name!r}"
        )
    return name


def check_roles(roles: Iterable[str] | str, *, option: str = "roles") -> tuple[str, ...]:
    if isinstance(roles, str):
        roles = (roles,)
    checked: list[str] = []
    for role in roles:
        if not isinstance(role, str) or not _ROLE.match(role):
            raise ConfigurationError(
                f"{option}: role names are 1-64 characters [A-Za-z0-9_.:-], got {role!r}"
            )
        if role not in checked:
            checked.append(role)
    return tuple(checked)


class KeyHasher:
    """HMAC-SHA256 of whole keys under a pepper; also the dummy hash compared when a key id is unknown."""

    def __init__(self, pepper: str | bytes | None = None) -> None:
        if pepper is None:
            env = os.environ.get(PEPPER_ENV)
            pepper = env if env else _BUILTIN_PEPPER
        if isinstance(pepper, str):
            pepper = pepper.encode("utf-8")
        if not isinstance(pepper, bytes) or not pepper:
            raise ConfigurationError(f"pepper: expected a non-empty string or bytes, got {pepper!r}")
        self._pepper = pepper
        self.fingerprint = hmac.new(pepper, b"hardenkit pepper fingerprint", hashlib.sha256).hexdigest()[:16]
        # Compared against when the id is unknown, so both paths hash and compare once.
        self.dummy = self.hash("hkey_" + "0" * 62)

    def hash(self, key: str) -> str:
        return hmac.digest(self._pepper, key.encode("ascii"), "sha256").hex()

    def matches(self, key: str, stored: str | None) -> bool:
        """Hash ``key`` and compare in constant time with ``stored`` (the dummy when None)."""
        computed = self.hash(key)
        expected = stored if stored is not None else self.dummy
        same = hmac.compare_digest(computed.encode("ascii"), expected.encode("ascii", "replace"))
        return same and stored is not None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat(timespec="seconds")


def _parse_time(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected an ISO 8601 time, got {value!r}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class KeyRecord:
    """What a store keeps about one key: never the key itself, only its keyed hash."""

    key_id: str
    name: str
    roles: tuple[str, ...]
    hash: str
    created: datetime
    expires: datetime | None = None
    rotated: datetime | None = None
    revoked: datetime | None = None
    replaced_by: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked`` at ``now``."""
        if self.revoked is not None and self.revoked <= now:
            return "revoked"
        if self.expires is not None and self.expires <= now:
            return "expired"
        return "active"

    def usable(self, now: datetime) -> bool:
        return self.state(now) == "active"

    def with_changes(self, **changes: Any) -> KeyRecord:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.key_id,
            "name": self.name,
            "roles": list(self.roles),
            "hash": self.hash,
            "created": _iso(self.created),
            "expires": _iso(self.expires),
            "rotated": _iso(self.rotated),
            "revoked": _iso(self.revoked),
            "replaced_by": self.replaced_by,
        }
        data.update(self.extra)
        return data

    def public_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """What ``list`` shows: everything but the hash, plus the state."""
        data = self.to_dict()
        del data["hash"]
        data["state"] = self.state(now or utcnow())
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyRecord:
        known = {"id", "name", "roles", "hash", "created", "expires", "rotated", "revoked", "replaced_by"}
        roles = data.get("roles", ())
        if isinstance(roles, str) or not isinstance(roles, (list, tuple)):
            raise ValueError(f"roles: expected a list, got {roles!r}")
        key_hash = data["hash"]
        if not isinstance(key_hash, str) or not re.fullmatch(r"[0-9a-f]{64}", key_hash):
            raise ValueError("hash: expected 64 hex digits (HMAC-SHA256)")
        created = _parse_time(data.get("created"), "created")
        return cls(
            key_id=str(data["id"]),
            name=str(data["name"]),
            roles=tuple(str(role) for role in roles),
            hash=key_hash,
            created=created if created is not None else utcnow(),
            expires=_parse_time(data.get("expires"), "expires"),
            rotated=_parse_time(data.get("rotated"), "rotated"),
            revoked=_parse_time(data.get("revoked"), "revoked"),
            replaced_by=data.get("replaced_by"),
            extra={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id (public), its name (the identity) and its roles."""

    key_id: str
    name: str
    roles: frozenset[str]
    expires: datetime | None = None

    def has_role(self, *roles: str) -> bool:
        """True if the principal holds any of ``roles`` (after role implication)."""
        return any(role in self.roles for role in roles)
