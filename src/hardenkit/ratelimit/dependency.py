"""The per-endpoint check :func:`rate_limit`, and the request state it shares with the middleware.

The middleware sets :data:`_CURRENT` for each request, so an endpoint's check finds
its limiter and client key without a ``request`` parameter.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from .engine import (
    Decision,
)
from .keys import safe_key

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

from .policy import _POLICY_NAME, RateLimitBreach, RateLimitExceeded, _make_policy, _parse_limits, _Policy

if TYPE_CHECKING:
    from .middleware import RateLimitMiddleware

__all__ = ["rate_limit"]


class _RequestState:
    """Per-request state shared with :func:`rate_limit` checks through a context variable."""

    __slots__ = ("decisions", "key", "key_known", "limiter", "scope")

    def __init__(self, limiter: RateLimitMiddleware, scope: Scope) -> None:
        self.limiter = limiter
        self.scope = scope
        self.key: str | None = None
        self.key_known = False
        self.decisions: list[tuple[_Policy, Decision]] = []


_CURRENT: contextvars.ContextVar[_RequestState | None] = contextvars.ContextVar(
    "hardenkit.ratelimit.request", default=None
)


def rate_limit(policy: str, *, cost: int = 1) -> Callable[[], Awaitable[None]]:
    """A per-endpoint limit that needs no ``request`` parameter.

    Returns an async function taking no arguments: use it as a FastAPI dependency
    (``Depends(hk.rate_limit("ai"))``) or await it inside any endpoint behind
    RateLimitMiddleware. It counts the request against the middleware's policy
    ``policy`` (or a limit string), with the middleware's storage and client key;
    when the limit is exhausted it raises :class:`RateLimitExceeded`, which the
    middleware answers with its usual 429.
    """
    if not isinstance(policy, str) or not policy:
        raise ConfigurationError(f"rate_limit: expected a policy name or a limit string, got {policy!r}")
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        raise ConfigurationError(f"rate_limit: cost must be a whole number >= 0, got {cost!r}")
    inline: _Policy | None = None
    if not _POLICY_NAME.match(policy):
        # Not a name: it must be a limit string; its own bucket is named after it.
        items = _parse_limits(policy, option="rate_limit")
        inline = _make_policy("endpoint", "endpoint:" + safe_key(policy.replace(" ", "")), items)

    async def check() -> None:
        state = _CURRENT.get()
        if state is None:
            raise ConfigurationError(
                f"rate_limit({policy!r}) ran outside a request handled by RateLimitMiddleware; "
                "add the middleware (app.add_middleware(hk.RateLimitMiddleware) or hk.harden(app))"
            )
        limiter = state.limiter
        target = inline
        if target is None:
            if policy in limiter.policies:
                target = limiter.policies[policy]
            elif policy == "default" and limiter.default_policy is not None:
                target = limiter.default_policy
            else:
                known = ", ".join(sorted(limiter.policies)) or "none defined"
                raise ConfigurationError(f"rate_limit({policy!r}): no such policy; known: {known}")
        key = await limiter._client_key(state)
        if key is None or limiter._allowed(state.scope, key):
            return
        if limiter._overrides:
            _, target = limiter._override(key, target)
            if target is None:
                return
        decision = await limiter.decide(target, key, cost)
        if decision is not None and decision.stats:
            state.decisions.append((target, decision))
        if decision is None or not decision.allowed:
            scope = state.scope
            breach = RateLimitBreach(
                key=limiter._user_key(key),
                policy=target.name,
                violated=tuple(s.window.name for s in (decision.stats if decision else ()) if s.violated)
                or (target.name,),
                retry_after=decision.retry_after if decision is not None else 1,
                method=scope.get("method", "WEBSOCKET"),
                path=scope.get("path", "/"),
            )
            raise RateLimitExceeded(breach, decision, target)

    check.__name__ = f"rate_limit_{policy}" if _POLICY_NAME.match(policy) else "rate_limit"
    check.__qualname__ = check.__name__
    return check
