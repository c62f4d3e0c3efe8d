"""Health checks: :class:`Check`, the built-in checks, and one check's run and result.

Imports the standard library, anyio and :mod:`hardenkit.aio` (sync checks run in
worker threads); never starlette.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..aio import to_async
from ..errors import ConfigurationError

logger = logging.getLogger("hardenkit.health")

#: The media type of every probe answer (draft-inadarei-api-health-check).
HEALTH_JSON = "application/health+json"

PASS, WARN, FAIL = "pass", "warn", "fail"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}

CheckFn = Callable[[], Any]

# -- checks -----------------------------------------------------------------------------


def _is_async_callable(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


def _check_part(value: str, *, what: str) -> None:
    if not isinstance(value, str) or not value or ":" in value or value != value.strip():
        raise ConfigurationError(
            f"Check: {what} {value!r} must be a non-empty string without ':' or surrounding spaces "
            "(the key is '<name>:<measurement>'); write for example Check('db', ping_db)"
        )


@dataclass(frozen=True)
class Check:
    """One dependency check.

    ``fn`` is a sync or async callable taking no argument; it returns ``True`` or
    ``None`` (pass), ``False`` (fail), or a mapping with ``status``
    (``"pass"``/``"warn"``/``"fail"``) and optionally ``observedValue``,
    ``observedUnit`` and ``output``. Raising, or running past ``timeout``
    seconds, is a fail. A failing check with ``critical=False`` makes the whole
    answer ``warn`` (200) instead of ``fail`` (503). ``startup=True`` checks must
    pass once before readiness can pass, and are not run again after that.
    """

    name: str
    fn: CheckFn
    critical: bool = True
    timeout: float = 1.0
    component_type: str | None = None
    measurement: str | None = None
    startup: bool = False
    is_async: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_part(self.name, what="name")
        if self.measurement is not None:
            _check_part(self.measurement, what="measurement")
        if not callable(self.fn):
            raise ConfigurationError(
                f"Check {self.name!r}: fn must be a callable taking no argument, got {self.fn!r}"
            )
        if (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, (int, float))
            or not math.isfinite(self.timeout)
            or self.timeout <= 0
        ):
            raise ConfigurationError(
                f"Check {self.name!r}: timeout must be a positive number of seconds, got {self.timeout!r}"
            )
        if self.component_type is not None and (
            not isinstance(self.component_type, str) or not self.component_type.strip()
        ):
            raise ConfigurationError(
                f"Check {self.name!r}: component_type must be a non-empty string such as 'datastore', "
                f"got {self.component_type!r}"
            )
        object.__setattr__(self, "is_async", _is_async_callable(self.fn))

    @property
    def key(self) -> str:
        """The key of this check in the ``checks`` object: ``name`` or ``name:measurement``."""
        return self.name if self.measurement is None else f"{self.name}:{self.measurement}"


def redis_ping(
    url: str, *, name: str = "redis", timeout: float = 1.0, critical: bool = True, startup: bool = False
) -> Check:
    """An async check that sends PING to the Redis server at ``url`` (needs redis-py, asyncio only).

    Reports the round trip in milliseconds as ``redis:responseTime``. A new
    connection is opened per run, that is at most once per ``cache_ttl``.
    """
    import importlib.util

    if importlib.util.find_spec("redis") is None:  # pragma: no cover - the test extra installs redis-py
        raise ConfigurationError("redis_ping needs redis-py; install it with: pip install 'hardenkit[redis]'")
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"redis_ping: url must look like redis://host:6379/0, got {url!r}")

    async def ping() -> dict[str, Any]:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            started = time.perf_counter()
            await client.ping()
            elapsed = (time.perf_counter() - started) * 1000.0
        finally:
            await client.aclose()
        return {"status": PASS, "observedValue": round(elapsed, 3), "observedUnit": "ms"}

    return Check(
        name, ping, critical=critical, timeout=timeout, component_type="datastore",
        measurement="responseTime", startup=startup,
    )  # fmt: skip


def disk_space(
    path: str | os.PathLike[str] = ".",
    *,
    min_free_bytes: int,
    warn_free_bytes: int | None = None,
    name: str = "disk",
    timeout: float = 1.0,
    critical: bool = True,
) -> Check:
    """A sync check of the free space of the file system holding ``path``.

    Fails below ``min_free_bytes``, warns below ``warn_free_bytes``; reports the
    free bytes as ``disk:free``.
    """
    for option, value in (("min_free_bytes", min_free_bytes), ("warn_free_bytes", warn_free_bytes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigurationError(
                f"disk_space: {option} must be a whole number of bytes >= 0, got {value!r}"
            )
    target = os.fspath(path)

    def free() -> dict[str, Any]:
        available = shutil.disk_usage(target).free
        status = PASS
        if available < min_free_bytes:
            status = FAIL
        elif warn_free_bytes is not None and available < warn_free_bytes:
            status = WARN
        return {"status": status, "observedValue": available, "observedUnit": "bytes"}

    return Check(name, free, critical=critical, timeout=timeout, component_type="system", measurement="free")


def writable_dir(
    path: str | os.PathLike[str], *, name: str = "writable_dir", timeout: float = 1.0, critical: bool = True
) -> Check:
    """A sync check that a file can be created, written, flushed to disk and removed in ``path``."""
    target = os.fspath(path)

    def writable() -> bool:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".hardenkit-health-") as handle:
            handle.write(b"ok")
            handle.flush()
            os.fsync(handle.fileno())
        return True

    return Check(name, writable, critical=critical, timeout=timeout, component_type="system")


def tcp_connect(
    host: str, port: int, *, name: str = "tcp", timeout: float = 1.0, critical: bool = True
) -> Check:
    """An async check that a TCP connection to ``host:port`` opens (asyncio and trio).

    Reports the connect time in milliseconds as ``<name>:responseTime``.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigurationError(f"tcp_connect: port must be a whole number in 1..65535, got {port!r}")

    async def connect() -> dict[str, Any]:
        started = time.perf_counter()
        stream = await anyio.connect_tcp(host, port)
        elapsed = (time.perf_counter() - started) * 1000.0
        await stream.aclose()
        return {"status": PASS, "observedValue": round(elapsed, 3), "observedUnit": "ms"}

    return Check(
        name, connect, critical=critical, timeout=timeout, component_type="component",
        measurement="responseTime",
    )  # fmt: skip


