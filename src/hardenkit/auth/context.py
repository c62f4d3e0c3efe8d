"""The request's principal, role checks inside endpoints, and the rate limiter's key by principal.

:class:`APIKeyMiddleware` puts the principal in three places: a context variable (read by
:func:`principal`), ``scope["state"]["principal"]`` (Starlette's ``request.state.principal``) and
``scope["hardenkit.principal"]``, which outer components (the access log) read after the response;
``scope["hardenkit.key_id"]`` carries the key id alone (never the key).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, HardenkitError
from .attempts import client_address
from .records import Principal, check_roles

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "KEY_ID_SCOPE_KEY",
    "PRINCIPAL_SCOPE_KEY",
    "AuthError",
    "RoleRequirement",
    "cost_by_role",
    "key_by_principal",
    "principal",
    "require_roles",
]

PRINCIPAL_SCOPE_KEY = "hardenkit.principal"
KEY_ID_SCOPE_KEY = "hardenkit.key_id"

_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "hardenkit.principal", default=None
)
# True inside a request handled by APIKeyMiddleware (a public path included).
_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("hardenkit.auth.active", default=False)


class AuthError(HardenkitError, PermissionError):
    """Raised by role checks; APIKeyMiddleware answers it with a 401 or 403 problem+json."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def response(self, challenge: str = 'Bearer realm="api"') -> Response:
        """The problem+json answer (with ``WWW-Authenticate`` for a 401)."""
        from .._core.problem import problem_response

        headers = {"WWW-Authenticate": challenge} if self.status == 401 else {}
        title = "Unauthorized" if self.status == 401 else "Forbidden"
        return problem_response(self.status, title, detail=self.detail, headers=headers)


def principal() -> Principal | None:
    """The current request's principal (key id, name, roles), or None (public path, outside a request)."""
    return _PRINCIPAL.get()


def set_principal(scope: Scope, found: Principal) -> None:
    """Publish ``found`` for this request; APIKeyMiddleware resets the context variable at its end."""
    state = scope.get("state")
    if not isinstance(state, dict):
        state = scope["state"] = {}
    state["principal"] = found
    scope[PRINCIPAL_SCOPE_KEY] = found
    scope[KEY_ID_SCOPE_KEY] = found.key_id
    _PRINCIPAL.set(found)


def key_by_principal(scope: Mapping[str, Any]) -> str:
    """A ``key=`` function for RateLimitMiddleware: ``key:<id>`` for authenticated requests, else the address.

    Needs APIKeyMiddleware to run first (its kit slot is just outside the rate limiter's).
    """
    found = scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(found, Principal):
        return "key:" + found.key_id
    return "ip:" + client_address(scope)


def cost_by_role(costs: Mapping[str, int], *, default: int = 1) -> Callable[[Mapping[str, Any]], int]:
    """A ``cost=`` function for RateLimitMiddleware giving per-role tiers: the cheapest cost among the
    principal's roles, ``default`` for other requests. With ``default="100/minute"``, a role costing 4
    gets 25 requests a minute per key, a role costing 1 gets 100."""
    for role, cost in {**costs, "default": default}.items():
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise ConfigurationError(
                f"cost_by_role: cost of {role!r} must be a whole number >= 0, got {cost!r}"
            )
    table = dict(costs)

    def role_cost(scope: Mapping[str, Any]) -> int:
        found = scope.get(PRINCIPAL_SCOPE_KEY)
        if not isinstance(found, Principal):
            return default
        matching = [table[role] for role in found.roles if role in table]
        return min(matching) if matching else default

    return role_cost


