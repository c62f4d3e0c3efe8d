"""atomic_write: replace a file so that readers see the old bytes or the new, never a mix.

Standard library only (hardenkit.lock must stay cheap to import from scripts).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import stat
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import IO, Any, BinaryIO, Literal, TextIO, overload

from .links import Target, open_target

__all__ = ["atomic_write", "replace_file"]

StrPath = str | os.PathLike[str]

_TEMP_SUFFIX = ".hktmp"
_HOST_TAG: tuple[int, str] | None = None  # (pid that computed it, tag); recomputed after fork


def _host_tag() -> str:
    # Temp names carry a short digest of the host name, so the sweep of orphaned temp files (below) never
    # judges a file written from another machine sharing the directory by this machine's process table.
    global _HOST_TAG
    pid = os.getpid()
    if _HOST_TAG is None or _HOST_TAG[0] != pid:
        digest = hashlib.blake2s(socket.gethostname().encode(), digest_size=4).hexdigest()
        _HOST_TAG = (pid, digest)
    return _HOST_TAG[1]


def temp_path_for(target: str) -> str:
    """A fresh temp name beside ``target``: ``.<name>.<host>-<pid>.<random>.hktmp``."""
    directory, name = os.path.split(target)
    return os.path.join(
        directory, f".{name}.{_host_tag()}-{os.getpid()}.{secrets.token_hex(6)}{_TEMP_SUFFIX}"
    )


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie not yet reaped counts as alive)."""
    if sys.platform == "win32":  # pragma: no cover - signal 0 means CTRL_C_EVENT there; assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # pragma: no cover - EPERM (another user's process) cannot happen to root, as here
        return True
    return True


def sweep_orphans(target: str, *, dir_fd: int | None = None) -> None:
    """Remove temp files beside ``target`` left by writers on this host whose process is gone.

    A writer killed between creating its temp file and ``os.replace`` leaves the temp file behind; the
    next successful write cleans up, so they never pile up. Files of live writers (including other
    threads of this process) are left alone. With ``dir_fd``, the directory open there is swept.
    """
    directory, name = os.path.split(target)
    prefix = f".{name}.{_host_tag()}-"
    me = os.getpid()
    try:
        entries = os.scandir(dir_fd if dir_fd is not None else directory or ".")
    except OSError:  # pragma: no cover - the directory went away right after our rename into it
        return
    with entries:
        for entry in entries:
            entry_name = entry.name
            if not (entry_name.startswith(prefix) and entry_name.endswith(_TEMP_SUFFIX)):
                continue
            pid_text = entry_name[len(prefix) :].partition(".")[0]
            if not pid_text.isdigit():
                continue
            pid = int(pid_text)
            if pid != me and not pid_alive(pid):
                with suppress(OSError):
                    if dir_fd is not None:
                        os.unlink(entry_name, dir_fd=dir_fd)
                    else:  # pragma: no cover - platforms without dir_fd
                        os.unlink(entry.path)


def _open_temp(target: Target) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_NOFOLLOW", 0)
    while True:
        temp = os.path.basename(temp_path_for(target.path))
        try:
            # 0o666 through the umask: a new file gets exactly the bits open(path, "w") would have given it.
            return os.open(target.at(temp), flags, 0o666, dir_fd=target.dir_fd), temp
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue


def _copy_metadata(fd: int, target: Target, like: os.stat_result | None) -> None:
    existing = like
    if existing is None:
        try:
            # The entry itself: a link here is one the caller chose not to follow (follow=False).
            existing = os.stat(target.at(target.name), dir_fd=target.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(existing.st_mode):
            return
    if sys.platform != "win32" and (existing.st_uid != os.geteuid() or existing.st_gid != os.getegid()):
        # Best effort: only root may give a file away, but a member may set its group. Before the chmod,
        # since chown clears the set-id bits.
        with suppress(PermissionError):
            os.fchown(fd, existing.st_uid, existing.st_gid)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, stat.S_IMODE(existing.st_mode))


def _finish(fileobj: IO[Any], temp: str, target: Target, *, fsync: bool) -> None:
    fileobj.flush()
    if fsync:
        os.fsync(fileobj.fileno())
    fileobj.close()
    # Both names relative to the directory that was judged: a path swapped meanwhile changes nothing.
    os.replace(target.at(temp), target.at(target.name), src_dir_fd=target.dir_fd, dst_dir_fd=target.dir_fd)
    if target.dir_fd is None or not target.listable:
        # No directory descriptor to fsync or list: Windows, or a directory we may not read (-wx).
        return
    if fsync:
        os.fsync(target.dir_fd)  # makes the rename itself durable (POSIX)
    sweep_orphans(target.path, dir_fd=target.dir_fd)


