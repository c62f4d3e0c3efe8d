from __future__ import annotations

import math

import pytest
from benchmarks.load.stats import (
    Sample,
    Slo,
    Step,
    Verdict,
    admitted_bound,
    baseline_growth,
    find_knee,
    linear_slope,
    memory_slope,
    no_failures,
    percentile,
    slo_checks,
    summarize,
    timeline,
)


def test_percentile_is_nearest_rank_of_observed_values() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input


def test_percentile_of_few_values_takes_the_rank_above() -> None:
    assert percentile([10.0, 20.0], 95) == 20.0
    assert percentile([7.0], 99) == 7.0


def test_percentile_of_nothing_is_nan_and_bad_q_is_refused() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_counts_5xx_and_unanswered_as_failed_but_not_429() -> None:
    samples = [Sample(i / 10, 0.010, 200) for i in range(90)]
    samples += [Sample(9.0 + i / 10, 0.002, 429) for i in range(5)]
    samples += [Sample(9.5, 0.5, 500), Sample(9.6, 5.0, 0, "timeout"), Sample(9.7, 0.1, 0, "reset")]
    samples += [Sample(9.8, 0.1, 503), Sample(9.9, 0.1, 404)]
    summary = summarize(samples, 10.0)
    assert summary.requests == 100
    assert summary.throughput == 10.0
    assert summary.count_5xx == 2
    assert summary.errors == {"reset": 1, "timeout": 1}
    assert summary.failed == 4
    assert summary.availability == pytest.approx(0.96)
    assert summary.statuses["429"] == 5
    # Unanswered requests carry no latency: the percentiles are of answers only.
    assert summary.max_ms == 500.0


def test_timeline_buckets_by_intended_time() -> None:
    samples = [
        Sample(0.1, 0.01, 200),
        Sample(0.9, 0.03, 200),
        Sample(1.5, 0.2, 502),
        Sample(1.6, 1.0, 0, "timeout"),
    ]
    rows = timeline(samples)
    assert [r["t"] for r in rows] == [0.0, 1.0]
    assert rows[0]["requests"] == 2 and rows[0]["failed"] == 0 and rows[0]["p95_ms"] == 30.0
    assert rows[1]["failed"] == 2


def test_linear_slope() -> None:
    assert linear_slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    assert linear_slope([1, 1], [1, 5]) == 0.0
    assert linear_slope([1], [1]) == 0.0
    with pytest.raises(ValueError):
        linear_slope([1, 2], [1])


def test_memory_slope_flags_a_steady_leak() -> None:
    times = [float(t) for t in range(0, 600, 10)]  # 10 minutes
    rss = [50_000 + 2048 * t / 60 for t in times]  # 2 MiB/min
    verdict = memory_slope(times, rss, threshold_kib_per_min=1024)
    assert verdict.slope_kib_per_min == pytest.approx(2048, rel=1e-6)
    assert verdict.leak


def test_memory_slope_ignores_warm_up_growth_then_flat() -> None:
    times = [float(t) for t in range(100)]
    rss = [40_000 + 300 * t if t < 20 else 46_000 + (t % 2) * 8 for t in range(100)]
    verdict = memory_slope(times, rss, warmup_fraction=0.3)
    assert not verdict.leak
    assert abs(verdict.slope_kib_per_min) < 100


def test_memory_slope_steep_but_small_growth_is_not_a_leak() -> None:
    # 2 MiB/min for 30 s: 1 MiB of growth, under min_growth_kib.
    times = [t / 2 for t in range(60)]
    rss = [50_000 + 2048 * t / 60 for t in times]
    verdict = memory_slope(times, rss, warmup_fraction=0.0, threshold_kib_per_min=1024, min_growth_kib=2048)
    assert verdict.slope_kib_per_min > 1024 and not verdict.leak


def test_knee_is_the_last_step_meeting_the_slo() -> None:
    steps = [
        Step(50, 50, 10.0, 20.0, 0.0),
        Step(100, 100, 30.0, 60.0, 0.0),
        Step(200, 199, 150.0, 400.0, 0.0),
        Step(400, 250, 900.0, 2000.0, 0.2),
    ]
    knee = find_knee(steps, p95_slo_ms=100, max_error_rate=0.001)
    assert knee.last_good is steps[1]
    assert knee.first_bad is steps[2]
    assert "p95 150.0 ms > 100" in knee.reason


def test_knee_on_errors_or_a_rate_the_service_cannot_keep() -> None:
    errors = find_knee(
        [Step(50, 50, 5, 9, 0.0), Step(100, 100, 5, 9, 0.01)], p95_slo_ms=100, max_error_rate=0.001
    )
    assert errors.first_bad is not None and "error rate" in errors.reason
    behind = find_knee([Step(100, 80, 5, 9, 0.0)], p95_slo_ms=100, max_error_rate=0.001)
    assert behind.last_good is None and "achieved" in behind.reason
    held = find_knee([Step(50, 50, 5, 9, 0.0)], p95_slo_ms=100, max_error_rate=0.001)
    assert held.first_bad is None and held.last_good is not None


def test_admitted_bound_exact_while_healthy() -> None:
    ok, _ = admitted_bound({1: 20, 2: 20}, 20, set(), 2)
    assert ok
    ok, detail = admitted_bound({1: 20, 2: 21}, 20, set(), 2)
    assert not ok and "window 2: 21 admitted > 20" in detail


def test_admitted_bound_allows_per_process_counting_on_fallback() -> None:
    ok, _ = admitted_bound({1: 20, 2: 60, 3: 20}, 20, {2}, 2)
    assert ok
    ok, _ = admitted_bound({2: 61}, 20, {2}, 2)
    assert not ok


def test_verdict_and_slo_checks() -> None:
    good = summarize([Sample(i / 100, 0.01, 200) for i in range(1000)], 10.0)
    verdict = Verdict()
    slo_checks(verdict, good, Slo())
    no_failures(verdict, good)
    assert verdict.passed and verdict.status == "pass"
    slow = summarize([Sample(i / 100, 0.2, 200) for i in range(1000)], 10.0)
    bad = Verdict()
    slo_checks(bad, slow, Slo(p95_ms=100))
    assert bad.status == "fail"
    assert [c.name for c in bad.checks if not c.passed] == ["p95"]
    skipped = Verdict(skipped="no tmpfs")
    assert skipped.status == "skipped" and not skipped.passed


def test_fd_bursts_are_not_growth_but_a_rising_baseline_is() -> None:
    bursts = [20.0] * 100
    for i in range(35, 100, 10):
        bursts[i] = 48.0  # connection bursts that come and go
    assert baseline_growth(bursts) == 0.0
    leak = [20.0 + i // 5 for i in range(100)]  # one more fd every 5 samples
    assert baseline_growth(leak) > 8
    assert baseline_growth([1.0]) == 0.0
