"""JsonState: a JSON file shared by processes, updated read-modify-write under a FileLock."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

from ..errors import ConfigurationError, StateCorrupted, StateError
from .atomic import atomic_write, replace_file, temp_path_for
from .file import FileLock, _check_timeout
from .links import read_bytes

__all__ = ["JsonState"]

logger = logging.getLogger("hardenkit.lock")


class JsonState:
    """A JSON document in ``path`` that several processes read and update safely.

    ``read()`` returns a consistent snapshot (writes replace the file atomically, so a reader sees a
    whole version). ``with state.update() as data:`` locks ``<path>.lock``, reads, lets the block change
    ``data`` in place, then writes atomically and keeps the previous ``backups`` versions as
    ``<path>.1`` (newest) ... ``<path>.<backups>``. ``async with state.aupdate() as data:`` does the same
    from async code (lock waits poll, file work runs in a worker thread).

    The top-level value (what ``default()`` returns, a ``dict`` by default) must be mutable, since the
    block changes it in place. A missing file reads as ``default()``. A corrupt or truncated file is
    replaced by the newest backup that parses, with a warning logged and the bad file kept aside as
    ``<path>.corrupt-<time>``; when no backup parses, :class:`StateCorrupted` is raised and nothing is
    moved. A value JSON cannot encode fails the update with :class:`StateError` and leaves the file as it
    was. ``fsync=False`` trades durability across power loss for speed (still atomic across crashes).

    A symlinked ``path`` works through the link (the file it names is replaced, the link stays); its
    backups are copies of the data beside the link, never links. A link another user planted in a shared
    sticky directory is refused (:class:`PermissionError`), for reading as for writing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        default: Callable[[], Any] = dict,
        backups: int = 3,
        lock_timeout: float | None = 10.0,
        fsync: bool = True,
        soft_lock: bool = False,
    ) -> None:
        text = os.fspath(path)
        if not isinstance(text, str) or not text:
            raise ConfigurationError(f"path must be a non-empty file path, got {path!r}")
        if not callable(default):
            raise ConfigurationError(
                f"default must be a callable returning the initial value (e.g. dict), got {default!r}"
            )
        if isinstance(backups, bool) or not isinstance(backups, int) or not 0 <= backups <= 100:
            raise ConfigurationError(f"backups must be a whole number from 0 to 100, e.g. 3; got {backups!r}")
        self._path = os.path.abspath(text)
        self._default = default
        self._backups = backups
        self._fsync = bool(fsync)
        self._lock = FileLock(
            self._path + ".lock", timeout=_check_timeout(lock_timeout, "lock_timeout"), soft=soft_lock
        )

    @property
    def path(self) -> str:
        return self._path

    @property
    def lock(self) -> FileLock:
        """The FileLock guarding updates (``<path>.lock``)."""
        return self._lock

    def backup_path(self, n: int) -> str:
        """Path of backup ``n`` (1 = the version before the current one)."""
        return f"{self._path}.{n}"

    def __repr__(self) -> str:
        return f"<hardenkit.lock.JsonState {self._path!r}>"

    # -- reading ----------------------------------------------------------------------------------------

    def read(self) -> Any:
        """A consistent snapshot of the current value (``default()`` when the file does not exist)."""
        raw = _read_bytes(self._path)
        if raw is None:
            return self._default()
        try:
            return json.loads(raw)
        except ValueError:
            pass
        # Writers replace the file atomically, so a parse error is real damage: repair it under the lock
        # (another process may be repairing it right now).
        with self._lock:
            return self._load_locked()[0]

    async def aread(self) -> Any:
        """``read()`` in a worker thread, for async code."""
        import anyio.to_thread

        return await anyio.to_thread.run_sync(self.read)

    def _load_locked(self) -> tuple[Any, bytes | None]:
        """The current value and the main file's bytes (None when missing or recovered); lock held."""
        raw = _read_bytes(self._path)
        if raw is None:
            return self._default(), None
        try:
            return json.loads(raw), raw
        except ValueError as exc:
            return self._recover(exc, raw), None

    def _recover(self, error: ValueError, damaged: bytes) -> Any:
        for n in range(1, self._backups + 1):
            backup = self.backup_path(n)
            raw = _read_bytes(backup)
            if raw is None:
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                continue
            aside = f"{self._path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
            self._keep_aside(aside, damaged)
            atomic_write(self._path, raw, fsync=self._fsync)
            logger.warning(
                "state file %s was unreadable (%s); restored it from backup %s and kept the bad file as %s",
                self._path,
                error,
                backup,
                aside,
                extra={"state_path": self._path, "backup": backup, "corrupt_copy": aside},
            )
            return value
        raise StateCorrupted(
            f"state file {self._path} is unreadable ({error}) and no valid backup was found "
            f"(looked at {self._backups} backup(s): {self._path}.1 ...); repair or remove it"
        )

    # -- updating ---------------------------------------------------------------------------------------

    @contextmanager
    def update(self) -> Iterator[Any]:
        """Lock, read, yield the value for the block to change in place, then write it atomically."""
        with self._lock:
            data, raw = self._load_locked()
            yield data
            self._commit(data, raw)

    @asynccontextmanager
    async def aupdate(self) -> AsyncIterator[Any]:
        """``update()`` for async code (asyncio or trio): the event loop is never blocked."""
        import anyio.to_thread

        async with self._lock:
            data, raw = await anyio.to_thread.run_sync(self._load_locked)
            yield data
            await anyio.to_thread.run_sync(self._commit, data, raw)

    def _commit(self, data: Any, old: bytes | None) -> None:
        try:
            text = json.dumps(data, ensure_ascii=False, allow_nan=False, indent=2)
        except (TypeError, ValueError, RecursionError) as exc:
            message = f"cannot write state to {self._path}: the value is not JSON ({exc})"
            # A TypeError from json stays a TypeError, so code written against json.dumps keeps catching it.
            error_type = _UnencodableState if isinstance(exc, TypeError) else StateError
            raise error_type(message) from exc
        if old is not None and self._backups:
            self._rotate(old)
        atomic_write(self._path, text + "\n", fsync=self._fsync)

    def _rotate(self, old: bytes) -> None:
        for n in range(self._backups - 1, 0, -1):
            with suppress(FileNotFoundError):
                os.replace(self.backup_path(n), self.backup_path(n + 1))
        # Backup 1 is a hard link to the current main file when the path is that file: no copy, and the
        # bytes are already durable; the main file is about to be replaced by a new inode, so the link keeps
        # the old version. When the path is a symlink, a link of it would name the live file, so the backup
        # is a copy of the data (``old``, read under the lock), with the data file's mode.
        link = temp_path_for(self._path)
        try:
            os.link(self._path, link, follow_symlinks=False)
        except OSError:  # pragma: no cover - filesystems without hard links get a copy
            self._copy_backup(old)
            return
        try:
            if stat.S_ISLNK(os.lstat(link).st_mode):
                os.unlink(link)
                self._copy_backup(old)
                return
            os.replace(link, self.backup_path(1))
        except BaseException:  # pragma: no cover - the rename failing right after the link succeeded
            with suppress(OSError):
                os.unlink(link)
            raise

    def _data_stat(self) -> os.stat_result | None:
        # The data's own permission bits (a state file may hold secrets: 0600 must stay 0600 in a copy).
        try:
            return os.stat(self._path)
        except OSError:
            return None

    def _copy_backup(self, old: bytes) -> None:
        replace_file(self.backup_path(1), old, fsync=self._fsync, like=self._data_stat())

    def _keep_aside(self, aside: str, damaged: bytes) -> None:
        if not os.path.islink(self._path):
            os.replace(self._path, aside)  # the damaged file itself, mode and all
        else:  # moving the link would move no data: keep a copy of the damaged bytes instead
            replace_file(aside, damaged, fsync=self._fsync, like=self._data_stat())


class _UnencodableState(StateError, TypeError):
    """A StateError that is also the TypeError json.dumps raised (an object it cannot encode)."""


def _read_bytes(path: str) -> bytes | None:
    # Through read_bytes, so a link another user planted in a shared sticky directory is not followed for
    # reading either: its target's bytes must not become this state (or one of its backups).
    try:
        return read_bytes(path)
    except IsADirectoryError as exc:
        raise StateError(f"state path {path} is a directory; write a file path") from exc
