"""What every scenario shares: the settings, the service with its Redis, traffic, and sampling.

Traffic is two streams on one constant-rate schedule:

- *main*: ``GET /items/1`` from 500 rotating client keys (``X-Client: c<n>``),
  each far under its limit: the latency and availability numbers;
- *hot*: ``GET /items/2`` from one client key over its limit, whose admitted
  count per window checks that limits stay exact (or within the documented
  fallback rule while Redis is away).

The service's limiter is set through ``HARDENKIT_RATELIMIT_*`` variables: key by
the ``X-Client`` header, ``HOT_LIMIT`` per second, fixed window (windows aligned
to the second, so the client can attribute each admitted request to one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import ConstantRateClient, RunResult, get, schedule
from .procs import Redis, Service
from .stats import Sample, Slo, Verdict

HOT_LIMIT = 20
HOT_PERIOD = 1.0


@dataclass
class Settings:
    app: str = "benchmarks.load.app:app"
    workers: int = 2
    smoke: bool = True
    rate: float = 100.0  # main requests per second of the sustained profile
    hot_rate: float = 30.0
    out: Path = Path("benchmarks/results/latest")
    slo: Slo = field(default_factory=Slo)
    leak_threshold_kib_per_min: float = 1024.0
    soak_seconds: float = 0.0  # 0: the profile's default

    @property
    def default_app(self) -> bool:
        return self.app == "benchmarks.load.app:app"


def service_env(storage_url: str | None, **extra: str) -> dict[str, str]:
    env = {
        "HARDENKIT_RATELIMIT_KEY": "header:X-Client",
        "HARDENKIT_RATELIMIT_DEFAULT": f"{HOT_LIMIT}/second",
        "HARDENKIT_RATELIMIT_STRATEGY": "fixed-window",
        "HARDENKIT_RATELIMIT_ON_STORAGE_ERROR": "memory",
    }
    if storage_url:
        env["HARDENKIT_RATELIMIT_STORAGE"] = storage_url
    env.update(extra)
    return env


def traffic(phases: Sequence[tuple[float, float]], hot_rate: float) -> tuple[list[float], list[str]]:
    """The merged schedule of the main phases and a constant hot stream over the same span."""
    main = schedule(phases)
    total = sum(d for d, _ in phases)
    hot = schedule([(total, hot_rate)]) if hot_rate > 0 else []
    merged = sorted([(t, "main") for t in main] + [(t, "hot") for t in hot])
    return [t for t, _ in merged], [k for _, k in merged]


def request_for(tags: Sequence[str]) -> Callable[[int], tuple[str, tuple[tuple[str, str], ...], str]]:
    def make(index: int) -> tuple[str, tuple[tuple[str, str], ...], str]:
        if tags[index] == "hot":
            return "/items/2", (("X-Client", "hot"),), "hot"
        return "/items/1", (("X-Client", f"c{index % 500}"),), "main"

    return make


class Sampler:
    """Samples RSS/fds/threads of the worker processes every ``interval`` s in a thread."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self.rows: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        from .procs import proc_stats

        while not self._stop.is_set():
            t = round(time.monotonic() - self._t0, 2)
            for pid in self.pids():
                stats = proc_stats(pid)
                if stats:
                    self.rows.append({"t": t, "pid": pid, **stats})
            self._stop.wait(self.interval)

    def per_worker(self) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {}
        for row in self.rows:
            out.setdefault(row["pid"], []).append(row)
        return out

    def summary(self) -> dict[str, Any]:
        workers = self.per_worker()
        return {
            str(pid): {
                "rss_kib_first": rows[0].get("rss_kib"),
                "rss_kib_last": rows[-1].get("rss_kib"),
                "rss_kib_max": max(r.get("rss_kib", 0) for r in rows),
                "fds_max": max(r.get("fds", 0) for r in rows),
                "threads_max": max(r.get("threads", 0) for r in rows),
            }  # fmt: skip
            for pid, rows in workers.items()
        }


@dataclass
class Probe:
    t: float
    status: int
    health: str
    latency: float


