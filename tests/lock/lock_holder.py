"""Test helper: hold a hardenkit FileLock until killed.

``python tests/lock/lock_holder.py PATH [--soft]`` prints ``held`` once the lock is held, then sleeps
(at most 120 s, so a forgotten process cannot linger).
"""

from __future__ import annotations

import sys
import time

from hardenkit.lock import FileLock


def main() -> None:
    lock = FileLock(sys.argv[1], soft="--soft" in sys.argv[2:], timeout=30)
    lock.acquire()
    print("held", flush=True)
    time.sleep(120)


if __name__ == "__main__":
    main()
