"""OpenTelemetry export: the same measurements through an SDK MeterProvider."""

from __future__ import annotations

from typing import Any

import pytest
from metrics_support import call
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import hardenkit as hk
from hardenkit._core.events import RATELIMIT_DECISION, events_of
from hardenkit.errors import ConfigurationError

pytestmark = pytest.mark.anyio


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


async def test_requests_are_recorded_with_the_http_semantic_conventions() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = Starlette(routes=[Route("/items/{item_id}", ok)])
    app.add_middleware(hk.MetricsMiddleware, otel=provider)
    for path in ("/items/1", "/items/2", "/nope"):
        await call(app, path)
    found = points(reader)
    durations = {
        (p.attributes["http.route"], p.attributes["http.response.status_code"]): p.count
        for p in found["http.server.request.duration"]
    }
    assert durations == {("/items/{item_id}", 200): 2, ("<unmatched>", 404): 1}
    bounds = found["http.server.request.duration"][0].explicit_bounds
    import inspect

    from opentelemetry.metrics import Meter

    if "explicit_bucket_boundaries_advisory" in inspect.signature(Meter.create_histogram).parameters:
        assert 0.1 in bounds and 0.5 in bounds  # the same buckets as Prometheus
    else:  # an API older than the bucket advisory keeps the SDK's default buckets
        assert bounds
    assert [p.value for p in found["http.server.active_requests"]] == [0]
    assert sum(p.sum for p in found["http.server.response.body.size"]) == len(b"ok") * 2 + len(b"Not Found")
    provider.shutdown()


async def test_events_are_recorded_too() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    wiring = hk.Wiring()
    hk.MetricsMiddleware(PlainTextResponse("ok"), otel=provider, kit=wiring)
    events_of(wiring).emit(RATELIMIT_DECISION, policy="login", result="limited")
    (point,) = points(reader)["hardenkit.ratelimit.decisions"]
    assert dict(point.attributes) == {"policy": "login", "result": "limited"} and point.value == 1
    provider.shutdown()


def test_otel_takes_true_or_a_meter_provider() -> None:
    with pytest.raises(ConfigurationError, match="otel"):
        hk.MetricsMiddleware(PlainTextResponse("ok"), otel="yes")
