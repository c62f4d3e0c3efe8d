"""``hardenkit status``: a terminal summary from two scrapes of a service's ``/metrics``.

Rates come from the difference between the two scrapes (the counters are
cumulative); percentiles from the difference of the latency histograms, with
the interpolation Prometheus' ``histogram_quantile`` uses; the SLO budget left
from the cumulative counts (since the service's counters began). Standard
library only, so a user can watch a service from any machine with hardenkit.
"""

from __future__ import annotations

import math
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError
from .slo import SLO

__all__ = [
    "Snapshot",
    "Summary",
    "fetch_exposition",
    "format_summary",
    "parse_exposition",
    "quantile",
    "summarize",
]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')
_MAX_BYTES = 64 * 1024 * 1024

Labels = tuple[tuple[str, str], ...]


def _unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


@dataclass
class Snapshot:
    """The samples of one scrape: ``{name: {sorted labels: value}}``."""

    samples: dict[str, dict[Labels, float]] = field(default_factory=dict)

    def series(self, name: str) -> dict[Labels, float]:
        return self.samples.get(name, {})


def parse_exposition(text: str) -> Snapshot:
    """Parse the Prometheus text exposition format (comments and timestamps ignored)."""
    snapshot = Snapshot()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line.strip())
        if match is None:
            continue
        name, raw_labels, raw_value = match.groups()
        try:
            value = float(raw_value)
        except ValueError:
            continue
        labels = tuple(sorted((key, _unescape(val)) for key, val in _LABEL.findall(raw_labels or "")))
        snapshot.samples.setdefault(name, {})[labels] = value
    return snapshot


