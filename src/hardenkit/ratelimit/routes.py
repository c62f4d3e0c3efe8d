"""What a :func:`~hardenkit.ratelimit.rate_limit` check needs from the request it runs in.

The route's identity (its template and method, so two routes never share a bucket
and ``/items/1`` and ``/items/2`` never get two), the caller's key from a ``key=``
function, and the limit of the caller's tier. Pure helpers: no state between requests
besides a bounded cache of parsed limits.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .keys import safe_key
from .policy import _POLICY_NAME, _make_policy, _parse_limits, _Policy

if TYPE_CHECKING:
    from starlette.types import Scope

    RequestFunc = Callable[[Any], Any | Awaitable[Any]]
    LimitFunc = Callable[[str], str | Awaitable[str]]

logger = logging.getLogger("hardenkit.ratelimit")

# Route templates and tiers are few; the cap only guards against a limit callable that
# invents a new limit string per caller (the bucket names stay right without the cache).
_CACHE_SIZE = 1024


def route_id(scope: Scope) -> str | None:
    """``"GET /items/{id}"`` for the route that matched, or ``None`` when the framework says not.

    FastAPI and Starlette record the route (or at least the endpoint) in the scope; the
    concrete path is never used, since a client could then get a bucket per path value.
    """
    method = str(scope.get("method", "WEBSOCKET"))
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return f"{method} {template}"
    template = scope.get("path_template")  # Litestar
    if isinstance(template, str):
        return f"{method} {template}"
    endpoint = scope.get("endpoint")
    if endpoint is not None:
        name = getattr(endpoint, "__qualname__", None) or type(endpoint).__qualname__
        return f"{method} {getattr(endpoint, '__module__', '')}.{name}"
    return None


def connection(scope: Scope) -> Any:
    """The Starlette connection object a ``key=``/``tier=`` function receives."""
    if scope.get("type") == "websocket":
        from starlette.requests import HTTPConnection

        return HTTPConnection(scope)
    from starlette.requests import Request

    return Request(scope)


async def call(func: RequestFunc, request: Any) -> Any:
    result = func(request)
    if inspect.isawaitable(result):
        result = await result
    return result


async def caller_key(func: RequestFunc, request: Any) -> str | None:
    """The storage key from a ``key=`` function; ``None`` means "use the middleware's key".

    A function that raises or finds nothing (no user yet) never exempts the request:
    the middleware's key (the client address by default) limits it instead.
    """
    try:
        value = await call(func, request)
    except Exception:
        logger.exception("rate_limit key function raised; limiting the request by the middleware's key")
        return None
    if value is None or value == "":
        return None
    return "u:" + safe_key(str(value))


class LimitTable:
    """The limit a check applies: one fixed limit, or one chosen per key or per tier."""

    __slots__ = ("_cache", "_fixed", "_func", "_name", "_tier", "_tiers")

    def __init__(
        self,
        policy: str | Mapping[str, str] | LimitFunc,
        tier: RequestFunc | None,
        bucket: str | None,
    ) -> None:
        self._cache: dict[tuple[str | None, str], _Policy] = {}
        self._fixed: str | None = None
        self._func: LimitFunc | None = None
        self._tier = tier
        self._tiers: dict[str, str] = {}
        self._name = bucket
        if bucket is not None and (not isinstance(bucket, str) or not _POLICY_NAME.match(bucket)):
            raise ConfigurationError(f"rate_limit: bucket must be a name ([A-Za-z0-9_.-]), got {bucket!r}")
        if isinstance(policy, str):
            if not policy:
                raise ConfigurationError("rate_limit: expected a policy name or a limit string, got ''")
            self._fixed = policy
            if not _POLICY_NAME.match(policy):
                self._inline(None, policy)  # a bad limit string fails at start-up
        elif isinstance(policy, Mapping):
            if tier is None:
                raise ConfigurationError(
                    "rate_limit: a mapping of tiers needs tier= (a function of the request)"
                )
            if not policy:
                raise ConfigurationError("rate_limit: the mapping of tiers is empty")
            for name, limit in policy.items():
                if not isinstance(name, str) or not isinstance(limit, str) or not limit:
                    raise ConfigurationError(
                        f"rate_limit: tier {name!r}: expected a limit string, got {limit!r}"
                    )
                if not _POLICY_NAME.match(limit):
                    self._inline(None, limit)
            self._tiers = dict(policy)
        elif callable(policy):
            self._func = policy
        else:
            raise ConfigurationError(
                f"rate_limit: expected a policy name, a limit string, a mapping of tiers "
                f"or a function of the key, got {policy!r}"
            )
        if tier is not None and not isinstance(policy, Mapping):
            raise ConfigurationError("rate_limit: tier= goes with a mapping {tier name: limit}")

    @property
    def label(self) -> str:
        if self._fixed is not None:
            return self._fixed
        return "tiered" if self._tiers else "dynamic"

    async def limit_for(self, request: Any, key: str) -> str:
        """The limit string or policy name for this caller."""
        if self._fixed is not None:
            return self._fixed
        if self._tier is not None:
            try:
                name = await call(self._tier, request)
            except Exception:
                logger.exception("rate_limit tier function raised; using the default tier")
                name = None
            if isinstance(name, str) and name in self._tiers:
                return self._tiers[name]
            # An unknown tier never means "unlimited": the "default" tier, else the first.
            return self._tiers.get("default") or next(iter(self._tiers.values()))
        assert self._func is not None
        limit = await call(self._func, key)
        if not isinstance(limit, str) or not limit:
            raise ConfigurationError(f"rate_limit: the limit function returned {limit!r}, not a limit string")
        return limit

    def inline(self, route: str | None, limit: str) -> _Policy:
        """The policy (and bucket) of a limit string on a route."""
        cached = self._cache.get((route, limit))
        return cached if cached is not None else self._inline(route, limit)

    def _inline(self, route: str | None, limit: str) -> _Policy:
        items = _parse_limits(limit, option="rate_limit")
        scope = self._name if self._name is not None else route
        namespace = "endpoint:" + safe_key(limit.replace(" ", ""))
        if scope is not None:
            namespace += ":" + safe_key(scope)
        policy = _make_policy("endpoint", namespace, items)
        if len(self._cache) < _CACHE_SIZE:
            self._cache[(route, limit)] = policy
        return policy