@dataclass
class Drive:
    run: RunResult
    probes: list[Probe]
    events: dict[str, float]


async def drive(
    port: int,
    phases: Sequence[tuple[float, float]],
    hot_rate: float,
    *,
    events: Sequence[tuple[float, str, Callable[[], object]]] = (),
    probe_path: str | None = "/healthz",
    probe_port: int | None = None,
    timeout: float = 5.0,
) -> Drive:
    """Run the traffic; at each (t, name, action) of ``events`` call ``action`` in a thread.

    Meanwhile ``probe_path`` is asked every 0.25 s (on ``probe_port``, default
    the service): the readiness timeline the chaos scenarios judge.
    """
    times, tags = traffic(phases, hot_rate)
    client = ConstantRateClient(port, timeout=timeout)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    happened: dict[str, float] = {}
    probes: list[Probe] = []
    total = sum(d for d, _ in phases)

    async def run_events() -> None:
        for at, name, action in sorted(events, key=lambda e: e[0]):
            delay = t0 + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            happened[name] = round(loop.time() - t0, 3)
            await asyncio.to_thread(action)
            happened[name + ":done"] = round(loop.time() - t0, 3)

    async def run_probes() -> None:
        while loop.time() - t0 < total + 0.5:
            began = loop.time() - t0
            status, took, body = await get(probe_port or port, probe_path or "/", timeout=3.0)
            health = ""
            if body:
                try:
                    health = str(json.loads(body).get("status", ""))
                except (ValueError, AttributeError):
                    health = "?"
            probes.append(Probe(round(began, 3), status, health, round(took, 4)))
            await asyncio.sleep(0.25)

    side = [asyncio.ensure_future(run_events())]
    if probe_path:
        side.append(asyncio.ensure_future(run_probes()))
    try:
        result = await client.run(times, request_for(tags))
    finally:
        for task in side:
            if not task.done():
                await asyncio.wait_for(task, timeout=60)
    return Drive(result, probes, happened)


def hot_windows(run: RunResult) -> dict[int, int]:
    """Admitted hot requests per limit window, counting only those surely inside one window."""
    windows: dict[int, int] = {}
    for s in run.samples:
        if s.tag != "hot" or not 200 <= s.status < 300:
            continue
        sent = run.started_wall + s.intended
        first = math.floor(sent / HOT_PERIOD)
        if first == math.floor((sent + s.latency) / HOT_PERIOD):
            windows[first] = windows.get(first, 0) + 1
    return windows


def window_of(run: RunResult, t: float) -> int:
    return math.floor((run.started_wall + t) / HOT_PERIOD)


def main_samples(run: RunResult) -> list[Sample]:
    return [s for s in run.samples if s.tag == "main"]


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


@dataclass
class Outcome:
    """What one profile or scenario gives the report."""

    name: str
    kind: str  # "profile" or "chaos"
    expectation: str
    verdict: Verdict
    summary: dict[str, Any] = field(default_factory=dict)
    timeline: list[dict[str, float]] = field(default_factory=list)
    workers: dict[str, Any] = field(default_factory=dict)
    rss: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@contextlib.contextmanager
def redis_and_service(
    settings: Settings, workdir: Path, *, name: str, via: Callable[[int], int] | None = None,
    env: dict[str, str] | None = None, redis: bool = True,
) -> Iterator[tuple[Service, Redis | None]]:  # fmt: skip
    """A Redis (unless ``redis=False``) and the service on it; ``via(redis_port)`` may return a proxy port."""
    server = Redis(workdir) if redis else None
    service: Service | None = None
    try:
        url = None
        if server is not None:
            server.start()
            port = via(server.port) if via else server.port
            url = f"redis://127.0.0.1:{port}/0"
        service = Service(
            settings.app, workers=settings.workers, env=service_env(url, **(env or {})),
            log_path=workdir / f"{name}.service.log",
        )  # fmt: skip
        service.start()
        yield service, server
    finally:
        if service is not None:
            service.stop()
        if server is not None:
            server.stop()
