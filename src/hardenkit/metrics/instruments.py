"""The metric families, their names and labels, and the registry a scrape reads.

Names follow Prometheus conventions (base units, ``_total`` counters, ``_seconds``
and ``_bytes``); docs/metrics.md lists them. Everything here imports
prometheus_client, so this module is only loaded when a MetricsMiddleware is built.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import REGISTRY

from .labels import LabelCap

__all__ = ["DEFAULT_BUCKETS", "NAMES", "Instruments"]

#: Latency buckets (seconds). 0.1 and 0.5 are the usual p95/p99 objectives (100 ms, 500 ms),
#: so those thresholds are exact; SLOs given to the middleware add theirs.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

#: Metric family names as they appear in a scrape (counters with their ``_total``).
NAMES = {
    "requests": "http_requests_total",
    "duration": "http_request_duration_seconds",
    "in_flight": "http_requests_in_flight",
    "request_size": "http_request_size_bytes",
    "response_size": "http_response_size_bytes",
    "ratelimit": "hardenkit_ratelimit_decisions_total",
    "fallbacks": "hardenkit_ratelimit_storage_fallbacks_total",
    "probes": "hardenkit_health_probes_total",
    "checks": "hardenkit_health_checks_total",
    "scrapes": "hardenkit_metrics_scrapes_total",
    "cpu": "hardenkit_process_cpu_seconds",
    "memory": "hardenkit_process_resident_memory_bytes",
    "fds": "hardenkit_process_open_fds",
}

# Other label values (policy and check names come from configuration, but a cap costs nothing).
_SMALL_CAP = 100
_PROCESS_REFRESH = 5.0


class _Proxy:
    """Serves another registry's collectors through ours (the user's metrics, the process collector).

    Families named like ours are left out: two ``http_requests`` families in one
    exposition (another instrumentation library still installed) is invalid for Prometheus.
    """

    def __init__(self, registry: CollectorRegistry, skip: frozenset[str]) -> None:
        self.registry = registry
        self.skip = skip

    def collect(self) -> Iterable[Metric]:
        return (family for family in self.registry.collect() if family.name not in self.skip)


class Instruments:
    """One set of metric families on one registry (private, so two apps never collide)."""

    def __init__(
        self,
        *,
        buckets: Sequence[float],
        multiprocess_dir: Path | None,
        registry: CollectorRegistry | None,
        include_default_registry: bool,
    ) -> None:
        self.multiprocess_dir = multiprocess_dir
        if multiprocess_dir is not None:
            from prometheus_client import multiprocess

            # In multiprocess mode values live in files; the serving registry reads all of them.
            self.registry = registry or CollectorRegistry(auto_describe=True)
            multiprocess.MultiProcessCollector(self.registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
            target: CollectorRegistry | None = None
        else:
            self.registry = registry or CollectorRegistry(auto_describe=True)
            target = self.registry
            if include_default_registry and registry is None:
                # The user's own metrics and the client's process/platform/GC collectors.
                ours = frozenset(name.removesuffix("_total") for name in NAMES.values())
                self.registry.register(_Proxy(REGISTRY, ours))
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status", "status_class"],
            registry=target,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by route template.",
            ["route"],
            buckets=buckets,
            registry=target,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "HTTP requests being answered now.",
            ["method"],
            registry=target,
            multiprocess_mode="livesum",
        )
        self.request_size = Summary(
            "http_request_size_bytes",
            "Request body bytes received, by route template.",
            ["route"],
            registry=target,
        )
        self.response_size = Summary(
            "http_response_size_bytes",
            "Response body bytes sent, by route template.",
            ["route"],
            registry=target,
        )
        self.ratelimit = Counter(
            "hardenkit_ratelimit_decisions",
            "Rate-limit decisions by policy and result (allowed, limited, unavailable).",
            ["policy", "result"],
            registry=target,
        )
        self.fallbacks = Counter(
            "hardenkit_ratelimit_storage_fallbacks",
            "Requests the rate limiter decided by its on_storage_error mode while the storage was down.",
            ["mode"],
            registry=target,
        )
        self.probes = Counter(
            "hardenkit_health_probes",
            "Health probe answers by probe and status.",
            ["probe", "status"],
            registry=target,
        )
        self.checks = Counter(
            "hardenkit_health_checks",
            "Health check results by check and status.",
            ["check", "status"],
            registry=target,
        )
        self.scrapes = Counter(
            "hardenkit_metrics_scrapes",
            "Requests for the metrics, served or refused.",
            ["result"],
            registry=target,
        )
        self.cpu = Gauge(
            "hardenkit_process_cpu_seconds",
            "CPU time used by the service's processes (summed over live workers).",
            registry=target,
            multiprocess_mode="livesum",
        )
        self.memory = Gauge(
            "hardenkit_process_resident_memory_bytes",
            "Resident memory of the service's processes (summed over live workers).",
            registry=target,
            multiprocess_mode="livesum",
        )
        self.fds = Gauge(
            "hardenkit_process_open_fds",
            "Open file descriptors of the service's processes (summed over live workers).",
            registry=target,
            multiprocess_mode="livesum",
        )
        self._process = ProcessCollector(registry=None)
        self.next_process_refresh = 0.0
        self.caps = {name: LabelCap(_SMALL_CAP) for name in ("policy", "check", "probe", "mode", "result")}

    def refresh_process(self) -> None:
        """Copy this process's CPU, memory and fds into the (multiprocess-safe) gauges."""
        self.next_process_refresh = time.perf_counter() + _PROCESS_REFRESH
        values: dict[str, float] = {}
        for family in self._process.collect():
            for sample in family.samples:
                values[sample.name] = sample.value
        if "process_cpu_seconds_total" in values:
            self.cpu.set(values["process_cpu_seconds_total"])
        if "process_resident_memory_bytes" in values:
            self.memory.set(values["process_resident_memory_bytes"])
        if "process_open_fds" in values:
            self.fds.set(values["process_open_fds"])

    def label(self, name: str, value: Any) -> str:
        return self.caps[name](str(value)[:100])
