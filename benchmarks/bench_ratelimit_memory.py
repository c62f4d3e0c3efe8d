"""Memory of the in-process rate-limit store: bytes per key, and RSS under a flood of distinct keys.

Part 1 (bytes per key): tracemalloc around N distinct clients entering one
limiter's store, for each strategy, with one limit per policy.

Part 2 (RSS stays flat at the cap): 1,000,000 requests, each from a new client
(a rotating API key), through RateLimitMiddleware with ``max_keys`` set, driven
in process (no sockets); RSS is sampled every 100,000 requests. With the cap the
process stops growing once the store is full; without a cap (max_keys equal to
the number of keys, the old behaviour) it grows with every key.

    .venv/bin/python benchmarks/bench_ratelimit_memory.py [--keys 1000000] [--cap 100000] [--compare]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import time
import tracemalloc
from pathlib import Path
from typing import Any

from limits import parse

from hardenkit.ratelimit import RateLimitMiddleware
from hardenkit.ratelimit.engine import Window
from hardenkit.ratelimit.memory import LocalEngine


def rss_mb() -> float:
    """Resident set size now (Linux /proc), else the peak from getrusage."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bytes_per_key(strategy: str, keys: int = 50_000) -> float:
    engine = LocalEngine(strategy, max_keys=keys + 1)
    window = Window(parse("100/day"), "default")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(keys):
        # The key string (an API key of 32 hex characters) lives as long as its entry.
        engine.decide((window,), "default", f"k:{n:032x}", 1, False)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(engine) == keys
    return (after - before) / keys


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def flood(keys: int, cap: int, strategy: str) -> list[tuple[int, float]]:
    app = RateLimitMiddleware(
        ok_app, default="100/day", key="header:X-API-Key", max_keys=cap, strategy=strategy, headers=None
    )
    samples = [(0, rss_mb())]
    messages: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        messages.append(message)

    for n in range(1, keys + 1):
        scope = {
            "type": "http", "method": "GET", "path": "/", "root_path": "", "query_string": b"",
            "headers": [(b"x-api-key", f"{n:032x}".encode())], "client": ("203.0.113.1", 1),
        }  # fmt: skip
        await app(scope, receive, send)
        messages.clear()
        if n % (keys // 10) == 0:
            samples.append((n, rss_mb()))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--cap", type=int, default=100_000)
    parser.add_argument("--strategy", default="sliding-window")
    parser.add_argument("--compare", action="store_true", help="also run without an effective cap")
    args = parser.parse_args()

    print("bytes per key in the store (one limit, 32-character API keys):")
    for strategy in ("fixed-window", "sliding-window", "moving-window"):
        print(f"  {strategy:15s} {bytes_per_key(strategy):6.0f} B")

    for cap in (args.cap, args.keys) if args.compare else (args.cap,):
        label = f"max_keys={cap:,}" + (" (no effective cap)" if cap >= args.keys else "")
        started = time.perf_counter()
        samples = asyncio.run(flood(args.keys, cap, args.strategy))
        took = time.perf_counter() - started
        print(f"\n{args.keys:,} distinct keys, {args.strategy}, {label}: {took:.0f} s")
        print("  requests      RSS MB")
        for n, rss in samples:
            print(f"  {n:>9,}  {rss:9.1f}")
        gc.collect()


if __name__ == "__main__":
    main()
