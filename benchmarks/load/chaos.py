"""Chaos under load: Redis killed, Redis frozen, a faulty network to Redis, a rolling
restart behind a readiness-honouring balancer, the log disk full, a check that hangs.

Every scenario runs the service at the sustained rate with the hot client, does
its damage at fixed times, and judges: no 5xx, every request answered, latency
bounded, limits within the documented fallback rule, readiness right, recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from .harness import (
    HOT_LIMIT,
    Drive,
    Outcome,
    Probe,
    Sampler,
    Settings,
    drive,
    hot_windows,
    load_note,
    main_samples,
    redis_and_service,
    service_env,
    window_of,
)
from .procs import Redis, Service
from .stats import Verdict, admitted_bound, no_failures, summarize, timeline

STORAGE_TIMEOUT = 0.5  # hardenkit's default storage_timeout
BACKOFF_CAP = 30.0  # the documented longest wait between two probes of a failed storage


def _incidents(verdict: Verdict, log: Path, workers: int) -> None:
    """The limiter logs an outage once when it starts and once when it ends, per process."""
    text = log.read_text(errors="replace") if log.exists() else ""
    down = text.count("is unreachable")
    back = text.count("is reachable again")
    verdict.expect("one outage logged once per worker", f"<= {workers} 'unreachable' lines",
                   f"{down} unreachable, {back} reachable again", 0 < down <= workers)  # fmt: skip


def _common(
    verdict: Verdict, result: Drive, settings: Settings, fault: tuple[float, float]
) -> dict[str, Any]:
    """No 5xx, all answered, p99 bounded, limits within the fallback rule; returns the summary."""
    main = main_samples(result.run)
    summary = summarize(main)
    no_failures(verdict, summary)
    bound = STORAGE_TIMEOUT * 1000 + settings.slo.p99_ms
    verdict.expect("p99 bounded by the storage timeout", f"< {bound:.0f} ms", f"{summary.p99_ms} ms",
                   summary.p99_ms < bound)  # fmt: skip
    start, end = fault
    warn_times = [p.t for p in result.probes if p.health == "warn"]
    last_degraded = max([end, *warn_times])
    fallback = set(range(window_of(result.run, start) - 1, window_of(result.run, last_degraded) + 2))
    ok, detail = admitted_bound(hot_windows(result.run), HOT_LIMIT, fallback, settings.workers)
    verdict.expect("limits keep the documented fallback rule (hot client)",
                   f"<= {HOT_LIMIT}/window on Redis, <= {HOT_LIMIT}*(workers+1) while degraded", detail, ok)  # fmt: skip
    return summary.as_dict()


def _readiness(
    verdict: Verdict, probes: list[Probe], fault: tuple[float, float], *, expect_warn: bool
) -> dict[str, Any]:
    """Readiness stays 200 (warn while degraded, never 503 for a Redis fault) and recovers to pass."""
    start, end = fault
    during = [p for p in probes if start + 1.5 <= p.t <= end]
    bad = [p for p in probes if p.status != 200]
    verdict.expect("readiness never 503 for a storage fault", "200 (pass or warn)",
                   f"{len(bad)} of {len(probes)} probes not 200", not bad)  # fmt: skip
    if expect_warn:
        warned = sum(1 for p in during if p.health == "warn")
        verdict.expect("readiness warns while degraded", "warn seen during the fault",
                       f"{warned} of {len(during)} probes warn", warned > 0)  # fmt: skip
    recovered = None
    for index, probe in enumerate(probes):
        if probe.t >= end and all(p.health == "pass" for p in probes[index:]) and index < len(probes) - 2:
            recovered = round(probe.t - end, 2)
            break
    verdict.expect("recovers to pass", f"within {BACKOFF_CAP + 1:.0f} s of the fault's end, before the run ends",
                   f"{recovered} s" if recovered is not None else "not recovered", recovered is not None
                   and recovered <= BACKOFF_CAP + 1)  # fmt: skip
    return {"recovery_s": recovered, "probes": [p.__dict__ for p in probes]}


def _outcome(name: str, expectation: str, verdict: Verdict, result: Drive, sampler: Sampler,
             summary: dict[str, Any], extra: dict[str, Any], began: float) -> Outcome:  # fmt: skip
    verdict.notes.append(f"events (s from start): {result.events}")
    verdict.notes.append(load_note())
    extra["events"] = result.events
    extra["started_wall"] = result.run.started_wall  # epoch s of t=0: to match service logs and windows
    slowest = sorted(result.run.samples, key=lambda s: s.latency)[-20:]
    extra["slowest"] = [{"t": round(s.intended, 3), "ms": round(s.latency * 1000, 1), "status": s.status,
                         "error": s.error, "tag": s.tag} for s in reversed(slowest)]  # fmt: skip
    return Outcome(name, "chaos", expectation, verdict, summary, timeline(main_samples(result.run)),
                   sampler.summary(), sampler.rows, extra, round(time.monotonic() - began, 1))  # fmt: skip


def redis_kill(settings: Settings, workdir: Path) -> Outcome:
    kill_at, back_at, total = (4.0, 8.0, 20.0) if settings.smoke else (20.0, 50.0, 110.0)
    verdict, began = Verdict(), time.monotonic()
    with redis_and_service(settings, workdir, name="redis-kill") as (service, redis):
        assert redis is not None
        with Sampler(service.worker_pids) as sampler:
            result = asyncio.run(drive(service.port, [(total, settings.rate)], settings.hot_rate, events=[
                (kill_at, "redis killed", redis.kill), (back_at, "redis restarted", redis.start)]))  # fmt: skip
    summary = _common(verdict, result, settings, (kill_at, back_at))
    _incidents(verdict, workdir / "redis-kill.service.log", settings.workers)
    extra = _readiness(verdict, result.probes, (kill_at, back_at), expect_warn=True)
    return _outcome("redis-kill", "Redis SIGKILLed under load, restarted later: no 5xx, every request answered, "
                    "p99 < storage timeout + SLO p99, per-process limits while down, readiness warn then pass",
                    verdict, result, sampler, summary, extra, began)  # fmt: skip


def redis_freeze(settings: Settings, workdir: Path) -> Outcome:
    stop_at, cont_at, total = (4.0, 7.0, 20.0) if settings.smoke else (20.0, 40.0, 100.0)
    verdict, began = Verdict(), time.monotonic()
    with redis_and_service(settings, workdir, name="redis-freeze") as (service, redis):
        assert redis is not None
        with Sampler(service.worker_pids) as sampler:
            result = asyncio.run(drive(service.port, [(total, settings.rate)], settings.hot_rate, events=[
                (stop_at, "redis SIGSTOP", redis.freeze), (cont_at, "redis SIGCONT", redis.thaw)]))  # fmt: skip
    summary = _common(verdict, result, settings, (stop_at, cont_at))
    _incidents(verdict, workdir / "redis-freeze.service.log", settings.workers)
    extra = _readiness(verdict, result.probes, (stop_at, cont_at), expect_warn=True)
    return _outcome("redis-freeze", f"Redis SIGSTOPped for {cont_at - stop_at:.0f} s "
                    f"({(cont_at - stop_at) / STORAGE_TIMEOUT:.0f}x the storage timeout): as redis-kill",
                    verdict, result, sampler, summary, extra, began)  # fmt: skip


def network_fault(settings: Settings, workdir: Path) -> Outcome:
    from .faultproxy import FaultProxy

    span = 2.0 if settings.smoke else 15.0
    tail = 18.0 if settings.smoke else 45.0
    plan = [("latency", 0.05), ("latency", 1.0), ("blackhole", 0.0), ("reset", 0.0)]
    proxies: list[FaultProxy] = []

    def via(port: int) -> int:
        proxies.append(FaultProxy(port))
        return proxies[0].port

    verdict, began = Verdict(), time.monotonic()
    try:
        with redis_and_service(settings, workdir, name="network-fault", via=via) as (service, _):
            proxy = proxies[0]
            events: list[tuple[float, str, Any]] = [
                (span * (i + 1), f"{mode} {delay}s" if mode == "latency" else mode,
                 lambda m=mode, d=delay: proxy.set(m, d))
                for i, (mode, delay) in enumerate(plan)
            ]  # fmt: skip
            healed = span * (len(plan) + 1)
            events.append((healed, "pass", lambda: proxy.set("pass")))
            with Sampler(service.worker_pids) as sampler:
                result = asyncio.run(drive(service.port, [(healed + tail, settings.rate)], settings.hot_rate,
                                           events=events))  # fmt: skip
            extra: dict[str, Any] = {
                "proxy": {"connections": proxy.connections_total, "resets": proxy.resets}
            }
    finally:
        for p in proxies:
            p.close()
    # The 50 ms phase is below the storage timeout: it only slows requests. Faults start with the 1 s phase.
    summary = _common(verdict, result, settings, (span * 2, healed))
    extra.update(_readiness(verdict, result.probes, (span * 2, healed), expect_warn=True))
    return _outcome("network-fault", f"app<->Redis through a TCP proxy, {span:.0f} s each: +50 ms latency, "
                    "+1 s latency, blackhole, connection resets, then healed: as redis-kill",
                    verdict, result, sampler, summary, extra, began)  # fmt: skip


def rolling_restart(settings: Settings, workdir: Path) -> Outcome:
    from .balancer import ReadinessBalancer

    delay = "1.0" if settings.smoke else "5.0"
    redis = Redis(workdir)
    backends: list[Service] = []
    balancer: ReadinessBalancer | None = None
    verdict, began = Verdict(), time.monotonic()
    log: list[dict[str, Any]] = []
    try:
        redis.start()
        env = service_env(redis.url, HARDENKIT_HEALTH_SHUTDOWN_DELAY=delay)
        for index in range(settings.workers):
            backend = Service(settings.app, workers=1, env=env, log_path=workdir / f"rolling-{index}.log")
            backend.start()
            backends.append(backend)
        balancer = ReadinessBalancer([b.port for b in backends], interval=0.1)
        lb = balancer
        for _ in range(100):  # bounded wait until the balancer sees every backend ready
            if all(lb.ready.values()):
                break
            time.sleep(0.1)

        def roll() -> None:
            for backend in backends:
                t = time.monotonic()
                assert backend.proc is not None
                backend.proc.terminate()
                backend.proc.wait(timeout=60)
                stopped = time.monotonic() - t
                backend.start()
                for _ in range(200):
                    if lb.ready[backend.port]:
                        break
                    time.sleep(0.05)
                log.append({"port": backend.port, "stopped_after_s": round(stopped, 2),
                            "back_after_s": round(time.monotonic() - t, 2)})  # fmt: skip
                time.sleep(1.0)

        total = 6.0 + settings.workers * (float(delay) + 6.0)
        with Sampler(lambda: [p for b in backends for p in b.worker_pids()]) as sampler:
            result = asyncio.run(drive(balancer.port, [(total, settings.rate / 2)], settings.hot_rate / 2,
                                       events=[(2.0, "rolling restart", roll)], probe_path=None))  # fmt: skip
    finally:
        if balancer is not None:
            balancer.close()
        for backend in backends:
            backend.stop()
        redis.stop()
    main = main_samples(result.run)
    summary = summarize(main)
    everything = summarize(result.run.samples)
    verdict.expect("zero failed requests through the balancer", "0 (no 5xx, 502, 503, reset or timeout)",
                   f"{everything.failed} {everything.errors or ''}".strip(), everything.failed == 0)  # fmt: skip
    verdict.expect("every backend restarted while traffic ran", f"{settings.workers} restarts", len(log),
                   len(log) == settings.workers)  # fmt: skip
    verdict.expect("the balancer saw each backend leave and come back", f">= {2 * settings.workers} transitions",
                   len(lb.transitions) - settings.workers, len(lb.transitions) - settings.workers >= 2 * settings.workers)  # fmt: skip
    return _outcome("rolling-restart", "SIGTERM to one backend at a time (shutdown_delay "
                    f"{delay} s) behind a balancer that stops routing on 503 readiness: zero failed requests",
                    verdict, result, sampler, summary.as_dict(),
                    {"restarts": log, "routed": {str(k): v for k, v in lb.routed.items()},
                     "balancer_502": lb.bad_gateway, "balancer_no_backend": lb.no_backend}, began)  # fmt: skip


def _fill(path: Path) -> None:
    with open(path, "wb") as out:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            for _ in range(1 << 16):  # bounded: 4 GiB at most, the tmpfs is far smaller
                out.write(chunk)
                out.flush()


def log_disk_full(settings: Settings, workdir: Path) -> Outcome:
    verdict = Verdict()
    if not settings.default_app:
        verdict.skipped = "needs the harness's app (LOADTEST_LOG_FILE); not run with --app"
        return Outcome("log-disk-full", "chaos", "skipped", verdict)
    mount = workdir / "logdisk"
    mount.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        verdict.skipped = (
            f"cannot mount a tmpfs here ({(done.stderr or done.stdout).strip()}); run as root to test"
        )
        return Outcome("log-disk-full", "chaos", "skipped", verdict)
    fill_at, free_at, total = (4.0, 9.0, 14.0) if settings.smoke else (20.0, 50.0, 80.0)
    log_file = mount / "app.log"
    filler = mount / "filler"
    sizes: dict[str, int] = {}

    def fill() -> None:
        _fill(filler)
        sizes["at_full"] = log_file.stat().st_size

    def free() -> None:
        filler.unlink()
        sizes["at_free"] = log_file.stat().st_size

    began = time.monotonic()
    try:
        with redis_and_service(settings, workdir, name="log-disk-full",
                               env={"LOADTEST_LOG_FILE": str(log_file)}) as (service, _):  # fmt: skip
            with Sampler(service.worker_pids) as sampler:
                result = asyncio.run(drive(service.port, [(total, settings.rate)], settings.hot_rate,
                                           events=[(fill_at, "disk filled", fill), (free_at, "disk freed", free)]))  # fmt: skip
            sizes["at_end"] = log_file.stat().st_size
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
    summary = _common(verdict, result, settings, (fill_at, free_at))
    verdict.expect("logging resumes once space is freed", "the log grows after the disk is freed",
                   f"{sizes.get('at_free')} -> {sizes.get('at_end')} bytes",
                   sizes.get("at_end", 0) > sizes.get("at_free", 0))  # fmt: skip
    log_text = (workdir / "log-disk-full.service.log").read_text(errors="replace")
    verdict.notes.append(
        f"'Logging error' reports on the service's stderr: {log_text.count('--- Logging error ---')}"
    )
    return _outcome("log-disk-full", "the log file's disk (a 2 MiB tmpfs) filled under load, then freed: "
                    "no 5xx, every request answered, latency bounded, logging resumes",
                    verdict, result, sampler, summary, {"log_sizes": sizes}, began)  # fmt: skip


def hanging_check(settings: Settings, workdir: Path) -> Outcome:
    verdict = Verdict()
    if not settings.default_app:
        verdict.skipped = "needs the harness's app (LOADTEST_HANG_FLAG); not run with --app"
        return Outcome("hanging-check", "chaos", "skipped", verdict)
    flag = workdir / "hang.flag"
    check_timeout = 1.0
    hang_at, release_at, total = (3.0, 9.0, 14.0) if settings.smoke else (20.0, 60.0, 90.0)
    began = time.monotonic()
    with redis_and_service(settings, workdir, name="hanging-check",
                           env={"LOADTEST_HANG_FLAG": str(flag), "LOADTEST_HANG_TIMEOUT": str(check_timeout)}) as (service, _):  # fmt: skip
        with Sampler(service.worker_pids) as sampler:
            result = asyncio.run(drive(service.port, [(total, settings.rate)], settings.hot_rate, probe_path="/readyz",
                                       events=[(hang_at, "check hangs", flag.touch), (release_at, "check released", lambda: flag.unlink())]))  # fmt: skip
    with contextlib.suppress(FileNotFoundError):
        os.unlink(flag)
    main = main_samples(result.run)
    summary = summarize(main)
    no_failures(verdict, summary)
    bound = STORAGE_TIMEOUT * 1000 + settings.slo.p99_ms
    verdict.expect(
        "app traffic unaffected", f"p99 < {bound:.0f} ms", f"{summary.p99_ms} ms", summary.p99_ms < bound
    )
    probes = result.probes
    settled = [p for p in probes if hang_at + check_timeout + 1.5 <= p.t <= release_at]
    failing = sum(1 for p in settled if p.status == 503)
    verdict.expect("readiness fails while the check hangs", "503 on every probe from timeout + cache on",
                   f"{failing} of {len(settled)}", settled and failing == len(settled))  # fmt: skip
    slowest = max((p.latency for p in probes), default=0.0)
    verdict.expect("every probe answers within the check's timeout", f"<= {check_timeout + 1.0:.1f} s",
                   f"slowest {slowest:.3f} s", slowest <= check_timeout + 1.0)  # fmt: skip
    after = [p for p in probes if p.t >= release_at + 2.5]
    verdict.expect("readiness back to 200 after release", "200 from 2.5 s after release",
                   f"{sum(p.status == 200 for p in after)} of {len(after)}", after and all(p.status == 200 for p in after))  # fmt: skip
    threads = {pid: [r["threads"] for r in rows] for pid, rows in sampler.per_worker().items()}
    grown = {pid: max(t) - t[0] for pid, t in threads.items() if t}
    verdict.expect("threads do not pile up (single flight)", "<= 4 more threads per worker", grown,
                   all(g <= 4 for g in grown.values()))  # fmt: skip
    return _outcome("hanging-check", f"a critical readiness check blocks (timeout {check_timeout} s) from "
                    f"{hang_at:.0f} s to {release_at:.0f} s: readiness 503 promptly, app unaffected, no thread pile-up, "
                    "back to 200 after", verdict, result, sampler, summary.as_dict(), {}, began)  # fmt: skip
