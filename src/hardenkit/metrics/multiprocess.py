"""Multiprocess mode for ``uvicorn --workers N`` and gunicorn, set up by the library.

Each worker process counts on its own; a scrape lands on one of them. prometheus_client's
multiprocess mode makes every worker write its values to memory-mapped files in one
directory, and any worker's scrape sums them. Doing that by hand means setting
``PROMETHEUS_MULTIPROC_DIR`` before prometheus_client is imported, choosing a directory
per service, and cleaning it; here:

* ``PROMETHEUS_MULTIPROC_DIR`` set by the user wins (their directory, their lifecycle);
* otherwise, a worker of a multi-process server (a uvicorn worker is a child process of
  the supervisor; a gunicorn worker runs under ``gunicorn.arbiter``) uses
  ``<tmp>/hardenkit-metrics-<uid>-<server pid>``: shared by the workers of one server,
  fresh for each server start, owner-only (0700). Directories of servers that are
  gone are removed when a new one starts;
* the files of dead workers are cleaned: their live gauges (requests in flight, process
  memory) are removed, so a killed worker's in-flight requests stop showing; their
  counters, histograms and summaries are merged into one archive file per type, so the
  service's totals survive worker restarts and the directory does not grow with them.

Merging and scraping exclude each other (a file lock in the directory), so no scrape
sees a dead worker's counts twice or not at all (a counter that dips looks like a reset
to Prometheus and spikes every rate). A dead worker's file is renamed aside, its values
are added to a new archive that replaces the old one, then it is deleted; a file left
aside by a crash is merged again only if the archive predates it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import re
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = ["clean_dead_workers", "is_worker", "pid_alive", "prepare", "scrape_lock", "service_dir"]

logger = logging.getLogger("hardenkit.metrics")

ENV = "PROMETHEUS_MULTIPROC_DIR"
_PREFIX = "hardenkit-metrics-"
_FILE_PID = re.compile(r"^[a-z]+(?:_[a-z]+)?_(\d+)\.db$")
# The types MultiProcessCollector sums over processes: safe to add up into one archive.
_SUMMED = re.compile(r"^(counter|histogram|summary)_(\d+)\.db$")
_ASIDE = ".merging"


def is_worker() -> bool:
    """True in a worker of a multi-process server (uvicorn --workers N, gunicorn)."""
    if "gunicorn.arbiter" in sys.modules:
        return True
    return "uvicorn" in sys.modules and multiprocessing.parent_process() is not None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def service_dir(base: str | None = None) -> Path:
    """The directory the workers of this server share: keyed by user and server (parent) pid."""
    root = Path(base or tempfile.gettempdir())
    return root / f"{_PREFIX}{os.getuid()}-{os.getppid()}"


def _remove_stale_services(root: Path) -> None:
    uid = os.getuid()
    pattern = re.compile(rf"^{_PREFIX}{uid}-(\d+)$")
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            match = pattern.match(entry.name)
            if match and not pid_alive(int(match.group(1))):
                shutil.rmtree(entry, ignore_errors=True)


def _own_dir(path: Path) -> Path:
    """Create ``path`` (0700) or check that an existing one is ours and not writable by others."""
    try:
        path.mkdir(mode=0o700, parents=False, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise ConfigurationError(f"metrics multiprocess directory {path}: {exc}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        # Anyone able to write there could plant counts in our metrics.
        raise ConfigurationError(
            f"metrics multiprocess directory {path} is not a directory owned by this user and "
            "writable only by it; remove it, or set multiprocess_dir= to a directory of your own"
        )
    return path


def prepare(mode: bool | str, directory: str | None) -> Path | None:
    """Decide on multiprocess mode and set it up; returns the directory or None (one process).

    Must run before the first metric is created: prometheus_client picks per-process
    files or in-memory values when a metric is built.
    """
    chosen: Path | None = None
    if os.environ.get(ENV):
        chosen = Path(os.environ[ENV])
        if not chosen.is_dir():
            raise ConfigurationError(f"{ENV}={chosen} is not a directory; create it before the server starts")
    elif directory is not None:
        chosen = _own_dir(Path(directory))
    elif mode is True or (mode == "auto" and is_worker()):
        chosen = service_dir()
        if not chosen.exists():
            _remove_stale_services(chosen.parent)
        chosen = _own_dir(chosen)
    if chosen is None:
        return None
    os.environ[ENV] = str(chosen)
    from prometheus_client import values

    # prometheus_client chose its value class when it was imported: if that was before the
    # variable existed (the user's own metrics module), switch it now, before our metrics exist.
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    clean_dead_workers(chosen)
    return chosen


def scrape_lock(directory: Path, *, timeout: float) -> Any:
    """The lock that merging and scraping share (``hardenkit.lock.FileLock``)."""
    from ..lock import FileLock

    return FileLock(directory / "compaction.lock", timeout=timeout)


def clean_dead_workers(directory: Path, *, locked: bool = False) -> list[int]:
    """Remove dead workers' live gauges and merge their counts into the archives; returns their pids."""
    from prometheus_client import multiprocess

    dead: set[int] = set()
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            match = _FILE_PID.match(entry.name)
            if match and (entry.name.startswith("gauge_live") or _SUMMED.match(entry.name)):
                pid = int(match.group(1))
                if pid not in dead and pid != os.getpid() and not pid_alive(pid):
                    dead.add(pid)
    for pid in sorted(dead):
        try:
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except OSError:  # noqa: PERF203
            logger.warning("could not remove the metrics files of dead worker %s", pid, exc_info=True)
    if dead or any(directory.glob(f"*{_ASIDE}")):
        if locked:
            _compact(directory, dead)
        else:
            from ..errors import LockTimeout

            try:
                with scrape_lock(directory, timeout=0):
                    _compact(directory, dead)
            except LockTimeout:
                pass  # a scrape or another worker holds it: the next scrape merges them
    return sorted(dead)


def _compact(directory: Path, dead: set[int]) -> None:
    """Merge the counter/histogram/summary files of the ``dead`` pids into per-type archives."""
    try:
        for typ in ("counter", "histogram", "summary"):
            _compact_type(directory, typ, dead)
    except OSError:
        logger.warning("could not merge dead workers' metrics files in %s", directory, exc_info=True)


def _compact_type(directory: Path, typ: str, dead: set[int]) -> None:
    from prometheus_client.mmap_dict import MmapedDict

    archive = directory / f"{typ}_archive.db"
    archived_at = archive.stat().st_mtime_ns if archive.exists() else -1
    aside: list[Path] = []
    for leftover in sorted(directory.glob(f"{typ}_*.db{_ASIDE}")):
        # Left by a crash: merged already if the archive was replaced after it was set aside.
        if archived_at >= leftover.stat().st_ctime_ns:
            leftover.unlink()
        else:
            aside.append(leftover)
    for pid in sorted(dead):
        source = directory / f"{typ}_{pid}.db"
        if source.exists():
            moved = source.with_name(source.name + _ASIDE)
            source.rename(moved)
            aside.append(moved)
    if not aside:
        return
    totals: dict[str, float] = {}
    for path in ([archive] if archive.exists() else []) + aside:
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
            totals[key] = totals.get(key, 0.0) + value
    fresh = directory / f".{typ}_archive.tmp"
    with contextlib.suppress(FileNotFoundError):
        fresh.unlink()
    merged = MmapedDict(str(fresh))  # type: ignore[no-untyped-call]
    try:
        for key, value in totals.items():
            merged.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    finally:
        merged.close()  # type: ignore[no-untyped-call]
    os.replace(fresh, archive)
    for path in aside:
        path.unlink()
