"""The numbers of a run: percentiles, per-second timelines, memory slope, the knee, SLO verdicts.

Pure functions over plain lists, no I/O, so that tests/load checks them quickly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One request: when it was meant to go (s since the run began), how long it took, what came back.

    ``latency`` is measured from the *intended* send time, so a request that had
    to wait for a connection carries that wait (no coordinated omission).
    ``status`` is the HTTP status, or 0 when no answer came (``error`` says why).
    """

    intended: float
    latency: float
    status: int
    error: str = ""
    tag: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest-rank method; NaN for no values.

    Nearest rank returns a value that was observed, which is what a latency
    report should show (an interpolated p99 between two samples was never seen).
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile: q must be within 0..100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Summary:
    requests: int
    duration: float
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    errors: dict[str, int]
    count_5xx: int
    failed: int
    availability: float
    error_rate: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarize(samples: Sequence[Sample], duration: float | None = None) -> Summary:
    """Throughput, latency percentiles (ms) and counts over ``samples``.

    A *failed* request is a 5xx or no answer at all (timeout, reset, refused);
    429 and 503-free 4xx are answers the service meant to give, so they count as
    available. ``availability`` = 1 - failed/requests.
    """
    latencies = [s.latency for s in samples if s.status]
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    for s in samples:
        if s.status:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
        else:
            errors[s.error or "error"] = errors.get(s.error or "error", 0) + 1
    count_5xx = sum(n for code, n in statuses.items() if code.startswith("5"))
    failed = count_5xx + sum(errors.values())
    n = len(samples)
    if duration is None:
        duration = (max(s.intended for s in samples) - min(s.intended for s in samples)) if n > 1 else 0.0
    ms = 1000.0
    return Summary(
        requests=n,
        duration=round(duration, 3),
        throughput=round(n / duration, 1) if duration > 0 else 0.0,
        p50_ms=round(percentile(latencies, 50) * ms, 2) if latencies else math.nan,
        p95_ms=round(percentile(latencies, 95) * ms, 2) if latencies else math.nan,
        p99_ms=round(percentile(latencies, 99) * ms, 2) if latencies else math.nan,
        max_ms=round(max(latencies) * ms, 2) if latencies else math.nan,
        statuses=dict(sorted(statuses.items())),
        errors=dict(sorted(errors.items())),
        count_5xx=count_5xx,
        failed=failed,
        availability=round(1 - failed / n, 6) if n else math.nan,
        error_rate=round(failed / n, 6) if n else math.nan,
    )


