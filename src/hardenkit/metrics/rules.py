"""Prometheus recording rules and multi-window, multi-burn-rate alerts for SLOs.

For each objective of each :class:`~hardenkit.metrics.slo.SLO`:

* ``hardenkit_slo:error_ratio:rate<w>``: the share of bad requests over each window
  the alerts use (5m to 3d) and over the SLO's own window (30d);
* ``hardenkit_slo:burn_rate:rate<w>``: that ratio divided by the error budget
  (1 = spending the budget exactly over the SLO window);
* ``hardenkit_slo:error_budget_remaining:ratio``: the budget left over the SLO window;
* ``hardenkit_slo:objective:ratio``: the target itself, for dashboards;

all labelled ``slo`` and ``sli``; then one alert per burn window (see
:data:`~hardenkit.metrics.slo.BURN_WINDOWS`). The output is YAML (or JSON, which
YAML contains) that ``promtool check rules`` accepts. Standard library only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .slo import BURN_WINDOWS, SLO, Objective, format_duration

__all__ = ["ERROR_RATIO", "bad_and_total", "prometheus_rules", "render_yaml", "rule_groups", "threshold_text"]

ERROR_RATIO = "hardenkit_slo:error_ratio:rate"
BURN_RATE = "hardenkit_slo:burn_rate:rate"
BUDGET_REMAINING = "hardenkit_slo:error_budget_remaining:ratio"
OBJECTIVE = "hardenkit_slo:objective:ratio"

_REQUESTS = "http_requests_total"
_DURATION = "http_request_duration_seconds"


def _route_matcher(routes: Sequence[str]) -> str:
    if not routes:
        return ""
    # RE2 (PromQL's regex) treats these as syntax; templates contain at least { and }.
    escaped = [re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", route) for route in routes]
    pattern = "|".join(escaped)
    if "`" not in pattern:
        # A PromQL raw string: the regex is written as it is, no second round of backslashes.
        return f"route=~`{pattern}`"
    return 'route=~"' + pattern.replace("\\", "\\\\").replace('"', '\\"') + '"'


def le_label(seconds: float) -> str:
    """The ``le`` label prometheus_client writes for a bucket bound (Go's float formatting)."""
    text = repr(float(seconds))
    if "e" in text:  # pragma: no cover - thresholds in ms never get there
        mantissa, _, exponent = text.partition("e")
        sign = exponent[0] if exponent[0] in "+-" else "+"
        text = f"{mantissa}e{sign}{exponent.lstrip('+-').zfill(2)}"
    return text


def _selector(*matchers: str) -> str:
    present = [m for m in matchers if m]
    return "{" + ",".join(present) + "}" if present else ""


def bad_and_total(slo: SLO, objective: Objective, window: str) -> tuple[str, str]:
    """PromQL for the rate of bad requests and of all requests over ``window``."""
    routes = _route_matcher(slo.routes)
    if objective.sli == "availability":
        bad = f"sum(rate({_REQUESTS}{_selector(routes, 'status_class=' + chr(34) + '5xx' + chr(34))}[{window}]))"
        total = f"sum(rate({_REQUESTS}{_selector(routes)}[{window}]))"
        return bad, total
    assert slo.latency_seconds is not None
    le = 'le="' + le_label(slo.latency_seconds) + '"'
    total = f"sum(rate({_DURATION}_count{_selector(routes)}[{window}]))"
    fast = f"sum(rate({_DURATION}_bucket{_selector(routes, le)}[{window}]))"
    return f"({total} - {fast})", total


def threshold_text(value: float) -> str:
    """A threshold as written in an alert: ``14.4 * 0.001`` is ``0.0144``, not 0.014400000000000001."""
    return f"{value:.10g}"


def _labels(objective: Objective) -> dict[str, str]:
    return {"slo": objective.slo, "sli": objective.sli}


def _windows(slo: SLO) -> list[str]:
    seen: dict[int, str] = {}
    for burn in BURN_WINDOWS:
        for window in (burn.short, burn.long):
            seen[_seconds(window)] = window
    seen[slo.window_seconds] = format_duration(slo.window_seconds)
    return [seen[key] for key in sorted(seen)]


def _seconds(window: str) -> int:
    from .slo import parse_duration

    return parse_duration(window)


def _pascal(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\-]", text) if part)


def recording_rules(slo: SLO) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    slo_window = format_duration(slo.window_seconds)
    for objective in slo.objectives:
        labels = _labels(objective)
        matcher = f'{{slo="{objective.slo}",sli="{objective.sli}"}}'
        for window in _windows(slo):
            bad, total = bad_and_total(slo, objective, window)
            # "or vector(0)": no bad series yet means a ratio of 0, not no data.
            expr = f"({bad} or vector(0)) / {total}"
            rules.append({"record": f"{ERROR_RATIO}{window}", "expr": expr, "labels": labels})
        rules.extend(
            {
                "record": f"{BURN_RATE}{burn.long}",
                "expr": f"{ERROR_RATIO}{burn.long}{matcher} / {threshold_text(objective.budget)}",
                "labels": labels,
            }
            for burn in BURN_WINDOWS
        )
        rules.append(
            {
                "record": BUDGET_REMAINING,
                "expr": f"1 - {ERROR_RATIO}{slo_window}{matcher} / {threshold_text(objective.budget)}",
                "labels": labels,
            }
        )
        rules.append(
            {"record": OBJECTIVE, "expr": f"vector({threshold_text(objective.target)})", "labels": labels}
        )
    return rules


def alert_rules(slo: SLO) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for objective in slo.objectives:
        matcher = f'{{slo="{objective.slo}",sli="{objective.sli}"}}'
        name = f"{_pascal(objective.slo)}{_pascal(objective.sli)}ErrorBudgetBurn"
        for burn in BURN_WINDOWS:
            rate = burn.burn_rate(slo.window_seconds)
            limit = threshold_text(objective.threshold(burn, slo.window_seconds))
            expr = f"{ERROR_RATIO}{burn.long}{matcher} > {limit}\nand\n{ERROR_RATIO}{burn.short}{matcher} > {limit}"
            what = (
                "requests failed"
                if objective.sli == "availability"
                else "requests were slower than the objective"
            )
            rules.append(
                {
                    "alert": name,
                    "expr": expr,
                    "for": burn.for_,
                    "labels": {
                        "severity": burn.severity,
                        "slo": objective.slo,
                        "sli": objective.sli,
                        "long_window": burn.long,
                        "short_window": burn.short,
                    },
                    "annotations": {
                        "summary": (
                            f"SLO {objective.slo} ({objective.sli}) burns its error budget "
                            f"{threshold_text(rate)}x too fast"
                        ),
                        "description": (
                            f"Over the last {burn.long} and {burn.short}, more than {threshold_text(float(limit) * 100)}% "
                            f"of {what} (objective {threshold_text(objective.target * 100)}% over {slo.window}); "
                            f"at this pace {threshold_text(burn.budget_share * 100)}% of the budget goes in {burn.long}."
                        ),
                    },
                }
            )
    return rules


def rule_groups(slos: Iterable[SLO]) -> dict[str, Any]:
    """The rules file as a mapping: one recording group and one alerting group per SLO."""
    groups: list[dict[str, Any]] = []
    for slo in slos:
        groups.append({"name": f"hardenkit-slo-{slo.name}-recording", "rules": recording_rules(slo)})
        groups.append({"name": f"hardenkit-slo-{slo.name}-alerts", "rules": alert_rules(slo)})
    return {"groups": groups}


def prometheus_rules(slos: Iterable[SLO], *, format: str = "yaml") -> str:
    """The rules file for ``slos`` as text: ``format="yaml"`` (default) or ``"json"``."""
    groups = rule_groups(slos)
    if format == "json":
        return json.dumps(groups, indent=2, ensure_ascii=False) + "\n"
    if format != "yaml":
        raise ValueError(f"format: write 'yaml' or 'json', got {format!r}")
    return render_yaml(groups)


def render_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for mappings, lists, strings and numbers (strings double-quoted as JSON,
    which YAML reads the same). Written here so generating rules needs no YAML library."""
    return "\n".join(_yaml_lines(value, indent)) + "\n"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, (Mapping, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(_yaml_lines(item, indent + 2))
            elif isinstance(item, Mapping):
                lines.append(f"{pad}{key}: {{}}")
            elif isinstance(item, list):
                lines.append(f"{pad}{key}: []")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list):
        for item in value:
            nested = _yaml_lines(item, indent + 2)
            if isinstance(item, (Mapping, list)) and nested:
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
        return lines
    return [f"{pad}{_scalar(value)}"]
