"""hardenkit: make an existing Python web service production-hard in a few lines.

Public names are loaded lazily (PEP 562), so ``import hardenkit`` costs almost
nothing and loads no optional backend (limits, redis, uvicorn)::

    import hardenkit as hk
    hk.harden(app)
"""

from __future__ import annotations

from importlib import import_module

from ._version import __version__

# Not typing.TYPE_CHECKING: importing typing costs more than the rest of this
# package's import (mypy treats any constant named TYPE_CHECKING the same way).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._core.context import request_id
    from ._core.kit import Kit, Wiring, harden
    from .aio import AsyncWrapper, configure_limiter, gather_limited, limiter_stats, run_sync, to_async
    from .auth import APIKeyMiddleware, principal, require_roles
    from .errors import (
        CallTimeout,
        ConfigurationError,
        HardenkitError,
        LockError,
        LockTimeout,
        StateCorrupted,
        StateError,
        StorageUnavailable,
    )
    from .headers import HeaderContractMiddleware
    from .health import Check, HealthProbeMiddleware
    from .lock import FileLock, JsonState, atomic_write
    from .logs import AccessLogMiddleware, RedactingFilter, Redactor, configure_logging
    from .metrics import SLO, MetricsMiddleware
    from .ratelimit import RateLimitBreach, RateLimitExceeded, RateLimitMiddleware, limited, rate_limit
    from .timeouts import TimeoutMiddleware

# public name -> module that defines it (relative to this package)
_LAZY: dict[str, str] = {
    "APIKeyMiddleware": ".auth",
    "AccessLogMiddleware": ".logs",
    "AsyncWrapper": ".aio",
    "CallTimeout": ".errors",
    "Check": ".health",
    "ConfigurationError": ".errors",
    "FileLock": ".lock",
    "HardenkitError": ".errors",
    "HeaderContractMiddleware": ".headers",
    "HealthProbeMiddleware": ".health",
    "JsonState": ".lock",
    "Kit": "._core.kit",
    "LockError": ".errors",
    "LockTimeout": ".errors",
    "MetricsMiddleware": ".metrics",
    "RateLimitBreach": ".ratelimit",
    "RateLimitExceeded": ".ratelimit",
    "RateLimitMiddleware": ".ratelimit",
    "RedactingFilter": ".logs",
    "Redactor": ".logs",
    "SLO": ".metrics",
    "StateCorrupted": ".errors",
    "StateError": ".errors",
    "StorageUnavailable": ".errors",
    "TimeoutMiddleware": ".timeouts",
    "Wiring": "._core.kit",
    "atomic_write": ".lock",
    "configure_limiter": ".aio",
    "configure_logging": ".logs",
    "gather_limited": ".aio",
    "harden": "._core.kit",
    "limited": ".ratelimit",
    "limiter_stats": ".aio",
    "principal": ".auth",
    "rate_limit": ".ratelimit",
    "request_id": "._core.context",
    "require_roles": ".auth",
    "run_sync": ".aio",
    "to_async": ".aio",
}

__all__ = [
    "APIKeyMiddleware",
    "AccessLogMiddleware",
    "AsyncWrapper",
    "CallTimeout",
    "Check",
    "ConfigurationError",
    "FileLock",
    "HardenkitError",
    "HeaderContractMiddleware",
    "HealthProbeMiddleware",
    "JsonState",
    "Kit",
    "LockError",
    "LockTimeout",
    "MetricsMiddleware",
    "RateLimitBreach",
    "RateLimitExceeded",
    "RateLimitMiddleware",
    "RedactingFilter",
    "Redactor",
    "SLO",
    "StateCorrupted",
    "StateError",
    "StorageUnavailable",
    "TimeoutMiddleware",
    "Wiring",
    "__version__",
    "atomic_write",
    "configure_limiter",
    "configure_logging",
    "gather_limited",
    "harden",
    "limited",
    "limiter_stats",
    "principal",
    "rate_limit",
    "request_id",
    "require_roles",
    "run_sync",
    "to_async",
]


def __getattr__(name: str) -> Any:
    try:
        module_name = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'hardenkit' has no attribute {name!r}") from None
    value = getattr(import_module(module_name, __name__), name)
    globals()[name] = value  # cache: the next access is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
