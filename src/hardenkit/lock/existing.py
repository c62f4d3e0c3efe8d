"""The OS lock on a file the lock did not create (a script, a config file): nothing is ever written into it.

flock(1) users lock the script they run (``flock ./backup.sh ./backup.sh``). filelock opens its lock file
read-write, which is fine for a file it created but not for someone else's: a file open for writing cannot
be executed (``ETXTBSY``) and one that is not writable cannot be locked at all. So a file with content
that is not a hardenkit holder record is locked here, as flock(1) does, through a read-only descriptor;
``flock(2)`` locks conflict whatever the open mode, so this lock and filelock's on the same file exclude
each other. The holder record then lives beside the file (``<path>.holder``).

Standard library only; Unix only (``fcntl``): elsewhere every file goes through filelock.
"""

from __future__ import annotations

import errno
import os

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from .links import foreign_in_shared_dir

__all__ = ["SUPPORTED", "ExistingFileLock"]

SUPPORTED = fcntl is not None and hasattr(fcntl, "flock")
_BUSY = frozenset({errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK})
_OPEN_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
)


class ExistingFileLock:
    """A non-blocking, non-reentrant ``flock(2)`` on an existing file, opened read-only."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None

    @property
    def fd(self) -> int | None:
        """The locked descriptor while held."""
        return self._fd

    @property
    def is_locked(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """One attempt; True when now held. Raises OSError when the file cannot be used."""
        fd = os.open(self._path, _OPEN_FLAGS)
        try:
            opened = os.fstat(fd)
            self._check_owner(opened)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in _BUSY:
                    os.close(fd)
                    return False
                raise  # pragma: no cover - ENOLCK, ENOSYS: a filesystem without flock (FileLock says so)
            # The file may have been replaced (renamed over) while we waited: a lock on the old inode
            # excludes nobody who opens the path now, so try again on the file the path names.
            try:
                now = os.stat(self._path, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            if now is None or not os.path.samestat(now, opened):
                os.close(fd)  # closing the only descriptor drops the lock
                return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def _check_owner(self, opened: os.stat_result) -> None:
        # As filelock does for its own lock files: in a shared sticky directory another user's file can be
        # swapped for a new one at any time, which would end the exclusion while we hold the old inode.
        parent = os.stat(os.path.dirname(self._path) or ".")
        if foreign_in_shared_dir(opened.st_uid, parent):
            raise PermissionError(
                errno.EACCES,
                f"{self._path} belongs to uid {opened.st_uid} in a shared sticky directory, so its owner can "
                "replace it under the lock; lock a file of your own",
                self._path,
            )

    def release(self) -> None:
        """Unlock and close; call only while held."""
        fd, self._fd = self._fd, None
        if fd is None:  # pragma: no cover - FileLock releases only what it holds
            return
        try:
            # Unlock before closing: a child the lock was handed to shares this open file, and the lock
            # must end with the holder's release, not live on in a daemon that inherited it.
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
