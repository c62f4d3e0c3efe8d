"""Which symlinks a writer may follow, and a directory descriptor to write in once they are judged.

Standard library only. The rule is the one of Linux's ``fs.protected_symlinks``, applied by hardenkit
itself so that it holds whatever the sysctl says and wherever the path is resolved in user space, and
stricter by one case: a symlink that sits in a *shared sticky* directory (sticky, and writable by its
group or by everyone, as ``/tmp``) is followed only when the caller owns it. Anyone can plant a link in
such a directory; the sticky bit only stops them from removing other people's entries, so a link owned by
the caller cannot have been planted or swapped by someone else. (The kernel also trusts links of the
directory's owner; a sticky directory owned by another user is that user's to fill with links, so here
those are refused too.)

Every link on the way is judged where it sits, the final link and the links in the directory part alike
(``/tmp/app/out.txt`` where ``/tmp/app`` was planted as a link to ``/etc``), and the target's directory is
then held open, so that what is written is created and renamed in the directory that was judged, not in
whatever a path names later. ``realpath()`` is never used to pick where to write: it follows every link
without judging any.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

__all__ = ["Target", "foreign_in_shared_dir", "open_target", "read_bytes", "untrusted_link"]

_MAX_LINKS = 40  # as the kernel's MAXSYMLINKS: a longer chain is a loop
_SHARED = stat.S_IWGRP | stat.S_IWOTH
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
# os.replace takes src_dir_fd/dst_dir_fd where os.rename does (supports_dir_fd lists only rename).
_HAVE_DIR_FD = {os.open, os.rename, os.stat, os.readlink, os.unlink} <= os.supports_dir_fd


class Target(NamedTuple):
    """Where to write: ``name`` inside the directory open as ``dir_fd`` (``None``: use ``path``)."""

    path: str  # the target's path as resolved (for messages and for platforms without dir_fd)
    directory: str
    name: str
    dir_fd: int | None
    listable: bool = True  # False: the directory could be opened only with O_PATH (write and search only)

    def at(self, name: str) -> str:
        """``name`` as the os functions taking ``dir_fd=self.dir_fd`` want it."""
        return name if self.dir_fd is not None else os.path.join(self.directory, name)

    def close(self) -> None:
        if self.dir_fd is not None:
            os.close(self.dir_fd)


def _shared_sticky(directory: os.stat_result) -> bool:
    return bool(directory.st_mode & stat.S_ISVTX) and bool(directory.st_mode & _SHARED)


def foreign_in_shared_dir(uid: int, directory: os.stat_result) -> bool:
    """Whether an entry owned by ``uid`` in ``directory`` (its stat) may be someone else's doing.

    True in a shared sticky directory when ``uid`` is neither the caller's nor the directory owner's.
    """
    if not _shared_sticky(directory):
        return False
    euid = os.geteuid() if hasattr(os, "geteuid") else uid
    return uid not in (euid, directory.st_uid)


def untrusted_link(link: os.stat_result, directory: os.stat_result) -> bool:
    """Whether following ``link`` (its lstat) in ``directory`` (its stat) could be someone else's doing."""
    if not stat.S_ISLNK(link.st_mode) or not _shared_sticky(directory):
        return False
    return link.st_uid != (os.geteuid() if hasattr(os, "geteuid") else link.st_uid)


def _refuse(path: str, link: os.stat_result, directory: str) -> PermissionError:
    return PermissionError(
        errno.EACCES,
        f"refusing to follow symlink {path}: it belongs to uid {link.st_uid} in the shared sticky directory "
        f"{directory}, so another user may have planted it; remove it or write to the file's real path",
        path,
    )