class RoleRequirement:
    """``require_roles(...)``: a FastAPI dependency, an awaitable check, and an endpoint wrapper."""

    def __init__(self, roles: tuple[str, ...], *, header: str = "X-API-Key") -> None:
        self.roles = roles
        self.header = header
        # The wrapper's name, as routers show it.
        self.__name__ = f"require_roles_{'_'.join(roles) or 'any'}"

    def __repr__(self) -> str:
        return f"require_roles({', '.join(map(repr, self.roles))})"

    def check(self) -> Principal:
        """The principal if it holds one of the roles; else raise :class:`AuthError` (401 or 403)."""
        if not _ACTIVE.get():
            raise ConfigurationError(
                f"{self!r} ran outside a request handled by APIKeyMiddleware; add the middleware "
                "(app.add_middleware(hk.APIKeyMiddleware, store=...)) or register it in the kit"
            )
        found = _PRINCIPAL.get()
        if found is None:
            raise AuthError(401, "This endpoint needs an API key.")
        if self.roles and not found.has_role(*self.roles):
            raise AuthError(403, f"This endpoint needs one of the roles: {', '.join(self.roles)}.")
        return found

    async def __call__(self) -> Principal:
        return self.check()

    @property
    def __signature__(self) -> inspect.Signature:
        """No parameters: FastAPI resolves nothing for this dependency (the middleware did the work)."""
        return inspect.Signature()

    def wrap(self, endpoint: Callable[..., Any]) -> Callable[..., Any]:
        """Protect a Starlette endpoint (``async def (request)``/``def (request)``) or any ASGI app
        (a function of ``(scope, receive, send)`` counts as an ASGI app)."""
        if (inspect.isfunction(endpoint) or inspect.ismethod(endpoint)) and not _is_asgi_function(endpoint):
            if inspect.iscoroutinefunction(endpoint):

                @functools.wraps(endpoint)
                async def async_endpoint(*args: Any, **kwargs: Any) -> Any:
                    # Answered here rather than raised: a mounted Starlette app's own error
                    # middleware would turn the exception into a 500 before APIKeyMiddleware saw it.
                    try:
                        self.check()
                    except AuthError as exc:
                        return exc.response()
                    return await endpoint(*args, **kwargs)

                async_endpoint.hardenkit_roles = self.roles  # type: ignore[attr-defined]
                return async_endpoint

            @functools.wraps(endpoint)
            async def sync_endpoint(*args: Any, **kwargs: Any) -> Any:
                import anyio.to_thread

                try:
                    self.check()
                except AuthError as exc:
                    return exc.response()
                return await anyio.to_thread.run_sync(functools.partial(endpoint, *args, **kwargs))

            sync_endpoint.hardenkit_roles = self.roles  # type: ignore[attr-defined]
            return sync_endpoint
        return _ProtectedApp(endpoint, self)


def _is_asgi_function(func: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - every Python function has a signature
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 3


class _ProtectedApp:
    def __init__(self, app: ASGIApp, requirement: RoleRequirement) -> None:
        self.app = app
        self.hardenkit_roles = requirement.roles
        self._requirement = requirement

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                self._requirement.check()
            except AuthError as exc:
                await exc.response()(scope, receive, send)
                return
        elif scope["type"] == "websocket":
            self._requirement.check()
        await self.app(scope, receive, send)


@functools.cache
def _fastapi_requirement() -> type[RoleRequirement]:
    from fastapi.security import APIKeyHeader

    class FastAPIRoleRequirement(RoleRequirement, APIKeyHeader):  # type: ignore[misc]  # __call__ is ours
        """A RoleRequirement that FastAPI also sees as the API-key security scheme, so OpenAPI shows it
        on the routes that depend on it, at no cost per request (no parameter to resolve)."""

        def __init__(self, roles: tuple[str, ...], *, header: str = "X-API-Key") -> None:
            APIKeyHeader.__init__(
                self,
                name=header,
                scheme_name="APIKey",
                auto_error=False,
                description=f"A hardenkit API key, in the {header} header or as Authorization: Bearer.",
            )
            RoleRequirement.__init__(self, roles, header=header)

    return FastAPIRoleRequirement


def require_roles(*roles: str, header: str = "X-API-Key") -> RoleRequirement:
    """A role check: ``Depends(hk.require_roles("admin"))`` in FastAPI, ``await hk.require_roles("admin")()``
    in any endpoint, or ``hk.require_roles("admin").wrap(endpoint)`` for a Starlette route or ASGI app.

    Any one of ``roles`` is enough; none means any valid key. A request without a principal gets 401,
    one without the role 403 (answered by APIKeyMiddleware as problem+json).
    """
    checked = check_roles(roles, option="require_roles") if roles else ()
    # Only when the app already uses FastAPI: a Starlette app must not pay for importing it.
    cls = _fastapi_requirement() if "fastapi" in sys.modules else RoleRequirement
    return cls(checked, header=header)
