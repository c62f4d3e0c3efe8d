"""Exceptions raised by hardenkit.

Every exception builds on a standard-library base, so callers can catch what
they already know (``TimeoutError``, ``ValueError``, ``ConnectionError``)::

    HardenkitError
    ├── ConfigurationError (ValueError)      a bad option, found at start-up
    ├── LockError (OSError)                  a file lock could not be used
    │   └── LockTimeout (TimeoutError)       the lock stayed held past the timeout
    ├── StateError (ValueError)              a JSON state file is unusable
    │   └── StateCorrupted                   ... and no valid backup was found
    ├── StorageUnavailable (ConnectionError) the rate-limit storage cannot be reached
    └── CallTimeout (TimeoutError)           hardenkit.aio gave up waiting on a call

This module imports nothing but the standard library: it is safe to import
from scripts that must not pay for the web stack.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CallTimeout",
    "ConfigurationError",
    "HardenkitError",
    "LockError",
    "LockTimeout",
    "StateCorrupted",
    "StateError",
    "StorageUnavailable",
]


class HardenkitError(Exception):
    """Base class of every exception hardenkit raises on purpose."""


class ConfigurationError(HardenkitError, ValueError):
    """An option is invalid; the message says what to write instead."""


class LockError(HardenkitError, OSError):
    """A file lock could not be acquired or used."""


class LockTimeout(LockError, TimeoutError):
    """The lock was still held by someone else when the timeout ran out.

    ``holder`` is the holder record read beside the lock (pid, host, since,
    command) when one could be read, else ``None``.
    """

    def __init__(self, message: str, *, path: str = "", holder: Any = None) -> None:
        super().__init__(message)
        self.path = path
        self.holder = holder

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StateError(HardenkitError, ValueError):
    """A JSON state file could not be read or written."""


class StateCorrupted(StateError):
    """The state file and every backup are unreadable."""


class StorageUnavailable(HardenkitError, ConnectionError):
    """The rate-limit storage could not be reached."""


class CallTimeout(HardenkitError, TimeoutError):
    """A call run by hardenkit.aio did not finish within its timeout."""
