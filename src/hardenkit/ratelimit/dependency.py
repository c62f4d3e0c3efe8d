"""The per-endpoint check :func:`rate_limit`, and the request state it shares with the middleware.

The middleware sets :data:`_CURRENT` for each request, so an endpoint's check finds
its limiter and client key without a ``request`` parameter.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .engine import (
    Decision,
)
from .keys import in_networks
from .routes import LimitTable, caller_key, connection, route_id

if TYPE_CHECKING:
    from limits import RateLimitItem
    from starlette.responses import Response
    from starlette.types import Scope

    LimitSpec = str | RateLimitItem | Sequence[str | RateLimitItem]

    KeyFunc = Callable[[Scope], str | None | Awaitable[str | None]]
    CostFunc = Callable[[Scope], int | Awaitable[int]]
    BreachResult = Response | None | Awaitable[Response | None]
    BreachHook = (
        Callable[[Scope, "RateLimitBreach"], BreachResult] | Callable[["RateLimitBreach"], BreachResult]
    )

from .policy import _POLICY_NAME, RateLimitBreach, RateLimitExceeded, _Policy

if TYPE_CHECKING:
    from .middleware import RateLimitMiddleware
    from .routes import LimitFunc, RequestFunc

__all__ = ["rate_limit"]


class _RequestState:
    """Per-request state shared with :func:`rate_limit` checks through a context variable."""

    __slots__ = ("decisions", "key", "key_known", "limiter", "refused", "scope")

    def __init__(self, limiter: RateLimitMiddleware, scope: Scope) -> None:
        self.limiter = limiter
        self.scope = scope
        self.key: str | None = None
        self.key_known = False
        self.decisions: list[tuple[_Policy, Decision]] = []
        # A check that refused this request: a framework that turns the exception into
        # its own 500 gets that 500 replaced by the 429 (see RateLimitMiddleware).
        self.refused: RateLimitExceeded | None = None


_CURRENT: contextvars.ContextVar[_RequestState | None] = contextvars.ContextVar(
    "hardenkit.ratelimit.request", default=None
)


def rate_limit(
    policy: str | Mapping[str, str] | LimitFunc,
    *,
    cost: int = 1,
    key: RequestFunc | None = None,
    tier: RequestFunc | None = None,
    bucket: str | None = None,
) -> Callable[..., Awaitable[None]]:
    """A per-endpoint limit that needs no ``request`` parameter.

    Returns an async check: use it as a FastAPI dependency
    (``Depends(hk.rate_limit("ai"))``) or await it inside any endpoint behind
    RateLimitMiddleware (``await hk.rate_limit("5/minute")()``). It counts the request
    with the middleware's storage, ``allow`` list, overrides and headers; when the limit
    is exhausted it raises :class:`RateLimitExceeded`, which the middleware answers with
    its usual 429.

    ``policy`` is a middleware policy name (a bucket shared by every check naming it),
    a limit string (a bucket per route: template and method), a mapping
    ``{tier: limit}`` chosen by ``tier(request)``, or a function ``key -> limit``.
    ``key(request)`` (sync or async) gives the caller's key, read when the check runs,
    so after an auth dependency; ``None`` falls back to the middleware's key.
    ``bucket`` names a bucket that several routes share.
    """
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        raise ConfigurationError(f"rate_limit: cost must be a whole number >= 0, got {cost!r}")
    if key is not None and not callable(key):
        raise ConfigurationError(f"rate_limit: key must be a function of the request, got {key!r}")
    if tier is not None and not callable(tier):
        raise ConfigurationError(f"rate_limit: tier must be a function of the request, got {tier!r}")
    table = LimitTable(policy, tier, bucket)
    needs_request = key is not None or tier is not None

    async def check(request: Any = None) -> None:
        state = _CURRENT.get()
        if state is None:
            raise ConfigurationError(
                f"rate_limit({table.label!r}) ran outside a request handled by RateLimitMiddleware; "
                "add the middleware (app.add_middleware(hk.RateLimitMiddleware) or hk.harden(app))"
            )
        limiter = state.limiter
        scope = request.scope if request is not None else state.scope
        if needs_request and request is None:
            request = connection(scope)
        address_key = await limiter._client_key(state)
        client = await caller_key(key, request) if key is not None else None
        chosen = client if client is not None else address_key
        if chosen is None:
            return
        limit = await table.limit_for(request, chosen)
        target: _Policy | None
        if not _POLICY_NAME.match(limit):
            target = table.inline(route_id(scope), limit)
        elif limit in limiter.policies:
            target = limiter.policies[limit]
        elif limit == "default" and limiter.default_policy is not None:
            target = limiter.default_policy
        else:
            known = ", ".join(sorted(limiter.policies)) or "none defined"
            raise ConfigurationError(f"rate_limit({limit!r}): no such policy; known: {known}")
        user = client[2:] if client is not None else limiter._user_key(chosen)
        if _exempt(limiter, state.scope, chosen, user, custom=client is not None):
            return
        if limiter._overrides:
            target = _overridden(limiter, user, target)
            if target is None:
                return
        decision = await limiter.decide(target, chosen, cost)
        if decision is not None and decision.stats:
            state.decisions.append((target, decision))
        if decision is None or not decision.allowed:
            breach = RateLimitBreach(
                key=user,
                policy=target.name,
                violated=tuple(s.window.name for s in (decision.stats if decision else ()) if s.violated)
                or (target.name,),
                retry_after=decision.retry_after if decision is not None else 1,
                method=scope.get("method", "WEBSOCKET"),
                path=scope.get("path", "/"),
            )
            state.refused = RateLimitExceeded(breach, decision, target)
            raise state.refused

    from starlette.requests import HTTPConnection

    # FastAPI reads the signature: it injects the connection, so a key function sees the
    # request its auth dependency saw (called directly, the check finds it in the scope).
    check.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=HTTPConnection
            )
        ]
    )
    label = table.label
    check.__name__ = f"rate_limit_{label}" if _POLICY_NAME.match(label) else "rate_limit"
    check.__qualname__ = check.__name__
    check.__hardenkit_rate_limit__ = True  # type: ignore[attr-defined]  # read by document_rate_limits()
    return check


def _exempt(limiter: RateLimitMiddleware, scope: Scope, key: str, user: str, *, custom: bool) -> bool:
    if custom:
        if user in limiter._allow_keys:
            return True
        address = limiter.client_address.address(scope) if limiter._allow_networks else None
        return address is not None and in_networks(address, limiter._allow_networks)
    return limiter._allowed(scope, key)


def _overridden(limiter: RateLimitMiddleware, user: str, policy: _Policy) -> _Policy | None:
    per_policy = limiter._overrides.get(user)
    if per_policy is None:
        return policy
    if "*" in per_policy:
        return None
    return per_policy.get(policy.name, policy)
