"""Rotation of a log file shared by many processes: policy, periods, names, retention and gzip.

Standard library and :mod:`hardenkit.lock` only. Three hidden files live beside ``app.log``:

* ``.app.log.lock``: a :class:`hardenkit.lock.FileLock` held by the one process that rotates
  (so there is one rotation per period whatever the number of writers, and a stuck rotation names
  its holder);
* ``.app.log.gate``: an ``flock`` taken exclusively around each *batch* write and around the rename,
  so no writer appends to a file that has just been renamed, and a line cut by a killed writer
  is trimmed by the next one (see :mod:`hardenkit.logs.files`);
* ``.app.log.state``: which inode is the live file and which period it holds (written with
  :func:`hardenkit.lock.atomic_write`), so a process started later, or one whose clock lags,
  learns the period without guessing from modification times.

Rotated files are named ``app.log.2026-05-01`` (daily), ``app.log.2026-05-01T13`` (hourly) or
``app.log.2026-05-01T13-04-05.000042`` (size: the rotation time and a sequence number), plus ``.gz``
once compressed. Those names sort in time order, which retention relies on.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Final, Literal

from ..errors import ConfigurationError, LockTimeout
from ..lock import FileLock, atomic_write

__all__ = ["Policy", "RotationState", "maintain", "parse_keep", "parse_rotate"]

_UNITS: Final = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}  # fmt: skip
_SIZE_RE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_KEEP_RE: Final = re.compile(r"^\s*(\d+)\s*([dh])\s*$")
_MIN_SIZE: Final = 4096  # smaller than one batch: every write would rotate

Mode = Literal["daily", "hourly", "size"]


@dataclass(frozen=True)
class Policy:
    """What to rotate on and what to keep. ``max_bytes`` only for ``mode == "size"``."""

    mode: Mode | None = None
    max_bytes: int = 0
    keep_files: int | None = 30
    keep_seconds: float | None = None
    compress: bool = False
    utc: bool = True


def parse_rotate(rotate: object) -> tuple[Mode | None, int]:
    """``None``, ``"daily"``, ``"hourly"``, a size (``"100 MB"``, ``"512 KiB"``) or a byte count."""
    if rotate is None:
        return None, 0
    if isinstance(rotate, str) and rotate.strip().lower() in ("daily", "midnight", "hourly"):
        return ("hourly" if rotate.strip().lower() == "hourly" else "daily"), 0
    size: float | None = None
    if isinstance(rotate, int) and not isinstance(rotate, bool):
        size = float(rotate)
    elif isinstance(rotate, str) and (match := _SIZE_RE.match(rotate)):
        unit = match.group(2).lower() or "b"
        if unit in _UNITS:
            size = float(match.group(1)) * _UNITS[unit]
    if size is None or size < _MIN_SIZE:
        raise ConfigurationError(
            f"rotate takes 'daily', 'hourly' or a size of at least 4 KB such as '100 MB' or '512 KiB'"
            f" (or a byte count), got {rotate!r}"
        )
    return "size", int(size)


def parse_keep(keep: object) -> tuple[int | None, float | None]:
    """``keep=30`` rotated files, ``keep="30d"`` (or ``"12h"``) of age, or ``None`` to keep everything."""
    if keep is None:
        return None, None
    if isinstance(keep, int) and not isinstance(keep, bool) and keep >= 1:
        return keep, None
    if isinstance(keep, str):
        if keep.strip().isdigit() and int(keep) >= 1:
            return int(keep), None
        match = _KEEP_RE.match(keep)
        if match and int(match.group(1)) >= 1:
            return None, int(match.group(1)) * (86400.0 if match.group(2) == "d" else 3600.0)
    raise ConfigurationError(
        f"keep takes a number of rotated files (keep=30), an age such as keep='30d' or '12h', or None; got {keep!r}"
    )


# -- periods and names ---------------------------------------------------------------------------------


def _parts(moment: float, utc: bool) -> datetime:
    # Naive on purpose: period arithmetic on wall-clock fields, turned back into epochs by _epoch.
    return (
        datetime.fromtimestamp(moment, timezone.utc).replace(tzinfo=None)
        if utc
        else datetime.fromtimestamp(moment)
    )


def _epoch(naive: datetime, utc: bool) -> float:
    return float(calendar.timegm(naive.timetuple())) if utc else naive.timestamp()


def period_of(moment: float, mode: Mode, utc: bool) -> tuple[str, float]:
    """The period key holding ``moment`` (``2026-05-01`` or ``2026-05-01T13``) and when it ends."""
    when = _parts(moment, utc)
    if mode == "hourly":
        start = when.replace(minute=0, second=0, microsecond=0)
        # Local hours across a DST change: the epoch of start + 1 h, not start's epoch + 3600.
        return start.strftime("%Y-%m-%dT%H"), _epoch(start + timedelta(hours=1), utc)
    start = when.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y-%m-%d"), _epoch(start + timedelta(days=1), utc)


_ROTATED_RE: Final = re.compile(
    r"^(?P<day>\d{4}-\d{2}-\d{2})(?:T(?P<hour>\d{2})(?:-(?P<ms>\d{2}-\d{2})\.(?P<seq>\d{6}))?)?(?:\.(?P<dup>\d+))?"
    r"(?P<gz>\.gz)?$"
)


def rotated_end(suffix: str, utc: bool) -> float | None:
    """When the content of a rotated file ends, from the part of its name after ``app.log.``."""
    match = _ROTATED_RE.match(suffix)
    if match is None:
        return None
    day = datetime.strptime(match.group("day"), "%Y-%m-%d")  # naive on purpose (see _epoch)
    if match.group("hour") is None:
        return _epoch(day + timedelta(days=1), utc)
    hour = day.replace(hour=int(match.group("hour")))
    if match.group("ms") is None:
        return _epoch(hour + timedelta(hours=1), utc)
    minute, second = (int(part) for part in match.group("ms").split("-"))
    return _epoch(hour.replace(minute=minute, second=second), utc)


def rotated_files(path: str, utc: bool) -> list[tuple[str, float]]:
    """This log's rotated files (full paths) and when each one's content ends, oldest first.

    Files named otherwise (``app.log.1`` from an external logrotate) are not ours to compress or delete.
    """
    directory, name = os.path.split(path)
    found: list[tuple[str, float]] = []
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return found
    for entry in entries:
        if entry.startswith(name + "."):
            end = rotated_end(entry[len(name) + 1 :], utc)
            if end is not None:
                found.append((os.path.join(directory, entry), end))
    found.sort(key=lambda item: (item[1], _plain(item[0])))
    return found


def _plain(path: str) -> str:
    return path[:-3] if path.endswith(".gz") else path


# -- the shared state ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationState:
    """The live file's identity and the period it holds, as the last rotation left them."""

    dev: int
    ino: int
    period: str
    seq: int = 0

    @classmethod
    def read(cls, path: str) -> RotationState | None:
        try:
            with open(path, "rb") as handle:
                data = json.loads(handle.read(4096))
            return cls(int(data["dev"]), int(data["ino"]), str(data["period"]), int(data.get("seq", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: the next rotation writes a new one

    def write(self, path: str) -> None:
        text = json.dumps({"dev": self.dev, "ino": self.ino, "period": self.period, "seq": self.seq})
        # No fsync: the state must survive a killed process, not a power cut (then the period is re-adopted).
        atomic_write(path, text + "\n", fsync=False)

    def names(self, st: os.stat_result) -> bool:
        return self.dev == st.st_dev and self.ino == st.st_ino


def hidden(path: str, what: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{what}")


def rotation_lock(path: str) -> FileLock:
    # A stuck rotation (a writer stopped mid-rename) names its holder in the LockTimeout after 10 s.
    return FileLock(hidden(path, "lock"), timeout=10.0)


def _free_name(target: str) -> str:
    # A restart may find this period's name taken (a file adopted after a crash): add .1, .2...
    if not os.path.lexists(target) and not os.path.lexists(target + ".gz"):
        return target
    for n in range(1, 10_000):
        candidate = f"{target}.{n}"
        if not os.path.lexists(candidate) and not os.path.lexists(candidate + ".gz"):
            return candidate
    raise FileExistsError(target)  # pragma: no cover - ten thousand rotations into one name


def rotate_locked(path: str, policy: Policy, now: float, st: os.stat_result | None) -> str | None:
    """Rename the live file if its period is over or it is full; called with the lock and the gate held.

    Returns the rotated file's path, or None when no rotation was due (another process did it, or
    the file is empty). The caller reopens ``path`` afterwards, creating it when missing.
    """
    state_path = hidden(path, "state")
    state = RotationState.read(state_path)
    mine = state is not None and st is not None and state.names(st)
    if policy.mode == "size":
        if st is None or st.st_size < policy.max_bytes:
            return None
        seq = (state.seq if state is not None else 0) + 1
        stamp = _parts(now, policy.utc).strftime("%Y-%m-%dT%H-%M-%S")
        target = _free_name(f"{path}.{stamp}.{seq:06d}")
        os.rename(path, target)
        RotationState(0, 0, "", seq).write(state_path)  # the new file's inode is set on open
        return target
    assert policy.mode is not None  # only called with a rotation mode
    current, _ = period_of(now, policy.mode, policy.utc)
    if st is None:
        return None
    if state is None or not mine:
        # A file this rotation did not create (first start, logrotate's new file): it holds the current period.
        RotationState(st.st_dev, st.st_ino, current, state.seq if state else 0).write(state_path)
        return None
    assert state is not None  # mine implies a state
    if state.period >= current:  # done already (or our clock lags the one that rotated): keep writing
        return None
    if st.st_size == 0:  # nothing was written in that period: no empty file for it
        RotationState(st.st_dev, st.st_ino, current, state.seq).write(state_path)
        return None
    target = _free_name(f"{path}.{state.period}")
    os.rename(path, target)
    RotationState(0, 0, current, state.seq).write(state_path)
    return target


def adopt(path: str, st: os.stat_result, policy: Policy, now: float) -> float:
    """Record a newly created live file in the state (with the lock held); returns its period's end."""
    if policy.mode is None:
        return float("inf")
    state_path = hidden(path, "state")
    state = RotationState.read(state_path)
    if policy.mode in ("daily", "hourly"):
        current, end = period_of(now, policy.mode, policy.utc)
        if state is not None and state.names(st):
            return period_of_key_end(state.period, policy) if state.period < current else end
        RotationState(st.st_dev, st.st_ino, current, state.seq if state else 0).write(state_path)
        return end
    if state is None or not state.names(st):
        RotationState(st.st_dev, st.st_ino, "", state.seq if state else 0).write(state_path)
    return float("inf")


def period_of_key_end(key: str, policy: Policy) -> float:
    end = rotated_end(key, policy.utc)
    return end if end is not None else 0.0


# -- compression and retention (off the request path: the handler's maintenance thread) -------------------


def maintain(path: str, policy: Policy, now: float, file_mode: int) -> None:
    """Compress rotated files, then delete those beyond ``keep``; skipped while another process does it."""
    if not policy.compress and policy.keep_files is None and policy.keep_seconds is None:
        return
    try:
        # Waiting is harmless here (a background thread), and each process's pass after its own
        # rotation sees that rotated file: none is left out however the passes interleave.
        lock = FileLock(hidden(path, "maintenance.lock"), timeout=30)
        lock.acquire()
    except LockTimeout:
        return  # a pass that long is compressing a huge file; the next rotation's pass catches up
    try:
        if policy.compress:
            for rotated, _ in rotated_files(path, policy.utc):
                if not rotated.endswith(".gz"):
                    _gzip(rotated, file_mode)
        files = rotated_files(path, policy.utc)
        doomed: list[str] = []
        if policy.keep_files is not None and len(files) > policy.keep_files:
            doomed += [name for name, _ in files[: len(files) - policy.keep_files]]
        if policy.keep_seconds is not None:
            doomed += [name for name, end in files if end <= now - policy.keep_seconds]
        for name in dict.fromkeys(doomed):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
    finally:
        lock.release()


def _gzip(source: str, file_mode: int) -> None:
    partial = hidden(source, "gz-partial")  # a leftover from a killed compressor is simply overwritten
    target = source + ".gz"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), file_mode)
    try:
        os.fchmod(fd, file_mode)
        with open(source, "rb") as raw, open(fd, "wb", closefd=False) as out:
            # mtime=0 and no file name in the header: the same input gives the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=6, mtime=0) as packed:
                shutil.copyfileobj(raw, packed, 1 << 20)
            out.flush()
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(partial)
        raise
    os.close(fd)
    os.replace(partial, target)
    os.unlink(source)


def now_default() -> float:
    return time.time()
