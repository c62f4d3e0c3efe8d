"""FileLock: filelock's OS lock with a timeout by default, a holder record, threads and async.

Imports the standard library and filelock only; anyio is imported inside the async methods, so
``import hardenkit.lock`` stays cheap for scripts.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shlex
import socket
import stat
import sys
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import filelock

try:  # filelock's judgment of a soft marker's owner, so we log exactly the breaks it makes (private: guarded)
    from filelock import _identity as _filelock_identity
except ImportError:  # pragma: no cover - older filelock: _owner_gone falls back to the host name and pid
    _filelock_identity = None  # type: ignore[assignment]

from ..errors import ConfigurationError, LockError, LockTimeout
from .atomic import pid_alive, replace_file
from .children import die_with_parent
from .existing import SUPPORTED as _EXISTING_SUPPORTED
from .existing import ExistingFileLock

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Sequence

__all__ = ["FileLock", "Holder"]

logger = logging.getLogger("hardenkit.lock")

# Every holder record is padded to this size with spaces (valid trailing JSON whitespace), so a new record
# overwrites an old one completely with a single pwrite and no truncate on the acquire path.
_RECORD_SIZE: Final = 512
_RECORD_PREFIX: Final = b'{"pid": '
# O_NOFOLLOW: records are regular files hardenkit wrote, so a link in their place was planted; O_NONBLOCK: a
# FIFO planted there must not hang a reader.
_READ_FLAGS: Final = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
)
_FIRST_DELAY: Final = 0.001

# Sync acquisitions made in the current context: id(lock) -> the owner token of that acquisition. A thread id
# alone cannot tell a reentry from another caller: anyio and asyncio worker threads are reused, so task B's
# ``to_thread.run_sync(lock.acquire)`` may run on the very thread where task A's acquire ran. Those calls
# run in a copy of their task's context, so a mark made here is seen only by the same logical caller (or a
# task it spawned on the same thread, which would block the thread for good anyway). Copied on change.
_HELD: ContextVar[Mapping[int, object]] = ContextVar("hardenkit_lock_held", default=MappingProxyType({}))


class _Unset:
    pass


_UNSET: Final = _Unset()


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: read from the record the holder wrote beside the lock when it acquired it."""

    pid: int
    host: str
    since: float  # seconds since the epoch (time.time()) when the lock was acquired
    command: str  # the holder's command line, shortened

    @property
    def start_time(self) -> float:
        """Alias of :attr:`since` (the issue's wording): when the lock was acquired, seconds since the epoch."""
        return self.since

    @property
    def hostname(self) -> str:
        """Alias of :attr:`host`."""
        return self.host

    def describe(self) -> str:
        """One line for messages: ``pid 123 on web-1 since 2025-01-01T10:00:00+00:00 (4.2 s ago): cmd``."""
        when = datetime.fromtimestamp(self.since, timezone.utc).isoformat(timespec="seconds")
        age = max(time.time() - self.since, 0.0)
        who = f"pid {self.pid} on {self.host}"
        if self.pid == os.getpid() and self.host == _host():
            who += " (this process)"
        return f"{who} since {when} ({age:.1f} s ago), command: {self.command or '?'}"


_IDENTITY: tuple[int, str] | None = None  # (pid, record head); recomputed in a forked child


def _host() -> str:
    return socket.gethostname()


