"""An in-process ASGI driver for benchmarks: no sockets, no client library.

``compare(stacks, ...)`` runs every stack round by round (interleaved, so that
machine noise hits them alike), each round a batch of requests, and reports the
median per-request time of each stack, its overhead over the baseline stack and
the ratio between overheads.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Headers = Sequence[tuple[bytes, bytes]]


def make_scope(
    path: str = "/", method: str = "GET", headers: Headers = (), client: str = "127.0.0.1"
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), *headers],
        "client": (client, 50000),
        "server": ("bench", 80),
        "state": {},
    }


async def call(app: Any, scope_factory: Callable[[], dict[str, Any]]) -> int:
    """One request; returns the status code."""
    status = 0
    sent_body = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # a disconnect never comes during a benchmark
        return {"type": "http.disconnect"}  # pragma: no cover

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope_factory(), receive, send)
    return status


async def _batch(app: Any, scope_factory: Callable[[], dict[str, Any]], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await call(app, scope_factory)
    return (time.perf_counter() - start) / n


def compare(
    stacks: Mapping[str, Any],
    *,
    baseline: str,
    scope_factory: Callable[[], dict[str, Any]] = make_scope,
    rounds: int = 30,
    batch: int = 500,
    warmup: int = 300,
) -> dict[str, float]:
    """Median seconds per request for each stack, measured in interleaved rounds."""

    async def run() -> dict[str, list[float]]:
        samples: dict[str, list[float]] = {name: [] for name in stacks}
        for app in stacks.values():
            await _batch(app, scope_factory, warmup)
        gc.collect()
        gc.disable()
        try:
            for index in range(rounds):
                names = list(stacks)
                if index % 2:
                    names.reverse()  # alternate the order inside a round too
                for name in names:
                    samples[name].append(await _batch(stacks[name], scope_factory, batch))
        finally:
            gc.enable()
        return samples

    samples = asyncio.run(run())
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians[baseline]
    width = max(map(len, stacks))
    print(f"{'stack':<{width}}  {'median us/req':>13}  {'overhead us':>11}")
    for name, value in medians.items():
        print(f"{name:<{width}}  {value * 1e6:>13.2f}  {(value - base) * 1e6:>11.2f}")
    return medians


def overhead_ratio(medians: Mapping[str, float], ours: str, theirs: str, baseline: str) -> float:
    return (medians[ours] - medians[baseline]) / (medians[theirs] - medians[baseline])
