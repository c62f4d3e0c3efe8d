"""File locks and atomic state for scripts and services sharing files.

::

    from hardenkit.lock import FileLock, LockTimeout, atomic_write, JsonState

    with FileLock("/var/run/myjob.lock", timeout=5):
        ...
    atomic_write("report.txt", "all good\\n")
    state = JsonState("state.json")
    with state.update() as data:
        data["runs"] = data.get("runs", 0) + 1

Modules: ``file`` (FileLock, Holder), ``existing`` (the read-only lock on a file the lock did not create),
``children`` (commands started under a lock), ``atomic`` (atomic_write), ``links`` (which symlinks a writer
may follow), ``state`` (JsonState).
Importing this package never imports starlette, limits or anyio (anyio loads inside the async methods).
"""

from __future__ import annotations

from ..errors import LockError, LockTimeout, StateCorrupted, StateError
from .atomic import atomic_write
from .file import FileLock, Holder
from .state import JsonState

__all__ = [
    "FileLock",
    "Holder",
    "JsonState",
    "LockError",
    "LockTimeout",
    "StateCorrupted",
    "StateError",
    "atomic_write",
]
