"""HeaderContractMiddleware: request id, latency and security headers on every response."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .._core.config import (
    EnvParser,
    check_header_name,
    check_header_value,
    env_bool,
    env_choice,
    env_optional,
    env_str,
)
from .._core.context import REQUEST_ID
from .._core.kit import Wiring
from .._core.paths import route_path
from ..errors import ConfigurationError
from .docs import DOCS_HEADERS, check_docs_paths, env_docs_paths, find_docs_app, served_docs_paths

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "DEFAULT_PATH_OVERRIDES",
    "SECURITY_PRESETS",
    "HeaderContractMiddleware",
]

logger = logging.getLogger("hardenkit.headers")

HeaderMap = Mapping[str, "str | None"]
RawHeaders = list[tuple[bytes, bytes]]

_HSTS = "max-age=63072000; includeSubDomains"

#: Security header presets. HSTS is added on https/wss scopes only (``hsts`` option).
SECURITY_PRESETS: dict[str, dict[str, str]] = {
    # OWASP REST Security Cheat Sheet: an API never renders HTML, so nothing may load or frame it.
    "api": {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        "Cache-Control": "no-store",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    },
    # A site serving its own HTML, scripts and styles.
    "web": {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Content-Security-Policy": (
            "default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'self'; form-action 'self'"
        ),
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    },
    # The api preset plus cross-origin isolation and every powerful feature off.
    "strict": {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        "Cache-Control": "no-store",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cross-Origin-Embedder-Policy": "require-corp",
        "Permissions-Policy": (
            "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
            "microphone=(), payment=(), usb=()"
        ),
        "X-Permitted-Cross-Domain-Policies": "none",
    },
}

_PRESET_HSTS = {"api": _HSTS, "web": _HSTS, "strict": _HSTS + "; preload"}

#: The default ``path_overrides``: none. FastAPI's docs pages get their relaxed CSP from
#: ``docs_paths`` (the pages the app really serves), no longer from /docs and /redoc prefixes.
DEFAULT_PATH_OVERRIDES: dict[str, dict[str, str | None]] = {}

_DEFAULT_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_SAFE_ID = re.compile(r"[\x21-\x7e]{1,1024}")  # what any id we emit must be: printable ASCII, one line
_MAX_CUSTOM_ID = 1024

Validator = Callable[[str], bool]


def _uuid4() -> str:
    return str(uuid.uuid4())


class _SecuritySet:
    """Precomputed security headers for one path prefix: (http list, https list)."""

    __slots__ = ("http", "https", "names")

    def __init__(self, headers: Mapping[str, str], hsts: str | None) -> None:
        encoded = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        ]
        self.http: RawHeaders = encoded
        self.https: RawHeaders = (
            [*encoded, (b"strict-transport-security", hsts.encode("latin-1"))] if hsts else encoded
        )
        self.names = frozenset(name for name, _ in self.https)


class HeaderContractMiddleware:
    """Every response carries a request id, the latency and security headers.

    Pure ASGI. Incoming ``X-Request-ID`` values are kept when valid (1-128
    characters of ``[A-Za-z0-9._:-]`` by default), otherwise replaced by a fresh
    id (or answered with 400 when ``on_invalid_request_id="reject"``). The id is
    visible to the app in the request headers and as ``hardenkit.request_id()``.
    Headers the app sets itself win, except the request id and latency, which are
    the contract's own. An unhandled exception becomes a problem+json 500 carrying
    the headers when nothing was sent yet; it is logged with the request id and
    re-raised (so Starlette's TestClient still raises it). When the app has its
    own handler for ``Exception``/500 (Starlette ``exception_handlers``, FastAPI
    ``@app.exception_handler(Exception)``), that handler's response is sent
    instead, with the contract headers, and the exception is not re-raised.
    """

    hardenkit_slot: ClassVar[str] = "headers"
    hardenkit_env_name: ClassVar[str] = "HEADERS"
    hardenkit_env: ClassVar[Mapping[str, EnvParser]] = {
        "request_id_header": env_str,
        "on_invalid_request_id": env_choice("replace", "reject"),
        "latency_header": env_optional(env_str),
        "server_timing": env_bool,
        "security_headers": env_optional(env_choice(*SECURITY_PRESETS)),
        "hsts": env_optional(env_str),
        "override_app_headers": env_bool,
        "docs_paths": env_optional(env_docs_paths),
    }

    def __init__(
        self,
        app: ASGIApp,
        *,
        request_id_header: str = "X-Request-ID",
        request_id_validator: Validator | str | re.Pattern[str] | None = None,
        request_id_generator: Callable[[], str] = _uuid4,
        on_invalid_request_id: Literal["replace", "reject"] = "replace",
        latency_header: str | None = "X-Latency-MS",
        server_timing: bool = False,
        security_headers: str | Mapping[str, str] | None = "api",
        security_overrides: HeaderMap | None = None,
        path_overrides: Mapping[str, str | HeaderMap | None] | None = None,
        hsts: str | None | Literal["preset"] = "preset",
        override_app_headers: bool | Iterable[str] = False,
        docs_paths: Literal["auto"] | Iterable[str] | None = "auto",
        kit: Wiring | None = None,
    ) -> None:
        self.app = app
        self._rid_name = check_header_name(request_id_header, option="request_id_header").encode("latin-1")
        self._latency_name = (
            check_header_name(latency_header, option="latency_header").encode("latin-1")
            if latency_header is not None
            else None
        )
        if on_invalid_request_id not in ("replace", "reject"):
            raise ConfigurationError(
                f"on_invalid_request_id={on_invalid_request_id!r}: write 'replace' (a fresh id) or 'reject' (400)"
            )
        self._reject = on_invalid_request_id == "reject"
        self._validator = _make_validator(request_id_validator)
        if not callable(request_id_generator):
            raise ConfigurationError("request_id_generator must be a callable returning a str, e.g. uuid4")
        self._generator = request_id_generator
        self._warned_generator = False
        self._server_timing = bool(server_timing)

        base, preset = _resolve_preset(security_headers, option="security_headers")
        if security_overrides:
            base = _apply_overrides(base, security_overrides, option="security_overrides")
        hsts_value = _resolve_hsts(hsts, preset)
        self._default_set = _SecuritySet(base, hsts_value)
        overrides = DEFAULT_PATH_OVERRIDES if path_overrides is None else path_overrides
        prefixed: list[tuple[str, _SecuritySet]] = []
        for prefix, override in overrides.items():
            if not isinstance(prefix, str) or not prefix.startswith("/"):
                raise ConfigurationError(f"path_overrides: prefix {prefix!r} must start with '/'")
            if override is None:
                headers: dict[str, str] = {}
            elif isinstance(override, str):
                headers, _ = _resolve_preset(override, option=f"path_overrides[{prefix!r}]")
                headers = _apply_overrides(headers, security_overrides or {}, option="security_overrides")
            else:
                headers = _apply_overrides(base, override, option=f"path_overrides[{prefix!r}]")
            security = _SecuritySet(headers, hsts_value if override is not None else None)
            prefixed.append((prefix.rstrip("/") or "/", security))
        # Longest prefix first, so /site/admin can differ from /site.
        prefixed.sort(key=lambda item: len(item[0]), reverse=True)
        self._prefixed = prefixed

        # The docs pages: read from the app ("auto"), listed, or none. Their CSP is replaced
        # (not added where the preset has none: security_headers=None means none at all).
        present = {name.lower() for name in base}
        docs_overrides = {name: value for name, value in DOCS_HEADERS.items() if name.lower() in present}
        self._docs_set = _SecuritySet(_apply_overrides(base, docs_overrides, option="docs_paths"), hsts_value)
        self._docs_auto = False
        self._docs_paths: frozenset[str] = frozenset()
        if isinstance(docs_paths, str) and docs_paths == "auto":
            wrapped = find_docs_app(app)  # Kit.wrap(fastapi_app): the app is below us
            if wrapped is None:
                self._docs_auto = True
            else:
                self._docs_paths = served_docs_paths(wrapped) or frozenset()
        elif docs_paths is not None:
            self._docs_paths = check_docs_paths(docs_paths)
        # The last app seen in scope["app"] and its docs pages (one app per middleware, in practice).
        self._docs_cache: tuple[object, frozenset[str]] | None = None

        if isinstance(override_app_headers, bool):
            self._force_all = override_app_headers
            self._forced: frozenset[bytes] = frozenset()
        else:
            self._force_all = False
            self._forced = frozenset(
                check_header_name(name, option="override_app_headers").encode("latin-1")
                for name in override_app_headers
            )
        self._own = frozenset(filter(None, [self._rid_name, self._latency_name]))

    # -- kit ------------------------------------------------------------------------
    @classmethod
    def hardenkit_declare(cls, options: Mapping[str, Any], wiring: Wiring) -> None:
        names = [options.get("request_id_header", "X-Request-ID")]
        latency = options.get("latency_header", "X-Latency-MS")
        if latency:
            names.append(latency)
        if options.get("server_timing"):
            names.append("Server-Timing")
        wiring.expose_headers(*names)

    # -- request id -----------------------------------------------------------------
    def _incoming_id(self, headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, int]:
        """The valid incoming id (or None) and how many request-id headers there were."""
        name = self._rid_name
        raw = b""
        count = 0
        for key, value in headers:
            if key == name or (len(key) == len(name) and key.lower() == name):
                count += 1
                raw = value
        if count != 1:
            return None, count
        validator = self._validator
        if validator is None:
            return (raw.decode("ascii") if _DEFAULT_ID.fullmatch(raw) else None), 1
        if len(raw) > _MAX_CUSTOM_ID:
            return None, 1
        text = raw.decode("latin-1")
        try:
            ok = validator(text) and _SAFE_ID.fullmatch(text) is not None
        except Exception:
            logger.exception("request_id_validator raised; treating the incoming id as invalid")
            ok = False
        return (text if ok else None), 1

    def _new_id(self) -> str:
        try:
            value = self._generator()
        except Exception:
            value = None
            if not self._warned_generator:
                self._warned_generator = True
                logger.exception("request_id_generator raised; falling back to uuid4")
        if not isinstance(value, str) or _SAFE_ID.fullmatch(value) is None:
            if value is not None and not self._warned_generator:
                self._warned_generator = True
                logger.warning(
                    "request_id_generator returned %r, which is not a printable single-line id; "
                    "falling back to uuid4",
                    value,
                )
            return _uuid4()
        return value

    def _security_for(self, scope: Scope) -> _SecuritySet:
        path = route_path(scope)
        if path in (self._app_docs_paths(scope) if self._docs_auto else self._docs_paths):
            return self._docs_set
        for prefix, security in self._prefixed:
            if prefix == "/" or path == prefix or path.startswith(prefix) and path[len(prefix)] == "/":
                return security
        return self._default_set

    def _app_docs_paths(self, scope: Scope) -> frozenset[str]:
        """The docs pages of the app we are installed in (Starlette sets scope["app"] before its middleware)."""
        app = scope.get("app")
        if app is None:
            return frozenset()
        cached = self._docs_cache
        if cached is not None and cached[0] is app:
            return cached[1]
        paths = served_docs_paths(app) or frozenset()
        self._docs_cache = (app, paths)
        return paths

    # -- ASGI -----------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "http":
            await self._http(scope, receive, send)
        elif scope_type == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _take_id(self, scope: Scope) -> tuple[str, bool]:
        """Return (request id, whether the incoming one was invalid); fix the request headers."""
        headers = scope["headers"]
        rid, count = self._incoming_id(headers)
        if rid is not None:
            return rid, False
        rid = self._new_id()
        name = self._rid_name
        # The app must see exactly one, valid, request id.
        fixed = [(k, v) for k, v in headers if k.lower() != name] if count else list(headers)
        fixed.append((name, rid.encode("latin-1")))
        scope["headers"] = fixed
        return rid, count > 0

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(self.app, scope, receive, send)

    async def serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run ``app`` for one HTTP request with the contract around it."""
        start = perf_counter()
        rid, invalid = self._take_id(scope)
        rid_bytes = rid.encode("latin-1")
        security = self._security_for(scope)
        extra = security.https if scope.get("scheme") == "https" else security.http
        rid_name = self._rid_name
        latency_name = self._latency_name
        own = self._own
        # App headers that ours replace: the contract's own, plus forced security headers.
        replaced = own | security.names if self._force_all else own | (self._forced & security.names)
        server_timing = self._server_timing
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present: set[bytes] = set()
                headers: RawHeaders = []
                for key, value in message.get("headers", ()):
                    lower = key.lower()
                    if lower in replaced:
                        continue
                    present.add(lower)
                    headers.append((key, value))
                headers.append((rid_name, rid_bytes))
                elapsed = perf_counter() - start
                if latency_name is not None:
                    headers.append((latency_name, str(round(elapsed * 1000)).encode("latin-1")))
                if server_timing:
                    headers.append((b"server-timing", f"app;dur={elapsed * 1000:.1f}".encode("latin-1")))
                for key, value in extra:
                    if key not in present:
                        headers.append((key, value))
                message = {**message, "headers": headers}
            await send(message)

        # Read before the call: a mounted sub-app replaces scope["app"] on its way down.
        app_handler = _app_error_handler(scope.get("app"))
        token = REQUEST_ID.set(rid)
        try:
            if invalid and self._reject:
                await self._reject_invalid(scope, receive, send_wrapper)
                return
            try:
                await app(scope, receive, send_wrapper)
            except Exception as exc:
                if started:
                    logger.error(
                        "Unhandled exception after the response started (request_id=%s)",
                        rid,
                        exc_info=exc,
                        extra={"request_id": rid},
                    )
                    raise
                logger.error(
                    "Unhandled exception in %s %s (request_id=%s)",
                    scope.get("method", ""),
                    scope.get("path", ""),
                    rid,
                    exc_info=exc,
                    extra={"request_id": rid},
                )
                if app_handler is not None and await _answer_with(
                    app_handler, exc, scope, receive, send_wrapper
                ):
                    # The app's own handler answered (once: re-raising would make Starlette's
                    # ServerErrorMiddleware, outside us, call it a second time for nothing).
                    return
                from .._core.problem import problem_response

                response = problem_response(
                    500,
                    "Internal Server Error",
                    detail="The server could not complete the request; quote the request id when reporting it.",
                    request_id=rid,
                )
                await response(scope, receive, send_wrapper)
                # Re-raise so the server logs it and Starlette's TestClient raises it in tests.
                raise
        finally:
            REQUEST_ID.reset(token)

    async def _reject_invalid(self, scope: Scope, receive: Receive, send: Send) -> None:
        from .._core.problem import problem_response

        header = self._rid_name.decode("latin-1")
        response = problem_response(
            400,
            "Bad Request",
            detail=(
                f"The {header} request header is invalid: send one header of 1-128 characters "
                "from A-Z a-z 0-9 . _ : - (or none, and the server assigns one)."
            ),
        )
        await response(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Websockets get an id for their logs; an invalid incoming id is always replaced
        # (a handshake has no problem+json answer to give).
        rid, _ = self._take_id(scope)
        rid_name = self._rid_name
        rid_bytes = rid.encode("latin-1")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "websocket.accept":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != rid_name]
                headers.append((rid_name, rid_bytes))
                message = {**message, "headers": headers}
            await send(message)

        token = REQUEST_ID.set(rid)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            REQUEST_ID.reset(token)


def _app_error_handler(app: object) -> Callable[..., Any] | None:
    """The handler a Starlette/FastAPI app registered for ``Exception`` or 500, if any.

    Installed with ``Kit.install`` the contract runs inside the app's
    ServerErrorMiddleware, which calls that handler but sends its answer past
    us (and only when nothing was sent), so the contract calls it itself. The
    lookup is starlette's own: the last of the ``500``/``Exception`` keys wins.
    """
    handlers = getattr(app, "exception_handlers", None)
    if not isinstance(handlers, Mapping):
        return None
    found: Callable[..., Any] | None = None
    for key, handler in handlers.items():
        if key == 500 or key is Exception:
            found = handler
    return found


async def _answer_with(
    handler: Callable[..., Any], exc: Exception, scope: Scope, receive: Receive, send: Send
) -> bool:
    """Send the app handler's response for ``exc``; False when the handler fails (then ours answers)."""
    import inspect

    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request

    request = Request(scope, receive)
    try:
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)  # noqa: B004 - an async callable object
        ):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
    except Exception:
        logger.exception("the app's own error handler %r raised; answering with hardenkit's 500", handler)
        return False
    if not callable(response):
        logger.error("the app's own error handler %r returned %r, not a response", handler, response)
        return False
    await response(scope, receive, send)
    return True


