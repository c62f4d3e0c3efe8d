"""``hardenkit lock PATH [--timeout S] [--soft] -- CMD ARGS...``: run a command holding a file lock.

Imports only :mod:`hardenkit.lock` (never the web stack).
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from ..lock import FileLock, LockError, LockTimeout

EX_USAGE = 2
EX_CANTCREAT = 73
EX_TEMPFAIL = 75  # sysexits.h: "try again later", what flock(1)-style wrappers use for a busy lock


def _cli_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hardenkit lock",
        usage="hardenkit lock PATH [--timeout S] [--soft] -- CMD [ARGS...]",
        description=(
            "Run CMD while holding the file lock PATH and exit with CMD's status. "
            f"If the lock stays held past the timeout, exit {EX_TEMPFAIL} and name the holder on stderr."
        ),
    )
    parser.add_argument("path", metavar="PATH", help="lock file (created if missing, never deleted)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for the lock (default 10; 0 = one attempt; inf = wait forever)",
    )
    parser.add_argument("--soft", action="store_true", help="marker-file lock for network filesystems")
    return parser


def main(argv: list[str]) -> int:
    """``hardenkit lock PATH [--timeout S] [--soft] -- CMD ARGS...``"""
    parser = _cli_parser()
    if "--" not in argv:
        if any(arg in ("-h", "--help") for arg in argv):
            parser.print_help()
            return 0
        parser.print_usage(sys.stderr)
        print("hardenkit lock: error: put -- before the command to run", file=sys.stderr)
        return EX_USAGE
    split = argv.index("--")
    command = argv[split + 1 :]
    try:
        args = parser.parse_args(argv[:split])
    except SystemExit as exc:  # argparse already printed the reason
        return exc.code if isinstance(exc.code, int) else EX_USAGE
    if not command:
        parser.print_usage(sys.stderr)
        print("hardenkit lock: error: no command given after --", file=sys.stderr)
        return EX_USAGE
    if not args.timeout >= 0:
        print(f"hardenkit lock: error: --timeout must be >= 0 or inf, got {args.timeout}", file=sys.stderr)
        return EX_USAGE

    lock = FileLock(args.path, timeout=args.timeout, soft=args.soft)
    try:
        lock.acquire()
    except LockTimeout as exc:
        print(f"hardenkit lock: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    except LockError as exc:
        print(f"hardenkit lock: {exc}", file=sys.stderr)
        return EX_CANTCREAT
    try:
        return _run_forwarding_signals(lock, command)
    finally:
        lock.release()


def _run_forwarding_signals(lock: FileLock, command: list[str]) -> int:
    try:
        # The command holds the lock with us, as with flock(1): it inherits the locked descriptor, so a
        # SIGKILL of this wrapper leaves the lock held until the command ends (a soft lock cannot be
        # inherited: there the command dies with us). Our release at the end unlocks it for everyone, so a
        # daemon the command leaves behind does not keep it.
        child = lock.spawn(command)
    except FileNotFoundError:
        print(f"hardenkit lock: command not found: {command[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"hardenkit lock: command not executable: {command[0]}", file=sys.stderr)
        return 126
    except OSError as exc:  # e.g. ETXTBSY: the command's file is open for writing elsewhere
        print(f"hardenkit lock: cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 126

    def forward(signum: int, frame: FrameType | None) -> None:
        if child.returncode is None:
            child.send_signal(signum)

    forwarded = [signal.SIGTERM, signal.SIGINT]
    if hasattr(signal, "SIGHUP"):
        forwarded.append(signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in forwarded}
    try:
        status = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # A child killed by a signal reports -N; shells report 128 + N.
    return status if status >= 0 else 128 - status
