"""Count in a JSON file shared by many processes, without losing an increment.

Run several at once; the final count is exactly the sum of their --times::

    python examples/lock_counter.py counter.json --times 100 &
    python examples/lock_counter.py counter.json --times 100 &
    wait; python -c "import json; print(json.load(open('counter.json')))"   # {"count": 200}

Each increment locks ``counter.json.lock``, reads the file, adds one and replaces the file atomically
(keeping the previous three versions as counter.json.1 .. .3).
"""

from __future__ import annotations

import argparse

from hardenkit.lock import JsonState


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the JSON state file")
    parser.add_argument("--times", type=int, default=1, help="how many increments (default 1)")
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="skip fsync: still atomic if this process crashes, not if the machine loses power",
    )
    args = parser.parse_args(argv)
    state = JsonState(args.path, fsync=not args.no_fsync, lock_timeout=60)
    for _ in range(args.times):
        with state.update() as data:
            data["count"] = data.get("count", 0) + 1
    print(state.read()["count"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
