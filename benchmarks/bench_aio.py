"""Per-call cost of hardenkit.aio.to_async against raw anyio and asyncer, in one run.

    .venv/bin/python benchmarks/bench_aio.py            # asyncio and trio
    .venv/bin/python benchmarks/bench_aio.py asyncio    # one backend

Each variant runs a trivial sync function in a worker thread, so the time per
call is the wrapper's overhead plus the thread hand-off that every variant pays:

* raw       ``await anyio.to_thread.run_sync(fn, i, limiter=CapacityLimiter(40))``
* hardenkit ``await to_async(fn)(i)`` (hardenkit's "default" pool of 40 threads)
* named     ``await to_async(fn, limiter="db")(i)``
* timeout   ``await to_async(fn, limiter="db", timeout=5)(i)`` (the token-keeping path)
* raw+fail_after  raw inside ``anyio.fail_after(5)``: the price of a deadline alone,
  the fair base for the timeout path
* asyncer   ``await asyncer.asyncify(fn)(i)``

Rounds are interleaved (the variant order rotates each round) so that noise
from the shared machine hits every variant alike; ratios are the median over
rounds of the ratio measured within one round. "raw again" is raw measured a
second time: its distance from 1.000x is the noise floor of the run. Targets: hardenkit <= 1.1x raw and <= asyncer.
Two shapes: sequential calls (latency) and 64 concurrent callers (throughput).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import anyio
import anyio.to_thread
from asyncer import asyncify

from hardenkit.aio import configure_limiter, to_async

CALLS = 640
ROUNDS = 25
CONCURRENCY = 64


def work(i: int) -> int:
    return i + 1


def variants() -> dict[str, Callable[[int], Awaitable[int]]]:
    raw_limiter = anyio.CapacityLimiter(40)
    control_limiter = anyio.CapacityLimiter(40)

    async def raw(i: int) -> int:
        return await anyio.to_thread.run_sync(work, i, limiter=raw_limiter)

    async def raw_again(i: int) -> int:  # the same as raw: shows the noise floor of this machine
        return await anyio.to_thread.run_sync(work, i, limiter=control_limiter)

    async def raw_deadline(i: int) -> int:  # what a timeout costs with anyio alone (token given back early)
        with anyio.fail_after(5):
            return await anyio.to_thread.run_sync(work, i, limiter=raw_limiter)

    configure_limiter("db", 40)
    return {
        "raw": raw,
        "raw again": raw_again,
        "raw+fail_after": raw_deadline,
        "hardenkit": to_async(work),
        "named": to_async(work, limiter="db"),
        "timeout": to_async(work, limiter="db", timeout=5),
        "asyncer": asyncify(work),
    }


async def sequential(call: Callable[[int], Awaitable[int]]) -> float:
    start = time.perf_counter()
    for i in range(CALLS):
        await call(i)
    return (time.perf_counter() - start) / CALLS


async def concurrent(call: Callable[[int], Awaitable[int]]) -> float:
    per_task = CALLS // CONCURRENCY

    async def caller() -> None:
        for i in range(per_task):
            await call(i)

    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(CONCURRENCY):
            group.start_soon(caller)
    return (time.perf_counter() - start) / (per_task * CONCURRENCY)


Samples = dict[str, dict[str, list[float]]]


async def measure() -> Samples:
    calls = variants()
    names = list(calls)
    samples: Samples = {shape: {n: [] for n in names} for shape in ("seq", "conc")}
    for call in calls.values():  # warm up: threads started, code paths hot
        await sequential(call)
    for round_ in range(ROUNDS):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            samples["seq"][name].append(await sequential(calls[name]))
            samples["conc"][name].append(await concurrent(calls[name]))
    return samples


def paired_ratio(samples: dict[str, list[float]], name: str, base: str) -> float:
    """Median over rounds of name/base measured in the same round (cancels slow drift)."""
    return statistics.median(a / b for a, b in zip(samples[name], samples[base], strict=True))


def report(backend: str, samples: Samples) -> None:
    for shape, label in (("seq", "sequential"), ("conc", f"{CONCURRENCY} concurrent callers")):
        per = samples[shape]
        print(f"\n[{backend}] {label}: {ROUNDS} interleaved rounds x {CALLS} calls")
        print(f"  {'variant':<15} {'median us/call':>15} {'vs raw':>8} {'vs asyncer':>11}")
        for name, values in per.items():
            print(
                f"  {name:<15} {statistics.median(values) * 1e6:15.2f} "
                f"{paired_ratio(per, name, 'raw'):7.3f}x {paired_ratio(per, name, 'asyncer'):10.3f}x"
            )


def main() -> None:
    backends = sys.argv[1:] or ["asyncio", "trio"]
    started = time.perf_counter()
    for backend in backends:
        report(backend, anyio.run(measure, backend=backend))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