def _record_head() -> str:
    global _IDENTITY
    pid = os.getpid()
    if _IDENTITY is None or _IDENTITY[0] != pid:
        argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
        command = shlex.join(argv)
        host = json.dumps(_host())
        while True:
            head = f'{{"pid": {pid}, "host": {host}, "command": {json.dumps(command)}, '
            # Room left for "since" and an heir's pid: every record must fit in _RECORD_SIZE.
            if len(head) <= _RECORD_SIZE - 80 or not command:
                break
            command = command[: len(command) * 3 // 4 - 1] + "…"
        _IDENTITY = (pid, head)
    return _IDENTITY[1]


def _record(since: float | None = None, heir: int | None = None) -> bytes:
    # "heir": a command started under the lock that inherited it (FileLock.spawn), named once we are gone.
    extra = f'"heir": {heir}, ' if heir is not None else ""
    when = time.time() if since is None else since
    return (_record_head() + extra + f'"since": {when:.3f}}}').encode().ljust(_RECORD_SIZE)


class _Entry(NamedTuple):
    holder: Holder
    heir: int | None


def _parse_entry(raw: bytes) -> _Entry | None:
    try:
        data = json.loads(raw)
    except ValueError:  # empty (released), torn by a concurrent write, or not ours
        return None
    if not isinstance(data, dict):
        return None
    pid, host, since, command = data.get("pid"), data.get("host"), data.get("since"), data.get("command")
    if type(pid) is not int or not isinstance(host, str) or not isinstance(command, str):
        return None
    if isinstance(since, bool) or not isinstance(since, (int, float)):
        return None
    heir = data.get("heir")
    holder = Holder(pid=pid, host=host, since=float(since), command=command)
    return _Entry(holder, heir if type(heir) is int else None)


def _parse_record(raw: bytes) -> Holder | None:
    entry = _parse_entry(raw)
    return None if entry is None else entry.holder


def _read_raw(path: str) -> bytes | None:
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        return os.read(fd, _RECORD_SIZE * 4)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_entry(path: str) -> _Entry | None:
    raw = _read_raw(path)
    return None if raw is None else _parse_entry(raw)


def _is_lock_file(fd: int, st: os.stat_result) -> bool:
    """Whether a hardenkit lock made this file: empty (lock files are, between uses) or one holder record.

    Anything else (a script, a config file: the flock(1) idiom locks those) is never written into.
    """
    if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
        return True
    # The prefix, not a full parse: a reader racing the holder's pwrite may see a torn record, but every
    # record starts with the same bytes.
    return st.st_size == _RECORD_SIZE and os.pread(fd, len(_RECORD_PREFIX), 0) == _RECORD_PREFIX


def _is_existing_foreign_file(path: str) -> bool:
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:  # missing (the lock creates it), a link (refused below), unreadable: filelock decides
        return False
    try:
        return not _is_lock_file(fd, os.fstat(fd))
    finally:
        os.close(fd)


class _Marker(NamedTuple):
    pid: int
    host: str  # as filelock writes it: its host_name(), which on Linux carries the PID namespace
    token: int | None  # the holder's process start token (filelock >= 3.29 on Windows, 4.x everywhere)
    identity: tuple[int, int]  # (st_dev, st_ino): which marker file this was


def _read_soft_marker(path: str) -> _Marker | None:
    # filelock's soft marker is "<pid>\n<host>\n[<start token>\n]"; we need who, to judge it and tell the log
    # line, and which file, to tell later whether that marker is gone.
    try:
        with open(path, "rb") as fileobj:
            identity = _identity(os.fstat(fileobj.fileno()))
            text = fileobj.read(1024).decode("utf-8", errors="replace")
    except OSError:
        return None
    lines = text.split("\n")
    if not text.endswith("\n") or len(lines) not in (3, 4):  # a marker still being written, or not one
        return None
    numbers = lines[:1] + lines[2:-1]  # the pid, and the start token when there is one
    if not all(value.isascii() and value.isdigit() for value in numbers):
        return None
    token = int(lines[2]) if len(lines) == 4 else None
    return _Marker(int(lines[0]), lines[1], token, identity)


def _owner_gone(marker: _Marker) -> bool:
    """Whether filelock will judge this marker's owner gone (and break it): filelock's own test when it has one."""
    judge = getattr(_filelock_identity, "owner_is_stale", None)
    if judge is None:  # pragma: no cover - a filelock without it compares the plain host name and the pid
        return marker.host == _host() and not pid_alive(marker.pid)
    try:
        return bool(judge(marker.pid, marker.host, marker.token))
    except (OSError, ValueError, OverflowError):  # pragma: no cover - filelock treats these as "not stale"
        return False


def _marker_identity(path: str) -> tuple[int, int] | None:
    try:
        return _identity(os.lstat(path))
    except OSError:
        return None


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _check_timeout(timeout: float | None, what: str = "timeout") -> float | None:
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or timeout != timeout
        or timeout < 0
    ):
        raise ConfigurationError(
            f"{what} must be a number of seconds >= 0 (0 = one attempt) or None to wait forever, got {timeout!r}"
        )
    return None if timeout == float("inf") else float(timeout)


