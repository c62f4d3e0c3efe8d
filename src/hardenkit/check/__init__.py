"""``hardenkit check URL``: audit a live service's contract, whether it uses hardenkit or not.

Modules: ``model`` (the catalogue of checks, observations, results, the report),
``discovery`` (endpoints from OpenAPI or given paths), ``runner`` (the requests:
bounded concurrency, a total budget; httpx, imported when a check runs),
``rules`` and ``ratelimit_rules`` (the checks), ``tls`` (the handshake probe),
``report`` (table, JSON, JUnit). May import the core, the errors, anyio, httpx
and ``hardenkit.headers``' public presets.
"""

from __future__ import annotations

from .model import CHECKS, CheckResult, CheckSpec, Observation, Report
from .report import render, render_error
from .runner import CheckError, CheckOptions, audit, run

__all__ = [
    "CHECKS",
    "CheckError",
    "CheckOptions",
    "CheckResult",
    "CheckSpec",
    "Observation",
    "Report",
    "audit",
    "render",
    "render_error",
    "run",
]
