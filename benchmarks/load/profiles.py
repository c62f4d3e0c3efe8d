"""The load profiles: sustained, spike (10x), soak (memory slope), stress (ramp to the knee).

Each takes the run's Settings and a work directory and returns an Outcome whose
verdict lists every expectation with what was observed. ``--smoke`` forms last
seconds; the long forms are what benchmarks/results/ holds.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from .harness import (
    Outcome,
    Sampler,
    Settings,
    drive,
    hot_windows,
    load_note,
    main_samples,
    redis_and_service,
)
from .stats import (
    Step,
    Verdict,
    admitted_bound,
    baseline_growth,
    find_knee,
    memory_slope,
    no_failures,
    slo_checks,
    summarize,
    timeline,
)


def _exact_limits(verdict: Verdict, run: Any, settings: Settings) -> None:
    from .harness import HOT_LIMIT

    ok, detail = admitted_bound(hot_windows(run), HOT_LIMIT, set(), settings.workers)
    verdict.expect(
        "limit exact across workers (hot client)", f"<= {HOT_LIMIT} admitted per 1 s window", detail, ok
    )


def sustained(settings: Settings, workdir: Path) -> Outcome:
    seconds = 10.0 if settings.smoke else 300.0
    verdict = Verdict()
    began = time.monotonic()
    with redis_and_service(settings, workdir, name="sustained") as (service, _):
        with Sampler(service.worker_pids) as sampler:
            result = asyncio.run(drive(service.port, [(seconds, settings.rate)], settings.hot_rate))
    main = main_samples(result.run)
    summary = summarize(main, seconds)
    slo_checks(verdict, summary, settings.slo)
    no_failures(verdict, summary)
    _exact_limits(verdict, result.run, settings)
    verdict.notes.append(load_note())
    return Outcome(
        "sustained", "profile",
        f"{settings.rate:.0f} req/s constant for {seconds:.0f} s on {settings.workers} workers: "
        "every SLO met, no 5xx, limits exact",
        verdict, summary.as_dict(), timeline(main), sampler.summary(), sampler.rows,
        {"hot": summarize([s for s in result.run.samples if s.tag == "hot"]).statuses},
        round(time.monotonic() - began, 1),
    )  # fmt: skip


def spike(settings: Settings, workdir: Path) -> Outcome:
    base = settings.rate / 2
    before, during, after = (5.0, 3.0, 6.0) if settings.smoke else (30.0, 10.0, 30.0)
    verdict = Verdict()
    began = time.monotonic()
    with redis_and_service(settings, workdir, name="spike") as (service, _):
        with Sampler(service.worker_pids) as sampler:
            result = asyncio.run(
                drive(service.port, [(before, base), (during, base * 10), (after, base)], settings.hot_rate)
            )
    main = main_samples(result.run)
    summary = summarize(main, before + during + after)
    spike_part = summarize([s for s in main if before <= s.intended < before + during])
    settle = 2.0
    tail = summarize([s for s in main if s.intended >= before + during + settle])
    no_failures(verdict, summary)
    verdict.expect(
        f"latency recovers {settle:.0f} s after the spike", f"p95 < {settings.slo.p95_ms} ms",
        f"p95 {tail.p95_ms} ms", tail.p95_ms < settings.slo.p95_ms,
    )  # fmt: skip
    _exact_limits(verdict, result.run, settings)
    verdict.notes.append(
        f"during the spike ({base * 10:.0f} req/s offered): achieved {spike_part.throughput}/s, "
        f"p50 {spike_part.p50_ms} ms, p95 {spike_part.p95_ms} ms, p99 {spike_part.p99_ms} ms"
    )
    verdict.notes.append(load_note())
    return Outcome(
        "spike", "profile",
        f"{base:.0f} req/s, then 10x ({base * 10:.0f} req/s) for {during:.0f} s, then back: "
        "no 5xx, every request answered, p95 back under the SLO within 2 s",
        verdict, summary.as_dict(), timeline(main), sampler.summary(), sampler.rows,
        {"spike": spike_part.as_dict(), "after": tail.as_dict()}, round(time.monotonic() - began, 1),
    )  # fmt: skip


def soak(settings: Settings, workdir: Path) -> Outcome:
    seconds = settings.soak_seconds or (20.0 if settings.smoke else 1800.0)
    verdict = Verdict()
    began = time.monotonic()
    with redis_and_service(settings, workdir, name="soak") as (service, _):
        with Sampler(service.worker_pids, interval=0.5 if seconds < 120 else 2.0) as sampler:
            result = asyncio.run(
                drive(service.port, [(seconds, settings.rate)], settings.hot_rate, probe_path=None)
            )
    main = main_samples(result.run)
    summary = summarize(main, seconds)
    no_failures(verdict, summary)
    slopes: dict[str, Any] = {}
    for pid, rows in sampler.per_worker().items():
        rows = [r for r in rows if "rss_kib" in r]
        mem = memory_slope(
            [r["t"] for r in rows], [r["rss_kib"] for r in rows],
            threshold_kib_per_min=settings.leak_threshold_kib_per_min,
        )  # fmt: skip
        slopes[str(pid)] = mem.__dict__
        verdict.expect(
            f"no memory leak (worker {pid})",
            f"slope <= {settings.leak_threshold_kib_per_min:.0f} KiB/min or growth <= 2 MiB after warm-up",
            f"{mem.slope_kib_per_min} KiB/min, {mem.growth_kib} KiB over {mem.samples} samples",
            not mem.leak,
        )  # fmt: skip
        fds = [r["fds"] for r in rows]
        rise = baseline_growth(fds)
        verdict.expect(
            f"open fds bounded (worker {pid})",
            "baseline (median of the last 20 % minus the first 20 % after warm-up) rises <= 8",
            f"{rise:+.0f} (range {min(fds)}..{max(fds)})",
            rise <= 8,
        )
    verdict.notes.append(load_note())
    return Outcome(
        "soak", "profile",
        f"{settings.rate:.0f} req/s for {seconds:.0f} s: RSS slope per worker under "
        f"{settings.leak_threshold_kib_per_min:.0f} KiB/min after warm-up, fds bounded, no 5xx",
        verdict, summary.as_dict(), timeline(main, step=max(1.0, seconds / 300)), sampler.summary(),
        sampler.rows, {"memory": slopes}, round(time.monotonic() - began, 1),
    )  # fmt: skip


def _wrk(port: int, seconds: float, connections: int, workdir: Path) -> dict[str, Any]:
    """wrk's closed-loop ceiling (requests/s with ``connections`` always busy); {} without wrk."""
    binary = shutil.which("wrk")
    if binary is None:
        return {"skipped": "wrk not installed (apt-get install wrk)"}
    script = workdir / "clients.lua"
    script.write_text(
        "local n = 0\nrequest = function()\n  n = n + 1\n"
        '  return wrk.format("GET", "/items/1", {["X-Client"] = "w" .. (n % 5000)})\nend\n'
    )
    proc = subprocess.run(
        [binary, "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 30, check=False,
    )  # fmt: skip
    out = proc.stdout
    found: dict[str, Any] = {"connections": connections, "seconds": seconds}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        found["requests_per_s"] = float(m.group(1))
    for q in ("50", "99"):
        if m := re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            found[f"p{q}_ms"] = round(float(m.group(1)) * scale, 2)
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        found["non_2xx"] = int(m.group(1))
    return found


def stress(settings: Settings, workdir: Path) -> Outcome:
    step_seconds = 3.0 if settings.smoke else 15.0
    rates = [50.0, 100.0, 200.0, 400.0, 800.0, 1600.0]
    verdict = Verdict()
    steps: list[Step] = []
    began = time.monotonic()
    five_xx = 0
    with redis_and_service(settings, workdir, name="stress") as (service, _):
        with Sampler(service.worker_pids) as sampler:
            for rate in rates:
                result = asyncio.run(
                    drive(service.port, [(step_seconds, rate)], 0.0, probe_path=None, timeout=3.0)
                )
                part = summarize(result.run.samples, step_seconds)
                five_xx += part.count_5xx
                steps.append(Step(rate, part.throughput, part.p95_ms, part.p99_ms, part.error_rate))
                if find_knee(
                    steps, p95_slo_ms=settings.slo.p95_ms, max_error_rate=settings.slo.error_rate
                ).first_bad:
                    break
            ceiling = _wrk(service.port, step_seconds, 32, workdir)
    knee = find_knee(steps, p95_slo_ms=settings.slo.p95_ms, max_error_rate=settings.slo.error_rate)
    verdict.expect("SLO met at the lowest step", f"p95 < {settings.slo.p95_ms} ms at {rates[0]:.0f}/s",
                   f"p95 {steps[0].p95_ms} ms", knee.last_good is not None)  # fmt: skip
    verdict.expect(
        "overload answers no 5xx", "0 (overload is latency or 429/503, not 500)", five_xx, five_xx == 0
    )
    good = knee.last_good.rate if knee.last_good else 0
    verdict.notes.append(
        f"knee: SLO held up to {good:.0f} req/s offered; "
        + (f"broke at {knee.first_bad.rate:.0f} req/s ({knee.reason})" if knee.first_bad else knee.reason)
    )
    if "requests_per_s" in ceiling:
        verdict.notes.append(
            f"wrk closed-loop ceiling, 32 connections: {ceiling['requests_per_s']} req/s, "
            f"p50 {ceiling.get('p50_ms')} ms, p99 {ceiling.get('p99_ms')} ms"
        )
    verdict.notes.append(load_note())
    return Outcome(
        "stress", "profile",
        f"constant-rate steps of {step_seconds:.0f} s ({', '.join(f'{r:.0f}' for r in rates)} req/s) until "
        f"p95 >= {settings.slo.p95_ms} ms, errors > {settings.slo.error_rate:.1%} or under 90% achieved: the knee",
        verdict, {"steps": [s.__dict__ for s in steps]}, [], sampler.summary(), sampler.rows,
        {"knee": {"last_good": knee.last_good.__dict__ if knee.last_good else None,
                  "first_bad": knee.first_bad.__dict__ if knee.first_bad else None, "reason": knee.reason},
         "wrk": ceiling},
        round(time.monotonic() - began, 1),
    )  # fmt: skip
