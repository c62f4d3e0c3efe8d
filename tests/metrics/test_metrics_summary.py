"""The status summary: parsing an exposition, rates from two reads, histogram percentiles, budgets."""

from __future__ import annotations

import math

import pytest
from metrics_support import call, scrape

import hardenkit as hk
from hardenkit.metrics import format_summary, parse_exposition, summarize
from hardenkit.metrics.summary import quantile

pytestmark = pytest.mark.anyio


def exposition(ok: int, errors: int, fast: int, slow: int, limited: int = 0) -> str:
    total = fast + slow
    return "\n".join(
        [
            "# HELP http_requests_total x",
            "# TYPE http_requests_total counter",
            f'http_requests_total{{method="GET",route="/items/{{id}}",status="200",status_class="2xx"}} {ok}',
            f'http_requests_total{{method="GET",route="/items/{{id}}",status="500",status_class="5xx"}} {errors}',
            f'http_request_duration_seconds_bucket{{le="0.1",route="/items/{{id}}"}} {fast}',
            f'http_request_duration_seconds_bucket{{le="0.5",route="/items/{{id}}"}} {total}',
            f'http_request_duration_seconds_bucket{{le="+Inf",route="/items/{{id}}"}} {total}',
            f'hardenkit_ratelimit_decisions_total{{policy="default",result="limited"}} {limited}',
            f'hardenkit_ratelimit_decisions_total{{policy="default",result="allowed"}} {ok + errors}',
            'http_requests_in_flight{method="GET"} 3',
            'weird_label{a="x\\"y\\\\z"} 1 1700000000000',
        ]
    )


def test_parse_reads_labels_escapes_and_ignores_timestamps() -> None:
    snapshot = parse_exposition(exposition(1, 0, 1, 0))
    assert snapshot.series("weird_label") == {(("a", 'x"y\\z'),): 1.0}
    assert snapshot.series("http_requests_in_flight") == {(("method", "GET"),): 3.0}


def test_quantile_interpolates_like_histogram_quantile() -> None:
    buckets = [(0.1, 50.0), (0.5, 100.0), (math.inf, 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.3)
    assert quantile(0.25, buckets) == pytest.approx(0.05)
    assert quantile(0.99, [(0.1, 0.0), (math.inf, 10.0)]) == 0.1  # above the last finite bound
    assert quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None


def test_rates_error_ratio_and_percentiles_come_from_the_difference() -> None:
    before = parse_exposition(exposition(ok=100, errors=0, fast=100, slow=0, limited=0))
    after = parse_exposition(exposition(ok=190, errors=10, fast=150, slow=50, limited=20))
    summary = summarize(before, after, 10.0, [hk.SLO("api", objective=0.99, latency_ms=100, percentile=0.5)])
    assert summary.rate == pytest.approx(10.0)
    assert summary.error_ratio == pytest.approx(0.1)
    assert summary.limited_rate == pytest.approx(2.0)
    assert summary.in_flight == 3
    (line,) = summary.routes
    assert line.route == "/items/{id}" and line.rate == pytest.approx(10.0)
    assert line.p50 == pytest.approx(0.1) and line.p95 == pytest.approx(0.5 - 0.4 * 0.1)
    # Cumulative: 10 errors of 200 against a 1% budget is 5x spent; 50 slow of 200 against 50%.
    assert [(name, sli, target) for name, sli, target, _ in summary.budgets] == [
        ("api", "availability", 0.99),
        ("api", "latency", 0.5),
    ]
    assert [left for *_, left in summary.budgets] == [pytest.approx(-4.0), pytest.approx(0.5)]
    text = format_summary(summary, url="http://127.0.0.1:1/metrics")
    assert "/items/{id}" in text and "requests/s 10.00" in text and "-400.00%" in text


def test_a_counter_reset_counts_from_zero() -> None:
    before = parse_exposition(exposition(ok=500, errors=0, fast=500, slow=0))
    after = parse_exposition(exposition(ok=20, errors=0, fast=20, slow=0))
    assert summarize(before, after, 2.0).rate == pytest.approx(10.0)


def test_a_latency_slo_whose_threshold_is_no_bucket_has_no_budget_figure() -> None:
    snapshot = parse_exposition(exposition(ok=10, errors=0, fast=10, slow=0))
    summary = summarize(snapshot, snapshot, 1.0, [hk.SLO("api", objective=None, latency_ms=42)])
    assert summary.budgets == [("api", "latency", 0.95, None)]


async def test_it_reads_what_the_middleware_serves() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    app = Starlette(routes=[Route("/a", PlainTextResponse("a"))])
    app.add_middleware(hk.MetricsMiddleware)
    before = parse_exposition(await scrape(app))
    for _ in range(6):
        await call(app, "/a")
    summary = summarize(before, parse_exposition(await scrape(app)), 2.0)
    assert [(line.route, line.rate) for line in summary.routes] == [("/a", 3.0)]
