"""The decorator form :func:`limited`: ``@hk.limited("5/minute")`` on an endpoint function.

Same limits as :func:`~hardenkit.ratelimit.rate_limit` (it builds one), without a
``request`` parameter or a ``Depends``. The wrapper keeps the endpoint's signature
(``functools.wraps``), so FastAPI, Litestar and the others still inject its parameters.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .dependency import rate_limit

if TYPE_CHECKING:
    from .routes import LimitFunc, RequestFunc

__all__ = ["limited"]

F = TypeVar("F", bound=Callable[..., Any])


def limited(
    policy: str | Mapping[str, str] | LimitFunc,
    *,
    cost: int = 1,
    key: RequestFunc | None = None,
    tier: RequestFunc | None = None,
    bucket: str | None = None,
) -> Callable[[F], F]:
    """Decorate an endpoint so each call is checked first (arguments as :func:`rate_limit`).

    The endpoint may be sync or async; the wrapper is async either way (a sync endpoint
    runs in a worker thread, as FastAPI would run it), so the check never blocks the loop.
    Put it below the route decorator (``@app.get(...)`` then ``@hk.limited(...)``).
    """
    check = rate_limit(policy, cost=cost, key=key, tier=tier, bucket=bucket)

    def decorate(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                await check()
                return await func(*args, **kwargs)

        else:

            @functools.wraps(func)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                await check()
                from anyio import to_thread

                return await to_thread.run_sync(functools.partial(func, *args, **kwargs))

        wrapper.__hardenkit_rate_limit__ = True  # type: ignore[attr-defined]  # read by document_rate_limits()
        return cast(F, wrapper)

    return decorate
