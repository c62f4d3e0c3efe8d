"""A Grafana dashboard (JSON model) for the metrics and the SLO recording rules.

Panels: request rate, error rate, latency p50/p95/p99 per route, error budget
remaining and burn rate per SLO (from ``hardenkit slo rules``' recording rules),
rate-limit rejections, requests in flight, CPU and memory. The datasource is a
dashboard variable, so the file imports into any Grafana with a Prometheus
datasource. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .rules import BUDGET_REMAINING, BURN_RATE
from .slo import SLO

__all__ = ["PANELS", "grafana_dashboard", "render_json"]

_DS = {"type": "prometheus", "uid": "${datasource}"}
_RATE = "$__rate_interval"

#: (title, panel type, unit, [(PromQL, legend)]) in the order they are laid out, two per row.
PANELS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "Request rate by route",
        "timeseries",
        "reqps",
        [(f"sum by (route) (rate(http_requests_total[{_RATE}]))", "{{route}}")],
    ),
    (
        "Error rate (5xx share) by route",
        "timeseries",
        "percentunit",
        [
            (
                f'sum by (route) (rate(http_requests_total{{status_class="5xx"}}[{_RATE}]))'
                f" / sum by (route) (rate(http_requests_total[{_RATE}]))",
                "{{route}}",
            )
        ],
    ),
    (
        "Latency p50 / p95 / p99 by route",
        "timeseries",
        "s",
        [
            (
                f"histogram_quantile({q}, sum by (le, route) (rate(http_request_duration_seconds_bucket[{_RATE}])))",
                f"p{int(q * 100)} {{{{route}}}}",
            )
            for q in (0.5, 0.95, 0.99)
        ],
    ),
    ("Error budget remaining", "stat", "percentunit", [(BUDGET_REMAINING, "{{slo}} {{sli}}")]),
    (
        "Burn rate (1 = on budget)",
        "timeseries",
        "none",
        [(f"{BURN_RATE}1h", "{{slo}} {{sli}} 1h"), (f"{BURN_RATE}6h", "{{slo}} {{sli}} 6h")],
    ),
    (
        "Rate-limit rejections by policy",
        "timeseries",
        "reqps",
        [
            (
                f'sum by (policy, result) (rate(hardenkit_ratelimit_decisions_total{{result!="allowed"}}[{_RATE}]))',
                "{{policy}} {{result}}",
            ),
            (f'sum(rate(http_requests_total{{status="429"}}[{_RATE}]))', "429 answers"),
        ],
    ),
    ("Requests in flight", "timeseries", "none", [("sum(http_requests_in_flight)", "in flight")]),
    (
        "CPU (cores used)",
        "timeseries",
        "none",
        # A sum over live workers drops when one exits; deriv() does not read that as a reset.
        [("deriv(hardenkit_process_cpu_seconds[5m])", "cpu")],
    ),
    ("Resident memory", "timeseries", "bytes", [("hardenkit_process_resident_memory_bytes", "rss")]),
    ("Open file descriptors", "timeseries", "none", [("hardenkit_process_open_fds", "fds")]),
]


def _panel(index: int, title: str, kind: str, unit: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": kind,
        "title": title,
        "datasource": _DS,
        "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + n), "expr": expr, "legendFormat": legend, "datasource": _DS}
            for n, (expr, legend) in enumerate(targets)
        ],
    }


def grafana_dashboard(slos: Iterable[SLO] = (), *, title: str = "hardenkit service") -> dict[str, Any]:
    """The dashboard as a JSON-able mapping (Grafana's dashboard JSON model)."""
    names = sorted(slo.name for slo in slos)
    return {
        "title": title,
        "uid": "hardenkit-" + "-".join(names)[:30] if names else "hardenkit",
        "tags": ["hardenkit", "slo"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus"},
            ]
        },
        "description": "SLOs: " + (", ".join(names) if names else "none declared"),
        "panels": [_panel(i, *spec) for i, spec in enumerate(PANELS)],
    }


def render_json(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"
