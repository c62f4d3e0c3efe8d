from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types

import pytest

import hardenkit as hk

# The public names each public module had when the layout issue began (0.1.0.dev0).
# A name may be added to a module (and to its __all__), never removed: users import these.
PUBLISHED: dict[str, set[str]] = {
    "hardenkit": {
        "AccessLogMiddleware", "AsyncWrapper", "CallTimeout", "Check", "ConfigurationError", "FileLock",
        "HardenkitError", "HeaderContractMiddleware", "HealthProbeMiddleware", "JsonState", "Kit",
        "LockError", "LockTimeout", "MetricsMiddleware", "RateLimitBreach", "RateLimitExceeded", "RateLimitMiddleware",
        "RedactingFilter", "Redactor", "SLO", "StateCorrupted", "StateError", "StorageUnavailable", "Wiring",
        "__version__", "atomic_write", "configure_limiter", "configure_logging", "gather_limited", "harden",
        "limiter_stats", "rate_limit", "request_id", "run_sync", "to_async",
        # Added by the API-keys issue (17).
        "APIKeyMiddleware", "principal", "require_roles",
        # Added by issue 14 (the decorator form of rate_limit).
        "limited",
    },
    "hardenkit.lock": {
        "FileLock", "Holder", "JsonState", "LockError", "LockTimeout", "StateCorrupted", "StateError",
        "atomic_write",
    },
    "hardenkit.aio": {
        "DEFAULT_LIMITER", "AsyncWrapper", "configure_limiter", "gather_limited", "limiter_stats", "run_sync",
        "to_async",
    },
    "hardenkit.health": {
        "HEALTH_JSON", "Check", "HealthProbeMiddleware", "disk_space", "redis_ping", "tcp_connect",
        "writable_dir",
    },
    "hardenkit.logs": {
        "CATEGORIES", "DEFAULT_CATEGORIES", "OPT_IN_CATEGORIES", "AccessLogMiddleware", "LogFileHandler",
        "RedactingFilter", "Redactor", "configure_logging", "is_secret_key", "re2_available",
    },
    "hardenkit.testing": {"ContractReport", "assert_header_contract", "iter_routes"},
    "hardenkit.errors": {
        "CallTimeout", "ConfigurationError", "HardenkitError", "LockError", "LockTimeout", "StateCorrupted",
        "StateError", "StorageUnavailable",
    },
    # Packages added by the layout (their names were reachable from hardenkit before).
    "hardenkit.headers": {"HeaderContractMiddleware", "REQUEST_ID", "request_id"},
    "hardenkit.ratelimit": {
        "RateLimitBreach", "RateLimitExceeded", "RateLimitMiddleware", "rate_limit",
        # Added by issue 14 (the decorator form, the 429 in OpenAPI).
        "document_rate_limits", "limited",
    },
    # Added by the API-keys issue (17).
    "hardenkit.auth": {
        "KEY_PATTERN", "KEY_PREFIX", "APIKeyMiddleware", "AuthError", "EnvKeyStore", "FileKeyStore", "KeyHasher",
        "KeyManager", "KeyRecord", "KeyStore", "MatrixRow", "MemoryKeyStore", "Principal", "RedisKeyStore",
        "RoleRequirement", "admin_app", "authenticate", "checksum", "cost_by_role", "document_security", "generate_key",
        "key_by_principal", "open_store", "parse_key", "permission_matrix", "principal", "render_markdown",
        "require_roles",
    },
    # Added by the metrics issue.
    "hardenkit.metrics": {
        "BURN_WINDOWS", "SLO", "MetricsMiddleware", "fetch_exposition", "format_summary", "grafana_dashboard", "parse_exposition",
        "prometheus_rules", "slos_from_env", "summarize",
    },
    # Added by the request-timeout issue.
    "hardenkit.timeouts": {"TimeoutMiddleware"},
    # Added by the `hardenkit check` issue.
    "hardenkit.check": {
        "CHECKS", "CheckError", "CheckOptions", "CheckResult", "CheckSpec", "Observation", "Report", "audit",
        "render", "render_error", "run",
    },
}  # fmt: skip


def _isort_key(name: str) -> tuple[int, str]:
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def _public_names(module: types.ModuleType) -> set[str]:
    """What a module offers: names not starting with '_' (plus __version__), less its submodules."""
    names = {name for name in dir(module) if not name.startswith("_")} | (
        {"__version__"} if hasattr(module, "__version__") else set()
    )
    return {
        name
        for name in names
        if not isinstance(getattr(module, name, None), types.ModuleType)
        or not getattr(module, name).__name__.startswith(module.__name__ + ".")
    }


@pytest.mark.parametrize("module_name", sorted(PUBLISHED))
def test_published_names_still_import_from_their_module(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = {name for name in PUBLISHED[module_name] if not hasattr(module, name)}
    assert not missing, f"{module_name} lost public names: {sorted(missing)}"
    assert PUBLISHED[module_name] <= set(module.__all__)


@pytest.mark.parametrize("module_name", sorted(PUBLISHED))
def test_all_is_sorted_and_equals_the_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        getattr(module, name)  # lazy names resolve (and join the module's namespace)
    # Either plain order or isort's (CONSTANTS, Classes, functions), as ruff's RUF022 keeps it.
    assert list(module.__all__) in (sorted(module.__all__), sorted(module.__all__, key=_isort_key))
    # Everything the module defines publicly is in __all__; imported helpers (stdlib modules,
    # typing names) are not. Constants carry no __module__, so they are checked by the set above.
    public = {
        name
        for name in _public_names(module)
        if not isinstance(getattr(module, name), types.ModuleType)
        and (getattr(getattr(module, name), "__module__", None) or "").startswith("hardenkit")
    }
    assert public <= set(module.__all__)


@pytest.mark.parametrize("name", hk.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(hk, name) is not None


def test_the_same_object_under_every_import_path() -> None:
    import hardenkit.headers
    import hardenkit.health
    import hardenkit.logs
    import hardenkit.ratelimit
    import hardenkit.timeouts

    assert hk.HeaderContractMiddleware is hardenkit.headers.HeaderContractMiddleware
    assert hk.RateLimitMiddleware is hardenkit.ratelimit.RateLimitMiddleware
    assert hk.HealthProbeMiddleware is hardenkit.health.HealthProbeMiddleware
    assert hk.AccessLogMiddleware is hardenkit.logs.AccessLogMiddleware
    assert hk.TimeoutMiddleware is hardenkit.timeouts.TimeoutMiddleware
    assert hk.request_id is hardenkit.headers.request_id


def test_the_old_private_context_module_keeps_working() -> None:
    # docs up to 0.1.0.dev0 showed `from hardenkit._context import REQUEST_ID`.
    from hardenkit._context import REQUEST_ID
    from hardenkit.headers import REQUEST_ID as PUBLIC

    assert REQUEST_ID is PUBLIC


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        hk.nope  # noqa: B018


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out))


def test_import_hardenkit_loads_no_optional_backend_nor_web_stack() -> None:
    modules = _imported_after("import hardenkit")
    for heavy in ("limits", "redis", "uvicorn", "starlette", "anyio", "filelock", "pythonjsonlogger"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in modules), heavy


@pytest.mark.parametrize(
    "module", ["hardenkit.lock", "hardenkit.aio", "hardenkit.errors", "hardenkit.logs", "hardenkit.cli"]
)
def test_script_helpers_do_not_import_the_web_stack(module: str) -> None:
    modules = _imported_after(f"import {module}")
    assert "starlette" not in modules and "limits" not in modules


def test_version_is_a_string() -> None:
    assert isinstance(hk.__version__, str) and hk.__version__
