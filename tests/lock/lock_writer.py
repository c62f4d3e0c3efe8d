"""Test helper: update a JsonState forever, so that a test can SIGKILL it mid-write.

``python tests/lock/lock_writer.py PATH`` prints ``writing`` after its first update. Every version of the
file is ``{"n": N, "check": "N" * 2000}``, so a torn or mixed file is detectable.
"""

from __future__ import annotations

import sys

from hardenkit.lock import JsonState


def main() -> None:
    state = JsonState(sys.argv[1], fsync=True)
    for i in range(1_000_000):
        with state.update() as data:
            n = data.get("n", 0) + 1
            data["n"] = n
            data["check"] = str(n) * 2000
        if i == 0:
            print("writing", flush=True)


if __name__ == "__main__":
    main()