# -- running checks -----------------------------------------------------------------------


async def _call_sync(fn: CheckFn, *, limiter: anyio.CapacityLimiter, timeout: float) -> Any:
    """Run ``fn`` in a worker thread of ``limiter``; ``CallTimeout`` (a TimeoutError) after ``timeout``.

    The thread cannot be stopped: it keeps its limiter token until it really ends.
    """
    return await to_async(fn, limiter=limiter, timeout=timeout)()


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class _Outcome:
    status: str
    at: float
    time: str
    observed_value: Any = None
    observed_unit: str | None = None
    output: str | None = None  # what the answer shows (already generic unless expose_details)


class _Run:
    """One execution of a check, shared by every probe that asks while it runs."""

    __slots__ = ("done", "outcome")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.outcome: _Outcome | None = None


class _CheckState:
    __slots__ = ("check", "expires", "outcome", "run", "thread_busy", "calls", "last_status")

    def __init__(self, check: Check) -> None:
        self.check = check
        self.outcome: _Outcome | None = None
        self.expires = 0.0
        self.run: _Run | None = None
        # Set in the event loop before a worker thread starts, cleared by the thread when fn returns.
        self.thread_busy = False
        self.calls = 0
        self.last_status: str | None = None


class _Malformed(ValueError):
    """A check result that cannot be shown as JSON; the probe reports the check as failed."""


