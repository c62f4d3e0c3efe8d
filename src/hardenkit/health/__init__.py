"""Health probes and graceful shutdown: :class:`HealthProbeMiddleware`, :class:`Check`, built-in checks.

The middleware answers the probe paths itself, before the app and every other
hardenkit component, with ``application/health+json`` documents following
draft-inadarei-api-health-check::

    /livez    liveness: the process answers; runs no dependency check
    /readyz   readiness: every check (cached for ``cache_ttl``), 503 while starting or shutting down
    /healthz  readiness with the per-check details (``checks``)
    startup_path (off by default): passes once the startup checks have passed once

Checks run concurrently, each under its own timeout; sync checks run in worker
threads of a limiter of their own; a check still running from an earlier probe is
never started again (single flight), and concurrent probes share one run.

On SIGTERM (chained to the server's own handler) and on lifespan shutdown,
readiness fails at once while liveness keeps passing; the server's handler is
called ``shutdown_delay`` seconds later, and in-flight requests get
``drain_timeout`` seconds more to finish before they are cancelled.

Modules: ``middleware`` (HealthProbeMiddleware), ``checks`` (Check, the built-in
checks, running one check), ``shutdown`` (signals, draining). May import the
shared core, :mod:`hardenkit.aio` and starlette's responses; no other component.
"""

from __future__ import annotations

from .checks import HEALTH_JSON, Check, disk_space, redis_ping, tcp_connect, writable_dir
from .middleware import HealthProbeMiddleware

__all__ = [
    "HEALTH_JSON",
    "Check",
    "HealthProbeMiddleware",
    "disk_space",
    "redis_ping",
    "tcp_connect",
    "writable_dir",
]
