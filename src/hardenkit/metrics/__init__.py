"""Prometheus metrics by route template, a safe ``/metrics``, SLOs, and their rules and dashboard.

::

    import hardenkit as hk

    app.add_middleware(hk.MetricsMiddleware)        # or hk.harden(app): metrics included
    slo = hk.SLO("api", objective=0.999, latency_ms=100, percentile=0.95)

Modules: ``middleware`` (MetricsMiddleware), ``labels`` (route templates, label caps),
``access`` (who may read /metrics), ``instruments`` (the metric families),
``multiprocess`` (uvicorn/gunicorn workers), ``slo`` (SLO, burn-rate arithmetic),
``rules`` (Prometheus rules), ``dashboard`` (Grafana), ``summary`` (``hardenkit status``),
``otel`` (OpenTelemetry export).
Imports the shared core and the standard library; prometheus_client, starlette and anyio
only when a middleware is built or a scrape is served, so importing this package is cheap.
"""

from __future__ import annotations

from .dashboard import grafana_dashboard
from .middleware import MetricsMiddleware
from .rules import prometheus_rules
from .slo import BURN_WINDOWS, SLO, slos_from_env
from .summary import fetch_exposition, format_summary, parse_exposition, summarize

__all__ = [
    "BURN_WINDOWS",
    "SLO",
    "MetricsMiddleware",
    "fetch_exposition",
    "format_summary",
    "grafana_dashboard",
    "parse_exposition",
    "prometheus_rules",
    "slos_from_env",
    "summarize",
]
