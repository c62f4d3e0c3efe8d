"""LogFileHandler: a log file shared by many processes, written off the request path.

::

    import logging
    from hardenkit.logs import LogFileHandler

    handler = LogFileHandler("logs/api_requests.log", rotate="daily", keep="30d", compress=True)
    logging.getLogger().addHandler(handler)

``emit`` formats the record in the caller's thread (the request id is read there) and puts the bytes
on a bounded queue; one writer thread per handler appends them in batches with ``O_APPEND``. Per batch
(never per line) the writer takes an exclusive ``flock`` on a gate file beside the log, checks that the
path still names its file (a rotation by another process, or an external logrotate, makes it reopen),
trims a line left half-written by a writer that was killed, and writes. Rotation takes
:class:`hardenkit.lock.FileLock` and the gate (see :mod:`.rotation`); gzip and retention run in a
second thread. Standard library and :mod:`hardenkit.lock` only; the health check imports
:mod:`hardenkit.health` when asked for.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..errors import ConfigurationError
from .rotation import Policy, adopt, hidden, maintain, parse_keep, parse_rotate, rotate_locked, rotation_lock

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process per file there (no gate)
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from ..health import Check

__all__ = ["LogFileHandler", "file_handler_from_options"]

# One batch: at most this many lines or bytes. With the queue, this bounds what a SIGKILL loses.
BATCH_LINES: Final = 512
_BATCH_BYTES: Final = 1 << 20
_TRIM_WINDOW: Final = 4 << 20  # how far back a half-written line is looked for (> one batch)
_FLAGS: Final = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_STOP: Final = object()
_LINGER: Final = 0.005  # seconds a lone line waits for company; a flush or close does not wait

_LIVE: weakref.WeakSet[LogFileHandler] = weakref.WeakSet()
_HOOKS_INSTALLED = False
_HOOKS_LOCK = threading.Lock()


def _report(message: str) -> None:
    # Straight to stderr, never through logging: the file handler may be the one that is failing.
    try:
        stream = sys.stderr or sys.__stderr__
        if stream is not None:
            stream.write(f"hardenkit.logs: {message}\n")
            stream.flush()
    except Exception:  # a closed stderr must not take the writer thread down
        pass


def _close_all() -> None:
    for handler in list(_LIVE):
        handler.close()


def _after_fork_in_child() -> None:
    # The writer thread did not survive fork (gunicorn --preload): the child starts its own on first emit.
    for handler in list(_LIVE):
        handler._forget_parent()


def _install_hooks() -> None:
    global _HOOKS_INSTALLED
    with _HOOKS_LOCK:
        if not _HOOKS_INSTALLED:
            atexit.register(_close_all)
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_after_fork_in_child)
            _HOOKS_INSTALLED = True


def _check_mode(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
        raise ConfigurationError(f"{what} takes permission bits such as 0o640, got {value!r}")
    return value


class LogFileHandler(logging.Handler):
    """A ``logging.Handler`` appending to ``filename`` from any number of processes and threads.

    ``rotate``: ``None`` (never), ``"daily"``, ``"hourly"`` or a size (``"100 MB"``, ``"512 KiB"``,
    bytes); ``keep``: rotated files to keep (``30``), an age (``"30d"``, ``"12h"``) or ``None`` (all);
    ``compress=True`` gzips rotated files in a background thread; ``utc`` picks the day and hour
    boundaries. New files get ``mode`` (0o640: logs hold personal data), a missing directory
    ``dir_mode`` (0o750). ``clock`` (seconds since the epoch) exists for tests of rotation.

    Full queue (``queue_size`` lines): ``emit`` waits at most ``block`` seconds, then drops the line,
    counts it and reports the incident once on stderr; while an incident lasts, or while the file
    cannot be written, it does not wait at all. A disk full or a read-only directory is reported once
    on stderr, shown by :meth:`check`, and the writer retries every ``retry_interval`` seconds,
    resuming with what is queued. :meth:`flush` waits until every line emitted before it is written;
    :meth:`close` (also run at exit) flushes and stops the thread. A process killed with SIGKILL loses
    at most the queued lines plus one batch (``queue_size + 512`` lines), and never leaves a cut line.
    """

    def __init__(
        self,
        filename: str | os.PathLike[str],
        *,
        rotate: str | int | None = None,
        keep: int | str | None = 30,
        compress: bool = False,
        utc: bool = True,
        mode: int = 0o640,
        dir_mode: int = 0o750,
        queue_size: int = 10_000,
        block: float = 0.05,
        retry_interval: float = 1.0,
        encoding: str = "utf-8",
        level: int | str = logging.NOTSET,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(level)
        path = os.fspath(filename)
        if not isinstance(path, str) or not path or path.endswith(os.sep):
            raise ConfigurationError(f"filename must be a file path such as 'logs/app.log', got {filename!r}")
        self.path = os.path.abspath(path)
        rotation, max_bytes = parse_rotate(rotate)
        keep_files, keep_seconds = parse_keep(keep)
        self.policy = Policy(rotation, max_bytes, keep_files, keep_seconds, bool(compress), bool(utc))
        self._mode = _check_mode(mode, "mode")
        self._dir_mode = _check_mode(dir_mode, "dir_mode")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise ConfigurationError(f"queue_size takes a number of lines >= 1, got {queue_size!r}")
        for name, value in (("block", block), ("retry_interval", retry_interval)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 60:
                raise ConfigurationError(f"{name} takes seconds between 0 and 60, got {value!r}")
        "".encode(encoding)  # an unknown codec fails here, not in the writer thread
        self._queue_size = queue_size
        # Size rotation is checked per batch: a batch of at most 1/16 of the limit keeps files near the size.
        self._batch_bytes = min(_BATCH_BYTES, max(max_bytes // 16, 1)) if rotation == "size" else _BATCH_BYTES
        self._block = float(block)
        self._retry = max(float(retry_interval), 0.01)
        self._encoding = encoding
        self._clock = clock if clock is not None else time.time
        self._start_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue(self._queue_size)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._maint_wake = threading.Event()
        self._maint_thread: threading.Thread | None = None
        self._maint_last = False
        self._closed = False
        self._fd: int | None = None
        self._gate_fd: int | None = None
        self._ident: tuple[int, int] = (-1, -1)
        self._end = 0  # where our last write ended: another size there means another writer came by
        self._size = 0
        self._period_end = float("inf")
        self._failure: str | None = None  # the current incident's error, None while writing works
        self._dropping = False
        self.dropped = 0
        self.written = 0

    def _forget_parent(self) -> None:
        fds = (self._fd, self._gate_fd)
        self._reset_runtime()
        for fd in fds:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    # -- the caller's side -----------------------------------------------------------------------------

    def format(self, record: logging.LogRecord) -> str:
        if self.formatter is None:
            self.formatter = _default_formatter()
        return self.formatter.format(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode(self._encoding, "backslashreplace")
        except Exception:
            self.handleError(record)
            return
        if self._closed:  # a line logged during or after shutdown: counted, not reported as a full queue
            with self._drop_lock:
                self.dropped += 1
            return
        if self._thread is None:
            self._start()
        waiting = not (self._dropping or self._failure is not None)
        try:
            self._queue.put(data, block=waiting and self._block > 0, timeout=self._block or None)
        except queue.Full:
            self._drop(1)

    def _drop(self, count: int) -> None:
        with self._drop_lock:
            self.dropped += count
            first = not self._dropping
            self._dropping = True
        if first:
            _report(
                f"{self.path}: the queue of {self._queue_size} lines is full ({self._failure or 'the disk is slow'});"
                " lines are dropped and counted until it drains"
            )

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            _install_hooks()
            _LIVE.add(self)
            thread = threading.Thread(target=self._run, name=f"hardenkit-logfile:{self.path}", daemon=True)
            thread.start()
            self._thread = thread

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout`` seconds) until every line emitted before this call is written."""
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return
        done.wait(timeout)

    def close(self) -> None:
        """Write what is queued (at most 5 s, or one attempt while the file cannot be written), then stop."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            if self._failure is not None:
                self._stopping.set()
            try:
                self._queue.put(_STOP, timeout=5.0)
            except queue.Full:  # a disk too slow to drain it in 5 s: the writer gives up on what is left
                self._stopping.set()
                try:
                    self._queue.put(_STOP, timeout=1.0)
                except queue.Full:
                    pass
            thread.join(5.0)
        maintenance = self._maint_thread
        if maintenance is not None and maintenance is not threading.current_thread():
            # One last pass after the writer's last rotation, so a clean stop leaves the rotated files
            # compressed and pruned (bounded wait).
            self._maint_last = True
            self._maint_wake.set()
            maintenance.join(10.0)
        for fd in (self._fd, self._gate_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = self._gate_fd = None
        _LIVE.discard(self)
        super().close()

    # -- readiness ---------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """``{"path", "writing", "error", "dropped", "queued", "written"}`` for readiness and metrics."""
        return {
            "path": self.path,
            "writing": self._failure is None,
            "error": self._failure,
            "dropped": self.dropped,
            "queued": self._queue.qsize(),
            "written": self.written,
        }

    def check(self, name: str = "log_file", *, critical: bool = False) -> Check:
        """A readiness :class:`hardenkit.health.Check`: warns (not critical) while the file cannot be written."""
        from ..health import Check

        def probe() -> dict[str, Any]:
            failure = self._failure
            if failure is None:
                return {"status": "pass", "observedValue": self.dropped, "observedUnit": "dropped lines"}
            return {"status": "fail", "output": f"{self.path}: {failure}"}

        return Check(name, probe, critical=critical, component_type="datastore")

    # -- the writer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        pending: list[bytes] = []
        while True:
            item = self._queue.get()
            if isinstance(item, bytes) and self._queue.qsize() < BATCH_LINES:
                # Linger a moment so lines arrive as batches: one wake-up and one write per batch instead
                # of a thread switch and a syscall per line, which the callers would pay for in GIL time.
                time.sleep(_LINGER)
            waiters: list[threading.Event] = []
            stop = False
            size = 0
            while True:
                if isinstance(item, bytes):
                    pending.append(item)
                    size += len(item)
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                elif item is _STOP:
                    stop = True
                if stop or len(pending) >= BATCH_LINES or size >= self._batch_bytes:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if pending:
                self._write_batch(pending, final=stop)
                pending = []
            for waiter in waiters:
                waiter.set()
            if stop:
                return

    def _write_batch(self, lines: list[bytes], *, final: bool) -> None:
        data = b"".join(lines)
        while True:
            try:
                self._write(data)
            except OSError as exc:
                if self._failure is None:
                    self._failure = _describe(exc)
                    _report(
                        f"cannot write {self.path}: {self._failure}; lines wait in the queue"
                        f" (at most {self._queue_size}, then dropped and counted), retrying every {self._retry:g} s"
                    )
                if final or self._stopping.is_set():
                    self._drop(len(lines))
                    return
                self._stopping.wait(self._retry)
                continue
            self.written += len(lines)
            if self._failure is not None:
                self._failure = None
                _report(f"writing {self.path} again ({self.dropped} lines dropped so far)")
            if self._dropping and self._queue.qsize() <= self._queue_size // 2:
                with self._drop_lock:
                    self._dropping = False
                _report(f"{self.path}: the queue drains again; {self.dropped} lines dropped so far")
            return

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self._reopen(rotate=False)
        policy = self.policy
        if (policy.mode == "size" and self._size >= policy.max_bytes) or self._clock() >= self._period_end:
            self._reopen(rotate=True)
        for _ in range(3):  # a rotation between our reopen and the gate: reopen again
            with self._gate():
                st = _stat(self.path)
                if st is None or (st.st_dev, st.st_ino) != self._ident:
                    stale = True
                else:
                    stale = False
                    self._append(data, st.st_size)
                    return
            if stale:
                self._reopen(rotate=False)
        raise OSError(errno.EAGAIN, f"{self.path} keeps being replaced")  # pragma: no cover - a hostile loop

    def _append(self, data: bytes, size: int) -> None:
        fd = self._fd
        assert fd is not None  # _write opened it
        if size != self._end and size > 0:
            size = self._trim(fd, size)
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(fd, view[written:])
        except OSError:
            if written:
                # A disk that filled mid-batch: take our partial batch back, so no line stays cut.
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass
            raise
        self._end = self._size = size + written

    def _trim(self, fd: int, size: int) -> int:
        """Cut a line that a killed writer left half-written at the end (we hold the gate: nobody else writes)."""
        if os.pread(fd, 1, size - 1) == b"\n":
            return size
        start = max(0, size - _TRIM_WINDOW)
        tail = os.pread(fd, size - start, start)
        cut = tail.rfind(b"\n")
        if cut < 0 and start > 0:
            return size  # no line end in the window: not a cut line of ours, leave it
        keep = start + cut + 1
        os.ftruncate(fd, keep)
        return keep

    def _gate(self) -> _Gate:
        if self._gate_fd is None:
            self._gate_fd = os.open(hidden(self.path, "gate"), _FLAGS, self._mode)
        return _Gate(self._gate_fd)

    def _make_dir(self) -> None:
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=self._dir_mode, exist_ok=True)
            os.chmod(directory, self._dir_mode)  # exact bits, whatever the umask

    def _reopen(self, *, rotate: bool) -> None:
        """Open the live file (rotating it first when ``rotate`` and due) with the rotation lock held."""
        self._make_dir()
        rotated = None
        now = self._clock()
        with rotation_lock(self.path), self._gate():
            st = _stat(self.path)
            if rotate and self.policy.mode is not None:
                rotated = rotate_locked(self.path, self.policy, now, st)
                if rotated is not None:
                    st = None
            if self._fd is None or st is None or (st.st_dev, st.st_ino) != self._ident:
                fd = _open_log(self.path, self._mode)
                if self._fd is not None:
                    os.close(self._fd)
                self._fd = fd
            opened = os.fstat(self._fd)
            self._ident = (opened.st_dev, opened.st_ino)
            self._size = opened.st_size
            self._end = -1  # unknown: the first write checks the tail (a writer killed before we opened)
            self._period_end = adopt(self.path, opened, self.policy, now)
        if rotated is not None or self._maint_thread is None:
            self._wake_maintenance()

    # -- compression and retention ------------------------------------------------------------------------

    def _wake_maintenance(self) -> None:
        policy = self.policy
        if policy.mode is None or not (policy.compress or policy.keep_files or policy.keep_seconds):
            return
        self._maint_wake.set()
        if self._maint_thread is None:
            thread = threading.Thread(
                target=self._maintain, name=f"hardenkit-logfile-gzip:{self.path}", daemon=True
            )
            self._maint_thread = thread
            thread.start()

    def _maintain(self) -> None:
        while True:
            self._maint_wake.wait()
            self._maint_wake.clear()
            closing = self._maint_last  # read before the pass: close() wakes us for one last one
            try:
                maintain(self.path, self.policy, self._clock(), self._mode)
            except OSError as exc:
                _report(f"cannot compress or prune rotated files of {self.path}: {_describe(exc)}")
            if closing:
                return


class _Gate:
    """``flock`` on the gate file for one batch; no-op where ``fcntl`` is missing."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _open_log(path: str, mode: int) -> int:
    try:
        fd = os.open(path, _FLAGS | os.O_EXCL, mode)
    except FileExistsError:
        return os.open(path, _FLAGS, mode)
    try:
        os.fchmod(fd, mode)  # a file we created gets exactly ``mode``, whatever the umask
    except OSError:  # pragma: no cover - a filesystem without permission bits
        pass
    return fd


