"""APIKeyMiddleware: API keys (``X-API-Key`` or ``Authorization: Bearer``), roles per path, failed-attempt
limiting per address, the principal for the app, the access log and the rate limiter.

A request goes through, in order: paths an outer component answers (probes) pass untouched; the
rules give what the path needs (public, any key, some roles, or refused); a public path runs the
app; otherwise the credential is read (exactly one, ASCII, bounded), the address's failed attempts
are looked at (429 once over the limit, before any key is checked), the key is verified (checksum,
one lookup, one HMAC, one constant-time comparison), then the roles are checked (403) and the app
runs with the principal set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .._core.config import EnvParser, check_header_name, env_bool, env_float, env_int, env_list, env_str
from .._core.paths import route_path
from ..errors import ConfigurationError, StorageUnavailable
from .attempts import FailedAttempts, client_address
from .context import _ACTIVE, _PRINCIPAL, KEY_ID_SCOPE_KEY, AuthError, key_by_principal, set_principal
from .manage import authenticate, principal_of
from .records import KeyHasher, KeyRecord, Principal, check_roles, env_secret
from .rules import DENY, PUBLIC, RoleRules
from .stores import KeyStore, open_store

if TYPE_CHECKING:
    from starlette.responses import Response
    from starlette.types import ASGIApp, Receive, Scope, Send

    from .._core.kit import Wiring

__all__ = ["DEFAULT_IMPLIES", "APIKeyMiddleware"]

logger = logging.getLogger("hardenkit.auth")

#: The usual ladder: an admin may do what an operator may, an operator what a reader may.
DEFAULT_IMPLIES: Mapping[str, tuple[str, ...]] = {"admin": ("operator",), "operator": ("readonly",)}
# Far above a hardenkit key (67 characters), far below what could cost anything to look at.
MAX_CREDENTIAL_BYTES = 256
_AUTHORIZATION = b"authorization"


class APIKeyMiddleware:
    """API-key authentication and role checks as pure ASGI middleware. See docs/auth.md."""

    hardenkit_slot: ClassVar[str] = "auth"
    hardenkit_env_name: ClassVar[str] = "AUTH"
    hardenkit_env: ClassVar[Mapping[str, EnvParser]] = {
        "store": env_str,
        "header": env_str,
        "bearer": env_bool,
        "public_paths": env_list,
        "deny_unmatched": env_bool,
        "pepper": env_secret,
        "max_failures": env_int,
        "failure_window": env_float,
        "realm": env_str,
    }

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: KeyStore | str | None = None,
        header: str = "X-API-Key",
        bearer: bool = True,
        public_paths: Sequence[str] = (),
        rules: Sequence[tuple[str, object]] | Mapping[str, object] | None = None,
        deny_unmatched: bool = False,
        implies: Mapping[str, Iterable[str]] | None = None,
        pepper: str | bytes | None = None,
        max_failures: int = 10,
        failure_window: float = 60.0,
        client: Callable[[Scope], str] | None = None,
        realm: str = "api",
        kit: Wiring | None = None,
    ) -> None:
        self.app = app
        self.kit = kit
        if store is None:
            raise ConfigurationError(
                "store: say where the keys are: a file path ('keys.json'), 'env', 'redis://host:6379/0', "
                "a KeyStore, or HARDENKIT_AUTH_STORE with Kit.from_env()"
            )
        self.store = open_store(store)
        self.header = check_header_name(header, option="header").encode("latin-1")
        if self.header == _AUTHORIZATION:
            raise ConfigurationError(
                "header: Authorization is read as 'Bearer <key>' already (bearer=True); "
                "keep header='X-API-Key' or name another header"
            )
        self.header_name = header
        self.bearer = bool(bearer)
        if isinstance(public_paths, str):
            raise ConfigurationError(
                "public_paths: expected a list of paths, e.g. ['/docs', '/openapi.json']"
            )
        self.rules = RoleRules(rules, public_paths=public_paths, deny_unmatched=deny_unmatched)
        table = DEFAULT_IMPLIES if implies is None else implies
        if not isinstance(table, Mapping):
            raise ConfigurationError("implies: expected a mapping such as {'admin': ['operator']}")
        self.implies = {
            check_roles(role, option="implies")[0]: check_roles(tuple(lower), option=f"implies[{role!r}]")
            for role, lower in table.items()
        }
        self.hasher = KeyHasher(pepper)
        self.attempts = FailedAttempts(max_failures, failure_window)
        if client is not None and not callable(client):
            raise ConfigurationError(f"client: expected a function (scope) -> str, got {client!r}")
        self._client = client or client_address
        if not isinstance(realm, str) or not realm.isprintable() or '"' in realm or "\\" in realm:
            raise ConfigurationError(f"realm: expected printable text without quotes, got {realm!r}")
        self._challenge = f'Bearer realm="{realm}"'
        self._principals: dict[tuple[Any, ...], Principal] = {}
        if kit is not None:
            kit.on_shutdown(self.store.aclose)
            kit.provide("auth.key_by_principal", key_by_principal)
            kit.provide("auth.key_id_scope_key", KEY_ID_SCOPE_KEY)

    @classmethod
    def hardenkit_declare(cls, options: Mapping[str, Any], wiring: Wiring) -> None:
        wiring.expose_headers("WWW-Authenticate")

    # -- credentials ---------------------------------------------------------------------
    def credential(self, scope: Scope) -> tuple[str | None, str]:
        """(the presented key, "") or (None, why): "missing", "ambiguous", "malformed"."""
        found: list[bytes] = []
        authorizations = 0
        for name, value in scope.get("headers", ()):
            if name == self.header:
                found.append(value)
            elif name == _AUTHORIZATION:
                authorizations += 1
                if self.bearer and value[:7].lower() == b"bearer ":
                    found.append(value[7:])
        if authorizations > 1 or len(found) > 1:
            return None, "ambiguous"
        if not found:
            return None, "missing"
        raw = found[0].strip()
        if not raw:
            return None, "missing"
        if len(raw) > MAX_CREDENTIAL_BYTES:
            return None, "malformed"
        try:
            return raw.decode("ascii"), ""
        except UnicodeDecodeError:
            return None, "malformed"

    # -- the request path ----------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan" and self.kit is None:
                receive = self._closing_receive(receive)
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if self.kit is not None and self.kit.is_answered(path):
            await self.app(scope, receive, send)
            return
        # Both reset when the request ends, whatever was set in between: no principal outlives its
        # request, even when one task serves several requests (a test driver, an in-process call).
        active = _ACTIVE.set(True)
        cleared = _PRINCIPAL.set(None)
        try:
            await self._handle(scope, receive, send, path)
        finally:
            _PRINCIPAL.reset(cleared)
            _ACTIVE.reset(active)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        required = self.rules.required(scope.get("method", "GET"), path)
        if required is PUBLIC:
            await self._run(scope, receive, send)
            return
        text, why = self.credential(scope)
        if text is None and why == "missing":
            await self._refuse(scope, receive, send, 401, "A valid API key is required.", error=False)
            return
        address = self._address(scope)
        retry = self.attempts.retry_after(address)
        if retry:
            await self._too_many(scope, receive, send, retry)
            return
        record = None
        if text is not None:
            try:
                record, why = await authenticate(text, self.store, self.hasher)
            except StorageUnavailable:
                await self._store_down(scope, receive, send)
                return
        if record is None:
            self.attempts.failed(address)
            # The reason stays in the server's log; the client learns only that the key was refused.
            logger.debug("API key refused (%s) from %s", why, address)
            await self._refuse(scope, receive, send, 401, "The API key is not valid.", error=True)
            return
        found = self._principal(record)
        if required is DENY or (required and not found.has_role(*required)):
            set_principal(scope, found)
            detail = (
                "No rule allows this request."
                if required is DENY
                else f"This request needs one of the roles: {', '.join(required or ())}."
            )
            await self._refuse(scope, receive, send, 403, detail)
            return
        set_principal(scope, found)
        await self._run(scope, receive, send)

    def _closing_receive(self, receive: Receive) -> Receive:
        # Standalone (no kit root to run hooks): close the store's connections when the server stops.
        async def wrapped() -> Any:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                try:
                    await self.store.aclose()
                except Exception:
                    logger.warning("closing the API key store failed", exc_info=True)
            return message

        return wrapped

    def _principal(self, record: KeyRecord) -> Principal:
        # Principals are immutable and the same for every request of a record: built once (the role
        # ladder walked once), in a table bounded by clearing it when it grows past any real key set.
        cache_key = (record.key_id, record.hash, record.roles, record.expires)
        found = self._principals.get(cache_key)
        if found is None:
            if len(self._principals) >= 10_000:
                self._principals.clear()
            found = self._principals[cache_key] = principal_of(record, self.implies)
        return found

    def _address(self, scope: Scope) -> str:
        try:
            return str(self._client(scope))[:128]
        except Exception:
            logger.exception("auth client function raised; counting failures by the connection's address")
            return client_address(scope)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def send_wrapper(message: Any) -> None:
            nonlocal started
            if message["type"] in (
                "http.response.start",
                "websocket.accept",
                "websocket.http.response.start",
            ):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except AuthError as exc:
            if started:
                raise
            await self._refuse(scope, receive, send, exc.status, exc.detail, error=exc.status == 401)

    # -- answers ---------------------------------------------------------------------------
    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, detail: str, *, error: bool = False
    ) -> None:
        from .._core.problem import problem_response

        headers: dict[str, str] = {}
        if status == 401:
            headers["WWW-Authenticate"] = self._challenge + (', error="invalid_token"' if error else "")
        title = "Unauthorized" if status == 401 else "Forbidden"
        await self._answer(
            scope, receive, send, problem_response(status, title, detail=detail, headers=headers)
        )

    async def _too_many(self, scope: Scope, receive: Receive, send: Send, retry: int) -> None:
        from .._core.problem import problem_response

        response = problem_response(
            429,
            "Too many failed API key attempts",
            detail=f"Too many failed API key attempts from this address; retry in {retry} seconds.",
            headers={"Retry-After": str(retry)},
        )
        await self._answer(scope, receive, send, response)

    async def _store_down(self, scope: Scope, receive: Receive, send: Send) -> None:
        from .._core.problem import problem_response

        response = problem_response(
            503,
            "API key store unavailable",
            detail="The API key store cannot be reached; retry in 1 second.",
            headers={"Retry-After": "1"},
        )
        await self._answer(scope, receive, send, response)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
            from starlette.websockets import WebSocketClose

            await WebSocketClose(code=1008, reason=str(response.status_code))(scope, receive, send)
            return
        await response(scope, receive, send)