def fetch_exposition(url: str, *, token: str | None = None, timeout: float = 5.0) -> str:
    """GET ``url`` (http or https) and return the text exposition."""
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"status: {url!r} is not an http(s) URL; write e.g. http://127.0.0.1:8000/metrics"
        )
    request = urllib.request.Request(url, headers={"Accept": "text/plain; version=0.0.4"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    # No redirects: urllib would carry the token to wherever the answer points.
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(request, timeout=timeout) as response:
        body: bytes = response.read(_MAX_BYTES)
    return body.decode("utf-8", errors="replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise urllib.error.HTTPError(req.full_url, code, f"redirected to {newurl}; not followed", headers, fp)


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """``histogram_quantile`` over cumulative ``(upper bound, count)`` pairs; None without data."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # the answer is above the highest finite bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound  # pragma: no cover - the +Inf bucket always holds the total


@dataclass
class RouteLine:
    route: str
    rate: float
    error_ratio: float | None
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass
class Summary:
    seconds: float
    rate: float
    error_ratio: float | None
    limited_rate: float
    in_flight: float
    routes: list[RouteLine]
    budgets: list[tuple[str, str, float, float | None]]  # slo, sli, target, budget left


def _delta(after: Mapping[Labels, float], before: Mapping[Labels, float], key: Labels) -> float:
    # A counter that went down was reset (a restart): its new value is the increase.
    now, then = after.get(key, 0.0), before.get(key, 0.0)
    return now - then if now >= then else now


def _by_route(snapshot: Snapshot, before: Snapshot | None, name: str) -> dict[str, dict[Labels, float]]:
    after_series = snapshot.series(name)
    before_series = before.series(name) if before is not None else {}
    grouped: dict[str, dict[Labels, float]] = {}
    for labels in after_series:
        route = dict(labels).get("route", "")
        value = _delta(after_series, before_series, labels) if before is not None else after_series[labels]
        grouped.setdefault(route, {})[labels] = value
    return grouped


def summarize(before: Snapshot, after: Snapshot, seconds: float, slos: Iterable[SLO] = ()) -> Summary:
    seconds = max(seconds, 1e-9)
    requests = _by_route(after, before, "http_requests_total")
    buckets = _by_route(after, before, "http_request_duration_seconds_bucket")
    lines: list[RouteLine] = []
    total = bad = 0.0
    for route in sorted(requests):
        count = sum(requests[route].values())
        errors = sum(v for k, v in requests[route].items() if dict(k).get("status_class") == "5xx")
        total += count
        bad += errors
        pairs: dict[float, float] = {}
        for labels, value in buckets.get(route, {}).items():
            le = dict(labels).get("le", "+Inf")
            bound = math.inf if le in ("+Inf", "Inf") else float(le)
            pairs[bound] = pairs.get(bound, 0.0) + value
        cumulative = sorted(pairs.items())
        lines.append(
            RouteLine(
                route,
                count / seconds,
                errors / count if count else None,
                *(quantile(q, cumulative) for q in (0.5, 0.95, 0.99)),
            )
        )
    decisions = after.series("hardenkit_ratelimit_decisions_total")
    limited = sum(
        _delta(decisions, before.series("hardenkit_ratelimit_decisions_total"), key)
        for key in decisions
        if dict(key).get("result") != "allowed"
    )
    if not decisions:
        limited = sum(v for r in requests.values() for k, v in r.items() if dict(k).get("status") == "429")
    in_flight = sum(after.series("http_requests_in_flight").values())
    return Summary(
        seconds,
        total / seconds,
        bad / total if total else None,
        limited / seconds,
        in_flight,
        lines,
        _budgets(after, slos),
    )


def _budgets(after: Snapshot, slos: Iterable[SLO]) -> list[tuple[str, str, float, float | None]]:
    found: list[tuple[str, str, float, float | None]] = []
    requests = after.series("http_requests_total")
    buckets = after.series("http_request_duration_seconds_bucket")
    for slo in slos:
        wanted = set(slo.routes)

        def chosen(labels: Labels, wanted: set[str] = wanted) -> bool:
            return not wanted or dict(labels).get("route") in wanted

        for objective in slo.objectives:
            if objective.sli == "availability":
                total = sum(v for k, v in requests.items() if chosen(k))
                bad = sum(
                    v for k, v in requests.items() if chosen(k) and dict(k).get("status_class") == "5xx"
                )
            else:
                assert slo.latency_seconds is not None
                counts = {k: v for k, v in buckets.items() if chosen(k)}
                total = sum(v for k, v in counts.items() if dict(k).get("le") in ("+Inf", "Inf"))
                threshold = round(slo.latency_seconds, 9)
                at_threshold = [v for k, v in counts.items() if _le(dict(k).get("le")) == threshold]
                if not at_threshold:
                    # The threshold is no bucket bound (the SLO was not given to the middleware).
                    found.append((slo.name, objective.sli, objective.target, None))
                    continue
                bad = total - sum(at_threshold)
            found.append((slo.name, objective.sli, objective.target, objective.budget_left(bad, total)))
    return found


def _le(text: str | None) -> float | None:
    if text is None or text in ("+Inf", "Inf"):
        return None
    try:
        return round(float(text), 9)
    except ValueError:
        return None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def format_summary(summary: Summary, *, url: str = "") -> str:
    out = [
        f"{url}  (over {summary.seconds:.1f}s)".strip(),
        f"requests/s {summary.rate:.2f}   errors (5xx) {_pct(summary.error_ratio)}   "
        f"rate-limited/s {summary.limited_rate:.2f}   in flight {summary.in_flight:.0f}",
        "",
    ]
    width = max([len("route"), *(len(line.route) for line in summary.routes)])
    out.append(f"{'route':<{width}}  {'req/s':>8}  {'5xx':>7}  {'p50 ms':>8}  {'p95 ms':>8}  {'p99 ms':>8}")
    out.extend(
        f"{line.route:<{width}}  {line.rate:>8.2f}  {_pct(line.error_ratio):>7}  "
        f"{_ms(line.p50):>8}  {_ms(line.p95):>8}  {_ms(line.p99):>8}"
        for line in summary.routes
    )
    if summary.budgets:
        out += ["", "SLO error budget left (since the counters started):"]
        out.extend(
            f"  {name} {sli} (objective {target * 100:g}%): {_pct(left)}"
            for name, sli, target, left in summary.budgets
        )
    return "\n".join(out) + "\n"
