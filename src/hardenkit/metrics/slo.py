"""Service level objectives and the arithmetic of error budgets and burn rates.

An :class:`SLO` holds up to two objectives over a rolling ``window``:

* availability: a share ``objective`` of requests is not answered with a 5xx;
* latency (when ``latency_ms`` is set): a share ``percentile`` of requests is answered
  within ``latency_ms`` ("p95 under 100 ms" is ``latency_ms=100, percentile=0.95``).

Each objective leaves an error budget (``1 - target``: 0.1% of requests for 99.9%).
The alerts follow the multi-window, multi-burn-rate pattern of Google's SRE
workbook (chapter "Alerting on SLOs"): an alert fires when the error ratio over a
long window *and* over a short one (a twelfth of it, so the alert stops soon after
the burn does) exceed ``burn rate x budget``, where the burn rate is the pace that
spends a given share of the whole budget within the long window. For a 30-day
window that gives the workbook's table: 2% in 1h (14.4x) and 5% in 6h (6x) page,
10% in 1d (3x) and 10% in 3d (1x) open a ticket. Standard library only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigurationError

__all__ = ["BURN_WINDOWS", "SLO", "BurnWindow", "Objective", "parse_duration", "slos_from_env"]

_DURATION = re.compile(r"^(\d+)(m|h|d|w)$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


def parse_duration(text: str) -> int:
    """Seconds in a Prometheus-style duration with one unit: ``5m``, ``1h``, ``30d``, ``4w``."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ConfigurationError(f"window {text!r}: write a duration like '30d', '7d', '4w' or '12h'")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: int) -> str:
    """The shortest Prometheus duration for ``seconds`` (``3600`` -> ``1h``)."""
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class BurnWindow:
    """One alert of the multi-window pattern: spending ``budget_share`` of the budget within ``long``."""

    long: str
    short: str
    budget_share: float
    severity: str
    for_: str

    def burn_rate(self, window_seconds: int) -> float:
        """How many times faster than "exactly on budget" the budget burns when this alert fires."""
        return self.budget_share * window_seconds / parse_duration(self.long)


#: The SRE workbook's windows (its table is for 30 days; the burn rates follow from the window).
BURN_WINDOWS: tuple[BurnWindow, ...] = (
    BurnWindow("1h", "5m", 0.02, "page", "2m"),
    BurnWindow("6h", "30m", 0.05, "page", "15m"),
    BurnWindow("1d", "2h", 0.10, "ticket", "1h"),
    BurnWindow("3d", "6h", 0.10, "ticket", "3h"),
)


@dataclass(frozen=True)
class Objective:
    """One objective of an SLO: ``sli`` is "availability" or "latency"."""

    slo: str
    sli: str
    target: float

    @property
    def budget(self) -> float:
        """The share of requests allowed to be bad."""
        return 1.0 - self.target

    def threshold(self, window: BurnWindow, window_seconds: int) -> float:
        """The error ratio above which ``window``'s alert fires."""
        return window.burn_rate(window_seconds) * self.budget

    def budget_left(self, bad: float, total: float) -> float | None:
        """Share of the error budget left after ``bad`` of ``total`` requests (negative: overspent)."""
        if total <= 0:
            return None
        return 1.0 - (bad / total) / self.budget