def _describe(exc: OSError) -> str:
    if exc.errno is not None and exc.strerror:
        return f"[Errno {exc.errno}] {exc.strerror}"
    return str(exc) or type(exc).__name__


def _default_formatter() -> logging.Formatter:
    # hardenkit's JSON lines, as configure_logging writes them to stderr.
    from .formatting import _json_formatter_class

    return _json_formatter_class()()


def file_handler_from_options(
    file: str | os.PathLike[str],
    *,
    rotate: str | int | None = None,
    keep: int | str | None = 30,
    compress: bool = False,
    utc: bool = True,
    formatter: logging.Formatter | None = None,
    redact: bool = False,
) -> LogFileHandler:
    """The file destination of ``configure_logging(file=..., rotate=..., keep=..., compress=..., utc=...)``.

    Marked as hardenkit's (a later ``configure_logging`` replaces it) and sharing the console's
    formatter; there, records reach it already redacted by the console handler's filter, which runs
    first. ``redact=True`` gives it a :class:`RedactingFilter` of its own (``harden(log_file=...)``
    without ``configure_logging``).
    """
    handler = LogFileHandler(file, rotate=rotate, keep=keep, compress=compress, utc=utc)
    if formatter is not None:
        handler.setFormatter(formatter)
    if redact:
        from .filters import RedactingFilter

        handler.addFilter(RedactingFilter())
    handler._hardenkit = True  # type: ignore[attr-defined]
    return handler
