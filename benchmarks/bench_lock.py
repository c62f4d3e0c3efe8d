"""hardenkit.lock against raw filelock, in one process, interleaved rounds.

    .venv/bin/python benchmarks/bench_lock.py [--rounds 15] [--ops 2000]

1. Uncontended acquire + release: hardenkit FileLock (records the holder, thread-safe gate) vs
   filelock.FileLock (default, thread-local) and filelock.FileLock(thread_local=False); the async path
   (`async with`) vs filelock's AsyncFileLock, on asyncio.
2. JsonState updates per second, with and without fsync, vs a naive read-modify-write under a raw
   filelock (json.dump in place: not atomic, no backups) for scale.

Prints the median of each contender over the rounds and its ratio to the raw filelock baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import filelock
from filelock.asyncio import AsyncUnixFileLock

from hardenkit.lock import FileLock, JsonState


def per_op_us(run: Callable[[int], None], ops: int) -> float:
    started = time.perf_counter()
    run(ops)
    return (time.perf_counter() - started) / ops * 1e6


def sync_loop(lock: FileLock | filelock.BaseFileLock) -> Callable[[int], None]:
    def run(ops: int) -> None:
        for _ in range(ops):
            lock.acquire()
            lock.release()

    return run


def hk_async_loop(lock: FileLock) -> Callable[[int], None]:
    async def main(ops: int) -> None:
        for _ in range(ops):
            async with lock:
                pass

    return lambda ops: asyncio.run(main(ops))


def fl_async_loop(path: str) -> Callable[[int], None]:
    async def main(ops: int) -> None:
        lock = AsyncUnixFileLock(path)
        for _ in range(ops):
            async with lock:
                pass

    return lambda ops: asyncio.run(main(ops))


def naive_update(path: Path, lock: filelock.BaseFileLock) -> Callable[[int], None]:
    def run(ops: int) -> None:
        for _ in range(ops):
            with lock:
                try:
                    data = json.loads(path.read_text())
                except FileNotFoundError:
                    data = {}
                data["n"] = data.get("n", 0) + 1
                path.write_text(json.dumps(data))

    return run


def state_update(state: JsonState) -> Callable[[int], None]:
    def run(ops: int) -> None:
        for _ in range(ops):
            with state.update() as data:
                data["n"] = data.get("n", 0) + 1

    return run


def report(title: str, results: dict[str, list[float]], baseline: str, unit: str = "us/op") -> None:
    print(f"\n{title}")
    base = statistics.median(results[baseline])
    for name, samples in results.items():
        median = statistics.median(samples)
        extra = f"  ({1e6 / median:,.0f} ops/s)" if unit == "us/op" else ""
        print(f"  {name:<48} {median:9.1f} {unit}  x{median / base:.2f}{extra}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        locks: dict[str, Callable[[int], None]] = {
            "filelock.FileLock() [baseline]": sync_loop(filelock.FileLock(str(d / "raw.lock"))),
            "filelock.FileLock(thread_local=False)": sync_loop(
                filelock.FileLock(str(d / "raw_shared.lock"), thread_local=False)
            ),
            "hardenkit FileLock": sync_loop(FileLock(d / "hk.lock")),
            "filelock AsyncUnixFileLock, asyncio": fl_async_loop(str(d / "raw_async.lock")),
            "hardenkit FileLock async with, asyncio": hk_async_loop(FileLock(d / "hk_async.lock")),
        }
        lock_results: dict[str, list[float]] = {name: [] for name in locks}
        for _ in range(args.rounds):
            for name, run in locks.items():  # interleaved: every contender runs in every round
                lock_results[name].append(per_op_us(run, args.ops))
        report(
            f"uncontended acquire+release, {args.ops} ops x {args.rounds} rounds (median)",
            lock_results,
            "filelock.FileLock() [baseline]",
        )

        updates: dict[str, tuple[Callable[[int], None], int]] = {
            "naive: raw filelock + json.dump in place [baseline]": (
                naive_update(d / "naive.json", filelock.FileLock(str(d / "naive.json.lock"))),
                200,
            ),
            "JsonState.update(), fsync=False, backups=3": (
                state_update(JsonState(d / "nofsync.json", fsync=False)),
                200,
            ),
            "JsonState.update(), fsync=False, backups=0": (
                state_update(JsonState(d / "nofsync0.json", fsync=False, backups=0)),
                200,
            ),
            "JsonState.update(), fsync=True, backups=3": (state_update(JsonState(d / "fsync.json")), 20),
        }
        update_results: dict[str, list[float]] = {name: [] for name in updates}
        for _ in range(max(3, args.rounds // 3)):
            for name, (run, ops) in updates.items():
                update_results[name].append(per_op_us(run, ops))
        report("read-modify-write of a small JSON counter (median)", update_results, next(iter(updates)))


if __name__ == "__main__":
    main()