@dataclass(frozen=True)
class SLO:
    """A service level objective, declared in code (``hk.SLO("api", objective=0.999, latency_ms=100)``)
    or in the environment (:func:`slos_from_env`).

    ``routes`` are route templates (``/items/{id}``) as the metrics label them; empty means every route.
    ``objective=None`` leaves out the availability objective; ``latency_ms=None`` the latency one.
    """

    name: str
    objective: float | None = 0.999
    latency_ms: float | None = None
    percentile: float = 0.95
    window: str = "30d"
    routes: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigurationError(
                f"SLO name {self.name!r}: use letters, digits, '_' and '-' (up to 64), e.g. 'checkout'"
            )
        for option, value in (("objective", self.objective), ("percentile", self.percentile)):
            if value is None and option == "objective":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
                raise ConfigurationError(
                    f"SLO {self.name}: {option}={value!r}: write a share between 0 and 1, e.g. 0.999 for 99.9%"
                )
        if self.latency_ms is not None and (
            isinstance(self.latency_ms, bool)
            or not isinstance(self.latency_ms, (int, float))
            or not 0 < self.latency_ms < 3_600_000
        ):
            raise ConfigurationError(
                f"SLO {self.name}: latency_ms={self.latency_ms!r}: write milliseconds > 0"
            )
        if self.objective is None and self.latency_ms is None:
            raise ConfigurationError(f"SLO {self.name}: give objective=, latency_ms= or both")
        parse_duration(self.window)
        if isinstance(self.routes, str):
            object.__setattr__(self, "routes", (self.routes,))
        routes = tuple(self.routes)
        for route in routes:
            if not isinstance(route, str) or not route.startswith("/"):
                raise ConfigurationError(
                    f"SLO {self.name}: routes takes route templates starting with '/', got {route!r}"
                )
        object.__setattr__(self, "routes", routes)

    @property
    def latency_seconds(self) -> float | None:
        return None if self.latency_ms is None else self.latency_ms / 1000.0

    @property
    def window_seconds(self) -> int:
        return parse_duration(self.window)

    @property
    def objectives(self) -> tuple[Objective, ...]:
        found: list[Objective] = []
        if self.objective is not None:
            found.append(Objective(self.name, "availability", float(self.objective)))
        if self.latency_ms is not None:
            found.append(Objective(self.name, "latency", float(self.percentile)))
        return tuple(found)

    @classmethod
    def parse(cls, text: str) -> SLO:
        """``name:objective=0.999,latency_ms=100,percentile=0.95,window=30d,routes=/a|/b/{id}``."""
        name, sep, rest = text.partition(":")
        if not sep:
            name, rest = text, ""
        options: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq:
                raise ConfigurationError(f"SLO {text!r}: {part!r} is not key=value")
            if key not in ("objective", "latency_ms", "percentile", "window", "routes"):
                raise ConfigurationError(
                    f"SLO {text!r}: unknown option {key!r}; known: objective, latency_ms, percentile, window, routes"
                )
            try:
                if key in ("objective", "latency_ms", "percentile"):
                    options[key] = None if value.strip().lower() in ("none", "off") else float(value)
                elif key == "window":
                    options[key] = value.strip()
                else:
                    options[key] = tuple(r.strip() for r in value.split("|") if r.strip())
            except ValueError:
                raise ConfigurationError(f"SLO {text!r}: {key}={value!r} is not a number") from None
        return cls(name.strip(), **options)  # type: ignore[arg-type]


def slos_from_env(environ: Mapping[str, str] | None = None) -> list[SLO]:
    """SLOs from ``HARDENKIT_SLO_<NAME>="objective=0.999,latency_ms=100,window=30d"`` variables."""
    env = os.environ if environ is None else environ
    found: list[SLO] = []
    for variable in sorted(env):
        if variable.startswith("HARDENKIT_SLO_") and len(variable) > len("HARDENKIT_SLO_"):
            name = variable[len("HARDENKIT_SLO_") :].lower()
            try:
                found.append(SLO.parse(f"{name}:{env[variable]}"))
            except ConfigurationError as exc:
                raise ConfigurationError(f"{variable}: {exc}") from None
    return found


def unique(slos: Iterable[SLO]) -> list[SLO]:
    """The SLOs, refusing two with one name (their rules would clash)."""
    seen: dict[str, SLO] = {}
    for slo in slos:
        if slo.name in seen and seen[slo.name] != slo:
            raise ConfigurationError(f"two different SLOs are named {slo.name!r}")
        seen[slo.name] = slo
    return list(seen.values())