@contextmanager
def _atomic_file(
    path: StrPath,
    *,
    binary: bool,
    encoding: str,
    fsync: bool,
    follow: bool = True,
    like: os.stat_result | None = None,
) -> Iterator[IO[Any]]:
    target = open_target(path, follow=follow)
    try:
        fd, temp = _open_temp(target)
        fileobj: IO[Any] | None = None
        try:
            _copy_metadata(fd, target, like)
            fileobj = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding=encoding)
            yield fileobj
            _finish(fileobj, temp, target, fsync=fsync)
        except BaseException:
            # Whatever failed (the caller's block, a full disk, a bad encoding, a cancelled task), the
            # target keeps its old bytes and no temp file stays behind.
            with suppress(OSError):
                if fileobj is None:
                    os.close(fd)
                else:
                    fileobj.close()
            with suppress(OSError):
                os.unlink(target.at(temp), dir_fd=target.dir_fd)
            raise
    finally:
        target.close()


def replace_file(path: StrPath, data: bytes, *, fsync: bool, like: os.stat_result | None = None) -> None:
    """Atomically put ``data`` at ``path`` itself: a symlink there is replaced, never followed.

    For files hardenkit owns by name (holder records, backups, corrupt copies), where a link could only
    have been planted. ``like`` gives the new file that file's permission bits and owner (a copy of a
    state file keeps its mode); without it, an existing regular file's are kept, as atomic_write does.
    """
    with _atomic_file(path, binary=True, encoding="utf-8", fsync=fsync, follow=False, like=like) as fileobj:
        fileobj.write(data)


@overload
def atomic_write(
    path: StrPath,
    data: str | bytes | bytearray | memoryview,
    *,
    binary: bool = False,
    encoding: str = "utf-8",
    fsync: bool = True,
) -> None: ...
@overload
def atomic_write(
    path: StrPath,
    data: None = None,
    *,
    binary: Literal[False] = False,
    encoding: str = "utf-8",
    fsync: bool = True,
) -> AbstractContextManager[TextIO]: ...
@overload
def atomic_write(
    path: StrPath,
    data: None = None,
    *,
    binary: Literal[True],
    encoding: str = "utf-8",
    fsync: bool = True,
) -> AbstractContextManager[BinaryIO]: ...
@overload
def atomic_write(
    path: StrPath,
    data: None = None,
    *,
    binary: bool,
    encoding: str = "utf-8",
    fsync: bool = True,
) -> AbstractContextManager[IO[Any]]: ...
def atomic_write(
    path: StrPath,
    data: str | bytes | bytearray | memoryview | None = None,
    *,
    binary: bool = False,
    encoding: str = "utf-8",
    fsync: bool = True,
) -> AbstractContextManager[IO[Any]] | None:
    """Replace ``path`` atomically: readers and crashes see the old content or the new, never a torn file.

    With ``data`` (``str`` is encoded with ``encoding``; bytes-like is written as is) the write happens at
    once. Without it, a context manager yields a file open for writing (text, or binary with
    ``binary=True``); the file is replaced when the block ends without an exception and left untouched
    otherwise.

    Steps: a temp file in the same directory (so ``os.replace`` is a rename on one filesystem), the
    existing file's permission bits (and owner, where allowed) copied onto it, flush, ``fsync``,
    ``os.replace``, then an ``fsync`` of the directory so the rename itself survives a power cut.
    ``fsync=False`` skips both fsyncs: still atomic against crashes of the process, not of the machine.
    The temp file is removed on any error, and temp files left by killed writers on this host are removed
    by the next successful write.

    A symlink at ``path`` is followed (the file it points to is replaced, the link stays), except where
    another user could have planted it: a link in a shared sticky directory (``/tmp``, mode 1777) that
    does not belong to the caller raises :class:`PermissionError` and nothing is written (the rule of
    Linux's ``fs.protected_symlinks``, applied to every link of a chain).
    """
    if data is None:
        # Refuse a planted link at the call, not only when the block is entered (where the links are
        # judged again, and the directory held open, for the write itself).
        try:
            open_target(path).close()
        except PermissionError:
            raise
        except OSError:  # a missing directory and the like: reported when the block is entered, as before
            pass
        return _atomic_file(path, binary=binary, encoding=encoding, fsync=fsync)
    payload: bytes | bytearray | memoryview
    if isinstance(data, str):
        payload = data.encode(encoding)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        payload = data
    else:
        raise TypeError(f"atomic_write() data must be str or bytes, not {type(data).__name__}")
    with _atomic_file(path, binary=True, encoding=encoding, fsync=fsync) as fileobj:
        fileobj.write(payload)
    return None
