"""OpenTelemetry export: the same measurements through an OTel meter (extra ``otel``).

For teams whose pipeline is OpenTelemetry (an OTLP collector rather than a
Prometheus scrape). Instrument names and attributes follow OpenTelemetry's HTTP
semantic conventions (``http.server.request.duration`` with ``http.request.method``,
``http.route``, ``http.response.status_code``); hardenkit's own events use the
``hardenkit.`` namespace. Only the OpenTelemetry API is imported; the SDK, its
readers and exporters are the application's to configure (a MeterProvider given
as ``otel=provider``, or the global one with ``otel=True``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["OtelInstruments"]


class OtelInstruments:
    """OTel instruments mirroring the Prometheus ones."""

    def __init__(self, provider: Any, *, buckets: Sequence[float]) -> None:
        from opentelemetry import metrics

        from .._version import __version__

        meter = (
            metrics.get_meter("hardenkit", __version__)
            if provider is True
            else provider.get_meter("hardenkit", __version__)
        )
        name, unit, description = "http.server.request.duration", "s", "Duration of HTTP server requests."
        try:
            self.duration = meter.create_histogram(
                name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
            )
        except TypeError:  # an OpenTelemetry API older than the bucket advisory: its default buckets
            self.duration = meter.create_histogram(name, unit=unit, description=description)
        self.active = meter.create_up_down_counter(
            "http.server.active_requests",
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        self.request_size = meter.create_histogram(
            "http.server.request.body.size", unit="By", description="Size of HTTP server request bodies."
        )
        self.response_size = meter.create_histogram(
            "http.server.response.body.size", unit="By", description="Size of HTTP server response bodies."
        )
        self.events = {
            "ratelimit": meter.create_counter("hardenkit.ratelimit.decisions", unit="{request}"),
            "fallbacks": meter.create_counter("hardenkit.ratelimit.storage_fallbacks", unit="{request}"),
            "probes": meter.create_counter("hardenkit.health.probes", unit="{probe}"),
            "checks": meter.create_counter("hardenkit.health.checks", unit="{check}"),
        }
        self._attributes: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._methods: dict[str, dict[str, str]] = {}

    def attributes(self, method: str, route: str, status: str) -> dict[str, Any]:
        # Bounded like the Prometheus series: the labels are already capped.
        key = (method, route, status)
        found = self._attributes.get(key)
        if found is None:
            found = {"http.request.method": method, "http.route": route}
            if status.isdigit():
                found["http.response.status_code"] = int(status)
            self._attributes[key] = found
        return found

    def in_flight(self, method: str, delta: int) -> None:
        attributes = self._methods.get(method)
        if attributes is None:
            attributes = self._methods[method] = {"http.request.method": method}
        self.active.add(delta, attributes)

    def request(self, attributes: dict[str, Any], seconds: float, received: int, sent: int) -> None:
        self.duration.record(seconds, attributes)
        self.request_size.record(received, attributes)
        self.response_size.record(sent, attributes)

    def event(self, kind: str, attributes: dict[str, str]) -> None:
        self.events[kind].add(1, attributes)