def _make_validator(spec: Validator | str | re.Pattern[str] | None) -> Validator | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            spec = re.compile(spec)
        except re.error as exc:
            raise ConfigurationError(f"request_id_validator: {spec!r} is not a valid regex ({exc})") from None
    if isinstance(spec, re.Pattern):
        pattern = spec

        def validate(text: str) -> bool:
            return pattern.fullmatch(text) is not None

        return validate
    if callable(spec):
        return spec
    raise ConfigurationError(
        "request_id_validator: give a regex (string or compiled) or a callable (str) -> bool"
    )


def _resolve_preset(
    spec: str | Mapping[str, str] | None, *, option: str
) -> tuple[dict[str, str], str | None]:
    if spec is None:
        return {}, None
    if isinstance(spec, str):
        try:
            return dict(SECURITY_PRESETS[spec]), spec
        except KeyError:
            raise ConfigurationError(
                f"{option}={spec!r}: write one of {', '.join(map(repr, SECURITY_PRESETS))}, a dict of headers, "
                "or None"
            ) from None
    if isinstance(spec, Mapping):
        return _apply_overrides({}, spec, option=option), None
    raise ConfigurationError(f"{option}: expected a preset name, a dict of headers or None, got {spec!r}")


def _apply_overrides(
    base: Mapping[str, str], overrides: Mapping[str, str | None], *, option: str
) -> dict[str, str]:
    result = {name.lower(): (name, value) for name, value in base.items()}
    for name, value in overrides.items():
        lower = check_header_name(name, option=option)
        if value is None:
            result.pop(lower, None)
        else:
            result[lower] = (name, check_header_value(value, option=f"{option}[{name!r}]"))
    return {name: value for name, value in result.values()}


def _resolve_hsts(hsts: str | None, preset: str | None) -> str | None:
    if hsts == "preset":
        return _PRESET_HSTS.get(preset) if preset else None
    if hsts is None:
        return None
    return check_header_value(hsts, option="hsts")
