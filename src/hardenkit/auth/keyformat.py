"""The API-key format: ``hkey_<id>_<secret><checksum>``, recognisable by tools and checked without a lookup.

* ``hkey_``: a fixed prefix, so secret scanners and hardenkit's redactor find keys in free text;
* ``<id>``: 12 characters ``[a-z0-9]``, random, public: it names the key in logs, the access log and
  rate-limit counters, and is what the store is indexed by;
* ``_``;
* ``<secret>``: 43 base62 characters, 256 bits of randomness (62**43 > 2**256) from :mod:`secrets`;
* ``<checksum>``: the CRC32 of everything before it (ASCII), written as 6 base62 digits, most
  significant first (62**6 > 2**32). A typo or a truncated paste fails the checksum, so it is refused
  without touching the store, as GitHub does with its ``ghp_`` tokens.

The whole key is 67 ASCII characters and matches :data:`KEY_PATTERN`. Standard library only.
"""

from __future__ import annotations

import re
import secrets
import zlib
from typing import NamedTuple

__all__ = ["KEY_LENGTH", "KEY_PATTERN", "KEY_PREFIX", "ParsedKey", "checksum", "generate_key", "parse_key"]

KEY_PREFIX = "hkey_"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
ID_LENGTH = 12
SECRET_LENGTH = 43
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(KEY_PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH

#: Finds hardenkit keys in free text (the RE2/re common subset: no look-arounds).
KEY_PATTERN = r"\bhkey_[a-z0-9]{12}_[0-9A-Za-z]{49}\b"
_EXACT = re.compile(r"hkey_([a-z0-9]{12})_([0-9A-Za-z]{43})([0-9A-Za-z]{6})")
_KEY_ID = re.compile(r"[a-z0-9]{12}")


class ParsedKey(NamedTuple):
    """A well-formed key split into its parts (the checksum already verified)."""

    key_id: str
    secret: str


_DIGIT_VALUE = {char: value for value, char in enumerate(BASE62)}


def checksum(body: str) -> str:
    """The 6-character checksum of ``body`` (``hkey_<id>_<secret>``): base62 of its CRC32."""
    number = zlib.crc32(body.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        number, rest = divmod(number, 62)
        digits.append(BASE62[rest])
    return "".join(reversed(digits))


def _checksum_value(text: str) -> int:
    # Decoding the 6 presented digits is cheaper than encoding the CRC (it runs on every request).
    value = 0
    for char in text:
        value = value * 62 + _DIGIT_VALUE[char]
    return value


def new_key_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))


def is_key_id(text: str) -> bool:
    return _KEY_ID.fullmatch(text) is not None


def generate_key(key_id: str | None = None) -> str:
    """A new random key (with a new random id unless ``key_id`` is given)."""
    key_id = new_key_id() if key_id is None else key_id
    if not is_key_id(key_id):
        raise ValueError(f"key id must be 12 characters [a-z0-9], got {key_id!r}")
    secret = "".join(secrets.choice(BASE62) for _ in range(SECRET_LENGTH))
    body = f"{KEY_PREFIX}{key_id}_{secret}"
    return body + checksum(body)


def parse_key(text: str) -> ParsedKey | None:
    """The parts of a well-formed key, or None (wrong shape or checksum): no store lookup is needed."""
    if len(text) != KEY_LENGTH:
        return None
    match = _EXACT.fullmatch(text)
    if match is None:
        return None
    body_end = KEY_LENGTH - CHECKSUM_LENGTH
    # Not secret: the checksum is computable by anyone from the rest, so == leaks nothing.
    if zlib.crc32(text[:body_end].encode("ascii")) != _checksum_value(match.group(3)):
        return None
    return ParsedKey(match.group(1), match.group(2))