_O_PATH = getattr(os, "O_PATH", 0)
# Each directory of the path is opened by name relative to the one before, never followed if it is a link:
# O_PATH needs only search permission (a 0711 home directory can be crossed, as by the kernel).
_WALK_FLAGS = (
    _O_PATH | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


def _isdir_error(path: str) -> IsADirectoryError:
    return IsADirectoryError(errno.EISDIR, "the path names a directory; write a file path", path)


def _parts(path: str) -> list[str]:
    return [part for part in path.split(os.sep) if part and part != "."]


def open_target(path: str | os.PathLike[str], *, follow: bool = True) -> Target:
    """Judge every link on the way to ``path`` and open the directory the write will happen in.

    Each component is looked at in the directory opened before it: a directory is entered by descriptor
    (``O_NOFOLLOW``), a link is judged where it sits, read there, and its target walked from there (from
    ``/`` when it is absolute), as the kernel resolves a path. ``follow=False`` does not follow a link that
    is the last component: a write then replaces the link itself. The caller closes the returned target.
    """
    text = os.path.abspath(os.fspath(path))
    if not (_O_PATH and _HAVE_DIR_FD):  # pragma: no cover - not Linux: the kernel resolves the directories
        return _open_target_by_path(text, follow=follow)
    pending = _parts(text)
    if not pending:
        raise _isdir_error(text)
    fd = os.open("/", _WALK_FLAGS)
    walked = "/"  # the directory ``fd`` is, for messages
    hops = 0
    try:
        while True:
            part = pending.pop(0)
            last = not pending
            if last and part == "..":
                raise _isdir_error(text)
            try:
                entry = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if not last:
                    raise
                entry = None
            if entry is not None and stat.S_ISLNK(entry.st_mode) and (follow or not last):
                hops += 1
                if hops > _MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", text)
                here = os.path.join(walked, part)
                if untrusted_link(entry, os.fstat(fd)):
                    raise _refuse(here, entry, walked)
                # Read where it was judged: a link the caller owns in a sticky directory cannot be swapped.
                pointed = os.readlink(part, dir_fd=fd)
                if os.path.isabs(pointed):
                    root = os.open("/", _WALK_FLAGS)
                    os.close(fd)
                    fd, walked = root, "/"
                pending[:0] = _parts(pointed)
                if not pending:  # a link to "/" or "."
                    raise _isdir_error(here)
                continue
            if last:
                return _final(fd, walked, part)
            directory = os.open(part, _WALK_FLAGS, dir_fd=fd)  # ELOOP if swapped for a link meanwhile
            os.close(fd)
            fd = directory
            walked = os.path.normpath(os.path.join(walked, part))
    except BaseException:
        os.close(fd)
        raise


def _final(walk_fd: int, walked: str, name: str) -> Target:
    # The directory to write in, opened for reading where allowed (its fsync and the temp-file sweep need
    # that); a directory one may write in but not list (mode -wx) keeps its O_PATH descriptor.
    try:
        fd = os.open(".", _DIR_FLAGS, dir_fd=walk_fd)
    except PermissionError:
        return Target(os.path.join(walked, name), walked, name, walk_fd, listable=False)
    os.close(walk_fd)
    return Target(os.path.join(walked, name), walked, name, fd)


def _open_target_by_path(current: str, *, follow: bool) -> Target:  # pragma: no cover - not Linux
    for _ in range(_MAX_LINKS + 1):
        directory, name = os.path.split(current)
        if name in ("", ".", ".."):
            raise _isdir_error(current)
        dir_fd = os.open(directory, _DIR_FLAGS) if _HAVE_DIR_FD else None
        target = Target(current, directory, name, dir_fd)
        try:
            try:
                entry = os.stat(target.at(name), dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return target
            if not follow or not stat.S_ISLNK(entry.st_mode):
                return target
            if untrusted_link(entry, os.stat(directory)):
                raise _refuse(current, entry, directory)
            pointed = os.readlink(target.at(name), dir_fd=dir_fd)
        except BaseException:
            target.close()
            raise
        target.close()
        current = os.path.join(directory, pointed)
    raise OSError(errno.ELOOP, "too many levels of symbolic links", current)


def read_bytes(path: str | os.PathLike[str]) -> bytes | None:
    """The file's bytes (``None`` when missing), following only links :func:`open_target` would follow."""
    try:
        target = open_target(path)
    except FileNotFoundError:  # the directory is missing
        return None
    try:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(target.at(target.name), flags, dir_fd=target.dir_fd)
        except FileNotFoundError:
            return None
        with open(fd, "rb") as fileobj:
            return fileobj.read()
    finally:
        target.close()