def timeline(samples: Iterable[Sample], step: float = 1.0) -> list[dict[str, float]]:
    """Per ``step`` seconds (by intended send time): requests, failures, p50/p95/p99 in ms."""
    buckets: dict[int, list[Sample]] = {}
    for s in samples:
        buckets.setdefault(int(s.intended // step), []).append(s)
    rows: list[dict[str, float]] = []
    for index in sorted(buckets):
        bucket = buckets[index]
        lat = [s.latency for s in bucket if s.status]
        failed = sum(1 for s in bucket if not s.status or s.status >= 500)
        rows.append(
            {
                "t": round(index * step, 3),
                "requests": len(bucket),
                "failed": failed,
                "p50_ms": round(percentile(lat, 50) * 1000, 2) if lat else math.nan,
                "p95_ms": round(percentile(lat, 95) * 1000, 2) if lat else math.nan,
                "p99_ms": round(percentile(lat, 99) * 1000, 2) if lat else math.nan,
            }
        )
    return rows


def linear_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs; 0.0 when it cannot be computed (fewer than 2 distinct xs)."""
    if len(xs) != len(ys):
        raise ValueError("linear_slope: xs and ys differ in length")
    n = len(xs)
    if n < 2:
        return 0.0
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


@dataclass
class MemoryVerdict:
    slope_kib_per_min: float
    growth_kib: float
    samples: int
    leak: bool


def memory_slope(
    times: Sequence[float],
    rss_kib: Sequence[float],
    *,
    warmup_fraction: float = 0.3,
    threshold_kib_per_min: float = 1024.0,
    min_growth_kib: float = 2048.0,
) -> MemoryVerdict:
    """RSS slope (KiB/min) after warm-up, and whether it looks like a leak.

    The first ``warmup_fraction`` of the samples is dropped: imports, pools and
    caches fill up there, and that growth is not a leak. A leak is flagged when
    the slope is above ``threshold_kib_per_min`` *and* RSS grew by more than
    ``min_growth_kib`` over the measured part: a steep but tiny wobble of a short
    run (allocator noise) is not a leak, nor a slow drift that adds little.
    """
    if len(times) != len(rss_kib):
        raise ValueError("memory_slope: times and rss differ in length")
    start = int(len(times) * warmup_fraction)
    xs = list(times[start:])
    ys = list(rss_kib[start:])
    slope = linear_slope(xs, ys) * 60.0
    growth = slope / 60.0 * (xs[-1] - xs[0]) if len(xs) > 1 else 0.0
    leak = slope > threshold_kib_per_min and growth > min_growth_kib
    return MemoryVerdict(round(slope, 2), round(growth, 1), len(xs), leak)


def baseline_growth(values: Sequence[float], *, warmup_fraction: float = 0.3, edge: float = 0.2) -> float:
    """How much the baseline of a series rose after warm-up: median of its last ``edge``
    minus median of its first ``edge``.

    For open fds: bursts of connections come and go (a short spike is not a
    leak), while a leak raises the level that the series keeps returning to.
    """
    rest = list(values[int(len(values) * warmup_fraction) :])
    if len(rest) < 2:
        return 0.0
    size = max(1, int(len(rest) * edge))
    return float(percentile(rest[-size:], 50) - percentile(rest[:size], 50))


@dataclass
class Step:
    """One step of a stress ramp: the offered rate and what it gave."""

    rate: float
    achieved: float
    p95_ms: float
    p99_ms: float
    error_rate: float


@dataclass
class Knee:
    last_good: Step | None
    first_bad: Step | None
    reason: str


def find_knee(steps: Sequence[Step], *, p95_slo_ms: float, max_error_rate: float) -> Knee:
    """The last step of a ramp that met the SLO and the first that broke it (and why).

    A step breaks the SLO when its p95 is over ``p95_slo_ms``, its error rate over
    ``max_error_rate``, or it achieved under 90% of the offered rate (the service
    or the client could not keep up: latency then hides in the queue).
    """
    last_good: Step | None = None
    for step in steps:
        reasons = []
        if math.isnan(step.p95_ms) or step.p95_ms > p95_slo_ms:
            reasons.append(f"p95 {step.p95_ms} ms > {p95_slo_ms} ms")
        if step.error_rate > max_error_rate:
            reasons.append(f"error rate {step.error_rate:.4f} > {max_error_rate}")
        if step.achieved < 0.9 * step.rate:
            reasons.append(f"achieved {step.achieved}/s < 90% of {step.rate}/s")
        if reasons:
            return Knee(last_good, step, "; ".join(reasons))
        last_good = step
    return Knee(last_good, None, "the SLO held at every step of the ramp")


@dataclass
class Slo:
    availability: float = 0.999
    p95_ms: float = 100.0
    p99_ms: float = 250.0
    error_rate: float = 0.001


@dataclass
class Check:
    """One expectation of a scenario: what was expected, what was seen, pass or fail."""

    name: str
    expected: str
    observed: str
    passed: bool


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str = ""

    @property
    def passed(self) -> bool:
        return not self.skipped and all(c.passed for c in self.checks)

    @property
    def status(self) -> str:
        if self.skipped:
            return "skipped"
        return "pass" if self.passed else "fail"

    def expect(self, name: str, expected: str, observed: object, passed: bool) -> None:
        self.checks.append(Check(name, expected, str(observed), bool(passed)))


def slo_checks(verdict: Verdict, summary: Summary, slo: Slo, *, latency: bool = True) -> None:
    """Add the SLO checks (availability, error rate, and with ``latency`` p95/p99) to ``verdict``."""
    verdict.expect(
        "availability", f">= {slo.availability:.3%}", f"{summary.availability:.4%}",
        summary.availability >= slo.availability,
    )  # fmt: skip
    verdict.expect(
        "error rate", f"<= {slo.error_rate:.3%}", f"{summary.error_rate:.4%}",
        summary.error_rate <= slo.error_rate,
    )  # fmt: skip
    if latency:
        verdict.expect("p95", f"< {slo.p95_ms} ms", f"{summary.p95_ms} ms", summary.p95_ms < slo.p95_ms)
        verdict.expect("p99", f"< {slo.p99_ms} ms", f"{summary.p99_ms} ms", summary.p99_ms < slo.p99_ms)


def no_failures(verdict: Verdict, summary: Summary, what: str = "requests") -> None:
    """Expect zero 5xx and zero requests without an answer."""
    verdict.expect(f"no 5xx ({what})", "0", summary.count_5xx, summary.count_5xx == 0)
    lost = sum(summary.errors.values())
    verdict.expect(
        f"no request without an answer ({what})", "0", f"{lost} {summary.errors or ''}".strip(), lost == 0
    )


def admitted_bound(
    windows: dict[int, int], limit: int, fallback_windows: set[int], processes: int
) -> tuple[bool, str]:
    """Whether a hot client's admitted requests per window keep the documented rule.

    ``windows`` counts, per limit window, the admitted requests that surely fell
    in it (sent and answered within it: a request straddling a boundary is not
    counted, so a failure here is never an artefact of clock attribution). With
    the shared storage healthy, at most ``limit`` per window across all processes.
    In a window where the limiter ran on its in-memory fallback each process
    limits on its own, and one that switches storage within the window has
    counted on both: at most ``limit * (processes + 1)``.
    """
    worst = ""
    for window, count in sorted(windows.items()):
        bound = limit * (processes + 1) if window in fallback_windows else limit
        if count > bound and not worst:
            worst = f"window {window}: {count} admitted > {bound}"
    if worst:
        return False, worst
    healthy = [n for w, n in windows.items() if w not in fallback_windows]
    degraded = [n for w, n in windows.items() if w in fallback_windows]
    return True, (
        f"max {max(healthy, default=0)} per healthy window (limit {limit}), "
        f"max {max(degraded, default=0)} per fallback window (bound {limit * (processes + 1)})"
    )