class FileLock:
    """An inter-process lock on ``path``, built on filelock, that gives up after ``timeout`` seconds.

    ``with lock:`` in sync code, ``async with lock:`` in async code (asyncio or trio: the wait polls with
    non-blocking attempts and ``anyio.sleep``, so the event loop keeps running and the wait is
    cancellable). On acquire the holder's pid, host, start time and command are recorded; :meth:`holder`
    reads them and :class:`LockTimeout` names them. The record goes into a lock file the lock made (one
    that is missing, empty, or holds a record); a file with other content (the flock(1) idiom of locking
    a script) is never written into: it is locked through a read-only descriptor and the record lives
    beside it in ``<path>.holder``.

    The lock excludes other processes *and* other threads or tasks of this process using the same
    object; it may be released by another thread than the one that acquired it (anyio worker threads).
    It is **not reentrant**: acquiring it again from the thread or task that holds it raises
    :class:`LockError` instead of deadlocking. Two ``FileLock`` objects on one path exclude each other,
    even within a process.

    ``soft=True`` uses a marker file instead of an OS lock, for network filesystems where ``flock`` does
    not work; a marker left by a dead process on this host is broken (and logged) by the next acquirer.
    The native lock file is never deleted: unlinking a lock file while others wait on it breaks mutual
    exclusion. After ``os.fork()`` create a new ``FileLock`` in the child.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float | None = 10.0,
        soft: bool = False,
        poll_interval: float = 0.05,
    ) -> None:
        text = os.fspath(path)
        if not isinstance(text, str) or not text:
            raise ConfigurationError(f"path must be a non-empty file path, got {path!r}")
        self._path = os.path.abspath(text)
        if os.path.isdir(self._path):
            raise ConfigurationError(
                f"path {self._path} is a directory; write a file path such as {text}/.lock"
            )
        self._timeout = _check_timeout(timeout)
        if (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, (int, float))
            or not 0 < poll_interval <= 10
        ):
            raise ConfigurationError(
                f"poll_interval must be seconds in (0, 10], e.g. 0.05; got {poll_interval!r}"
            )
        self._poll = float(poll_interval)
        self._soft = bool(soft)
        # One holder per object at a time (threads and tasks). A plain Lock, not an RLock: it may be released
        # by another thread than the one that acquired it, as anyio worker threads do.
        self._gate = threading.Lock()
        self._owner: object = None
        self._fd: int | None = None  # the locked descriptor (native locks), while held
        self._record_fd: int | None = None  # set when the record lives in the lock file itself
        self._beside = False  # True when this holder wrote the record beside the lock (<path>.holder)
        self._since = 0.0
        self._holder_path = self._path + ".holder"  # the record beside the lock (soft, or not our file)
        self._existing = ExistingFileLock(self._path) if _EXISTING_SUPPORTED and not soft else None
        self._lock: filelock.BaseFileLock
        if self._soft:
            self._lock = filelock.SoftFileLock(self._path, thread_local=False)
        else:
            # thread_local=False: acquire and release may run on different threads. preserve_lock_file and
            # no soft fallback: a native lock file must never be unlinked while in use.
            self._lock = filelock.FileLock(
                self._path,
                thread_local=False,
                preserve_lock_file=True,
                fallback_to_soft=False,
                on_acquired=self._write_record,
            )

    # -- properties -------------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """Absolute path of the lock file."""
        return self._path

    @property
    def timeout(self) -> float | None:
        """Default timeout in seconds; ``None`` waits forever."""
        return self._timeout

    @property
    def soft(self) -> bool:
        return self._soft

    @property
    def is_locked(self) -> bool:
        """Whether this object currently holds the lock."""
        return self._lock.is_locked or (self._existing is not None and self._existing.is_locked)

    def __repr__(self) -> str:
        state = "locked" if self.is_locked else "unlocked"
        kind = "soft " if self._soft else ""
        return f"<hardenkit.lock.FileLock {kind}{self._path!r} {state}>"

    # -- holder record ----------------------------------------------------------------------------------

    def _write_record(self, fd: int) -> None:
        # filelock lends us the lock file's descriptor once per physical acquisition. In a lock file the lock
        # made, the record lives in the file itself (one pwrite; the file is never replaced or unlinked).
        # A file it did not make (someone wrote into it since our check) is never written: record beside it.
        self._since = time.time()
        if _is_lock_file(fd, os.fstat(fd)):
            os.pwrite(fd, _record(self._since), 0)
            self._record_fd = fd
        else:
            self._record_beside()
        self._fd = fd

    def _record_beside(self) -> None:
        self._since = time.time()
        replace_file(self._holder_path, _record(self._since), fsync=False)
        self._beside = True

    def _read_holder_entry(self) -> _Entry | None:
        if self._soft:
            if not os.path.exists(self._path):
                return None
            return _read_entry(self._holder_path)
        raw = _read_raw(self._path)
        entry = None if raw is None else _parse_entry(raw)
        if entry is not None or not raw:  # a record, or an empty (free) lock file
            return entry
        return _read_entry(self._holder_path)  # a file the lock did not make: its record is beside it

    def holder(self) -> Holder | None:
        """Who holds the lock now, or ``None`` when it is free or the record is unreadable.

        A record left by a process of this host that no longer exists is ignored: the lock it names is
        free (the OS released it when the process died; a soft marker is broken by the next acquirer),
        unless a command it started with :meth:`spawn` still runs and holds the lock: that one is named.
        """
        entry = self._read_holder_entry()
        if entry is None:
            return None
        record, heir = entry
        if record.host != _host() or record.pid == os.getpid() or pid_alive(record.pid):
            return record
        if heir is not None and pid_alive(heir):
            return replace(record, pid=heir)
        return None

    # -- acquiring --------------------------------------------------------------------------------------

    def _attempt(self) -> bool:
        """One non-blocking try; True when this object now holds the lock."""
        try:
            if self._soft:
                return self._attempt_soft()
            if self._existing is not None and _is_existing_foreign_file(self._path):
                return self._attempt_existing(self._existing)
            self._lock.acquire(blocking=False)
        except filelock.Timeout:
            return False
        except OSError as exc:
            raise self._os_error(exc) from exc
        return True

    def _attempt_existing(self, existing: ExistingFileLock) -> bool:
        if not existing.try_acquire():
            return False
        try:
            self._record_beside()
        except OSError as exc:
            # A directory we may not write in (a system script's): locked all the same, as flock(1) would,
            # with no record, so holder() says "unknown". Any other failure is a real one.
            if not (isinstance(exc, PermissionError) or exc.errno == errno.EROFS):
                existing.release()
                raise
        except BaseException:  # pragma: no cover - an interrupt while writing the record
            existing.release()
            raise
        self._fd = existing.fd
        return True

    def _attempt_soft(self) -> bool:
        # filelock breaks a marker whose process on this host is gone, silently, and not always within an
        # attempt that acquires: filelock >= 4.2 swaps its own marker in (renameat2/renamex_np exchange), so
        # that attempt acquires; filelock 4.1 (and 4.2 on Windows) renames the stale marker away and reports
        # "not acquired", and a later attempt (ours or a peer's) creates a fresh marker on the empty path. So
        # the break is logged by the attempt that sees it happen: the dead marker read just before it is
        # gone just after it, whether or not this attempt acquired.
        seen = _read_soft_marker(self._path)
        dead = seen if seen is not None and _owner_gone(seen) else None
        try:
            self._lock.acquire(blocking=False)
        except filelock.Timeout:
            if dead is not None and _marker_identity(self._path) != dead.identity:
                self._log_stale(dead)  # broken by this attempt (or, racing it, by a peer's)
            raise
        try:
            if dead is not None:
                self._log_stale(dead)  # the marker this attempt replaced
            self._record_beside()
        except BaseException:
            self._lock.release()
            raise
        return True

    def _log_stale(self, marker: _Marker) -> None:
        # The dead holder's record is still beside the path: only an acquisition replaces it, after this.
        old = _parse_record(_read_raw(self._holder_path) or b"")
        details = (
            old.describe()
            if old is not None and old.pid == marker.pid
            else f"pid {marker.pid} on {marker.host}"
        )
        logger.warning(
            "broke stale soft lock %s: its holder is gone (%s)",
            self._path,
            details,
            extra={"lock_path": self._path, "stale_pid": marker.pid},
        )

    def _os_error(self, exc: OSError) -> LockError:
        hint = ""
        if exc.errno == errno.ENOSYS:  # pragma: no cover - flock is unsupported on some network filesystems
            hint = "; this filesystem does not support OS locks: use FileLock(path, soft=True)"
        return LockError(exc.errno or 0, f"cannot use lock file {self._path}: {exc.strerror or exc}{hint}")

    def _timeout_error(self, started: float) -> LockTimeout:
        holder = self.holder()
        who = holder.describe() if holder is not None else "an unknown holder (no readable holder record)"
        waited = time.monotonic() - started
        message = f"timed out after {waited:.2f} s waiting for lock {self._path}, held by {who}"
        return LockTimeout(message, path=self._path, holder=holder)

    def _reentry_error(self) -> LockError:
        return LockError(
            f"FileLock {self._path} is already held by this thread or task and is not reentrant: "
            "acquire it once around the whole critical section"
        )

    def acquire(self, timeout: float | None | _Unset = _UNSET) -> None:
        """Acquire the lock, waiting at most ``timeout`` seconds (default: the lock's), else LockTimeout."""
        limit = self._timeout if isinstance(timeout, _Unset) else _check_timeout(timeout)
        started = time.monotonic()
        owner = self._owner
        if owner is not None and _HELD.get().get(id(self)) is owner:
            raise self._reentry_error()
        if not self._gate.acquire(timeout=-1 if limit is None else limit):
            raise self._timeout_error(started)
        try:
            delay = min(_FIRST_DELAY, self._poll)
            while not self._attempt():
                remaining = None if limit is None else started + limit - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise self._timeout_error(started)
                time.sleep(delay if remaining is None else min(delay, remaining))
                delay = self._next_delay(delay)
        except BaseException:
            self._gate.release()
            raise
        self._owner = mine = ("thread", threading.get_ident())  # a fresh tuple: its identity is the token
        _HELD.set({**_HELD.get(), id(self): mine})

    async def aacquire(self, timeout: float | None | _Unset = _UNSET) -> None:
        """Acquire from async code (asyncio or trio) without blocking the event loop; cancellable.

        Why polling and not a worker thread blocked in the OS lock: a thread cannot be interrupted, so a
        cancelled wait would leave a thread that may still take the lock later and leak it. Each attempt
        is one non-blocking syscall; between attempts the task sleeps with exponential backoff (1 ms up to
        ``poll_interval``), and cancellation lands in that sleep while nothing is held.
        """
        import anyio
        import anyio.lowlevel

        limit = self._timeout if isinstance(timeout, _Unset) else _check_timeout(timeout)
        started = time.monotonic()
        await anyio.lowlevel.checkpoint_if_cancelled()
        me = ("task", anyio.get_current_task().id)
        if self._owner == me:
            raise self._reentry_error()
        delay = min(_FIRST_DELAY, self._poll)
        while not self._gate.acquire(blocking=False):
            delay = await self._async_wait(started, limit, delay)
        try:
            while not await self._async_attempt():
                delay = await self._async_wait(started, limit, delay)
        except BaseException:
            self._gate.release()
            raise
        self._owner = me

    async def _async_attempt(self) -> bool:
        if not self._soft:
            return self._attempt()  # one non-blocking flock: no I/O wait, cheaper than a thread hop
        import anyio
        import anyio.to_thread

        # A soft attempt is several filesystem round trips (slow on the network filesystems it exists for),
        # so it runs in a worker thread; shielded, because a cancellation must not discard an attempt that
        # succeeded (the lock would stay held by nobody).
        with anyio.CancelScope(shield=True):
            acquired = await anyio.to_thread.run_sync(self._attempt)
        return acquired

    async def _async_wait(self, started: float, limit: float | None, delay: float) -> float:
        import anyio

        remaining = None if limit is None else started + limit - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise self._timeout_error(started)
        await anyio.sleep(delay if remaining is None else min(delay, remaining))
        return self._next_delay(delay)

    def _next_delay(self, delay: float) -> float:
        # Exponential with jitter so that processes polling one lock do not wake in lockstep.
        return min(delay * (1.5 + random.random()), self._poll)

    def release(self) -> None:
        """Release the lock; raises LockError when this object does not hold it."""
        if not self.is_locked:
            raise LockError(f"FileLock {self._path} is not held by this object, so it cannot be released")
        try:
            if self._record_fd is not None:
                # An empty record says "free" to readers, before the OS lock goes.
                try:
                    os.ftruncate(self._record_fd, 0)
                except OSError:  # pragma: no cover - the lock still goes; holder() then checks the pid
                    pass
            elif self._beside:
                try:
                    os.unlink(self._holder_path)
                except FileNotFoundError:
                    pass
            if self._existing is not None and self._existing.is_locked:
                self._existing.release()
            else:
                self._lock.release()
        finally:
            self._fd = None
            self._record_fd = None
            self._beside = False
            self._owner = None
            self._gate.release()
            held = _HELD.get()
            if id(self) in held:  # released in the context that acquired it (the usual case): drop the mark
                _HELD.set({key: value for key, value in held.items() if key != id(self)})

    def spawn(self, args: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``args`` (as :class:`subprocess.Popen` would) so that it holds this lock until it ends.

        The lock must be held by this object. With an OS lock the child inherits the locked descriptor,
        as with flock(1): if this process dies, even by SIGKILL, the lock stays held until the command
        ends (and any process it passed the descriptor on to). :meth:`release` still ends the lock for
        everyone. With ``soft=True`` there is nothing to inherit, since the marker names this process and
        is broken once it is gone, so on Linux the command is killed (SIGKILL) when the thread that
        called ``spawn`` dies; call it from the main thread. The holder record names the command as this
        process's heir, so :meth:`holder` and :class:`LockTimeout` name it once this process is gone.
        """
        import subprocess

        if not self.is_locked:
            raise LockError(f"FileLock {self._path} is not held by this object: acquire it before spawn()")
        kwargs = dict(popen_kwargs)
        if self._fd is None:
            kwargs["preexec_fn"] = die_with_parent(kwargs.get("preexec_fn"))
        elif os.name == "posix":  # pragma: no branch - Windows children inherit no descriptor by number
            kwargs["pass_fds"] = (*kwargs.get("pass_fds", ()), self._fd)
        child: subprocess.Popen[Any] = subprocess.Popen(args, **kwargs)
        record = _record(self._since, heir=child.pid)
        try:
            if self._record_fd is not None:
                os.pwrite(self._record_fd, record, 0)
            else:
                replace_file(self._holder_path, record, fsync=False)
        except OSError:  # pragma: no cover - the record keeps naming this process; the lock is unaffected
            logger.warning("could not name pid %d in the holder record of %s", child.pid, self._path)
        return child

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    async def __aenter__(self) -> FileLock:
        await self.aacquire()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __getstate__(self) -> Any:
        raise TypeError("a FileLock cannot be pickled: create one in each process from its path")