#: Deeper than this, an observedValue is taken for a runaway structure rather than a measurement.
_MAX_DEPTH = 32
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _jsonable(value: Any, _depth: int = 0, _path: frozenset[int] = frozenset()) -> Any:
    """A copy of ``value`` made only of exact JSON types (str, int, float, bool, None, list, dict).

    Subclasses become their base type (a str or float subclass cannot change how
    it is written); NaN and infinities, which JSON cannot carry, are written as
    the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``; other objects by
    their ``str()``. Raises :class:`_Malformed` for a cycle or a structure nested
    deeper than ``_MAX_DEPTH``; whatever ``str()`` raises propagates.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        number = float.__float__(value)
        if math.isfinite(number):
            return number
        return "NaN" if math.isnan(number) else _NON_FINITE[number]
    if isinstance(value, (list, tuple, Mapping)):
        if id(value) in _path:
            raise _Malformed("observedValue contains itself")
        if _depth >= _MAX_DEPTH:
            raise _Malformed(f"observedValue is nested deeper than {_MAX_DEPTH} levels")
        inner = _path | {id(value)}
        if isinstance(value, Mapping):
            return {_text(key): _jsonable(item, _depth + 1, inner) for key, item in value.items()}
        return [_jsonable(item, _depth + 1, inner) for item in value]
    return _text(value)


def _text(value: Any) -> str:
    """``str(value)`` as an exact str (a subclass could change how it is written or compared)."""
    return str.__str__(value if isinstance(value, str) else str(value))


def _interpret(result: Any, *, expose_details: bool) -> _Outcome:
    """What a check's result means; a result that cannot be read or written as JSON is a ``fail``."""
    try:
        return _read_result(result, expose_details=expose_details)
    except Exception as exc:
        # Whatever a check returns must give a valid answer: a list as status, a cyclic
        # observedValue, an object whose str() raises are the check's bug, not a 500.
        detail = ""
        if expose_details:
            detail = f" ({exc})" if isinstance(exc, _Malformed) else f" ({_describe(exc)})"
        return _Outcome(FAIL, time.monotonic(), _utc_now(), output=f"invalid check result{detail}")


def _read_result(result: Any, *, expose_details: bool) -> _Outcome:
    now, stamp = time.monotonic(), _utc_now()
    if result is True or result is None:
        return _Outcome(PASS, now, stamp)
    if result is False:
        return _Outcome(FAIL, now, stamp, output="check failed")
    if isinstance(result, Mapping):
        raw = result.get("status")
        # Compared as an exact str: a list is unhashable, a str subclass could compare equal to "pass".
        status = str.__str__(raw) if isinstance(raw, str) else None
        if status is not None and status in _RANK:
            observed = _jsonable(result.get("observedValue"))
            # Written once here, so that nothing in it can fail the whole answer later.
            json.dumps(observed, allow_nan=False)
            unit = result.get("observedUnit")
            output = result.get("output") if expose_details else None
            return _Outcome(
                status, now, stamp, observed_value=observed,
                observed_unit=None if unit is None else _text(unit),
                output=None if output is None else _text(output),
            )  # fmt: skip
        detail = f" (status {_describe_value(raw)})" if expose_details else ""
        return _Outcome(
            FAIL, now, stamp, output=f"invalid check result{detail}; status must be pass/warn/fail"
        )
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        return _Outcome(
            FAIL, now, stamp, output="the check returned an awaitable; declare it async def, or await it"
        )
    detail = f" ({type(result).__name__})" if expose_details else ""
    return _Outcome(
        FAIL, now, stamp, output=f"invalid check result{detail}; return True/False/None or a dict"
    )


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, even when its ``str()`` raises."""
    try:
        message = _text(exc)
    except Exception:
        message = "<message could not be read>"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _describe_value(value: Any) -> str:
    try:
        text = _text(repr(value))
    except Exception:
        return f"<{type(value).__name__}>"
    return text if len(text) <= 60 else f"{text[:57]}..."


def _ratelimit_storage_check(provider: Callable[[], Mapping[str, Any]]) -> Check:
    """Readiness sees the rate limiter's storage: ``warn`` while it runs on its fallback."""

    async def storage() -> dict[str, Any]:
        state = provider()
        healthy = bool(state.get("healthy", True))
        result: dict[str, Any] = {"status": PASS if healthy else WARN, "observedValue": state.get("mode")}
        if not healthy:
            result["output"] = (
                f"storage unavailable since {state.get('since')}; on_storage_error={state.get('on_storage_error')}"
            )
        return result

    return Check("ratelimit", storage, critical=False, component_type="datastore", measurement="storage")
