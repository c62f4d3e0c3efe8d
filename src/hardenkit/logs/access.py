"""AccessLogMiddleware: one redacted log record per HTTP request (pure ASGI, no framework import)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from .._core.config import env_bool, env_float, env_list, env_optional, env_str
from .._core.context import REQUEST_ID
from .._core.drain import cut_by_drain
from .._core.paths import route_path
from ..errors import ConfigurationError
from .filters import VETTED, Vetted
from .redactor import Redactor
from .urls import MAX_TARGET, encode_path, has_secret_names, redact_path, redact_query

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .._core.kit import Wiring

__all__ = ["AccessLogMiddleware"]

_MAX_UA = 512
_BASE_FIELDS = (
    "method", "path", "query", "status", "duration_ms", "response_bytes", "client", "user_agent", "request_id",
)  # fmt: skip
_SCAN_UA = 4 * _MAX_UA


class AccessLogMiddleware:
    """Logs one record per HTTP request on ``logger`` (``hardenkit.access``).

    Fields (as ``extra``, so JSON formatters write them as keys): ``method``,
    ``path`` and ``query`` (decoded as the app decodes them, redacted, written
    percent-encoded), ``status``, ``duration_ms``, ``response_bytes`` (response
    body bytes), ``client``, ``user_agent``, ``request_id``; ``key_id`` when an API key was
    verified (``APIKeyMiddleware``; the id, never the key); ``disconnected``
    when the client went away first; ``cancelled`` when the request was
    cancelled, and ``drain_cut`` when that was the health component's
    ``drain_timeout`` (logged with the 503 the client got). A request whose app
    raises is logged with status 500 at ERROR and the exception goes on; a
    request slower than ``slow_ms`` is logged at WARNING. Paths answered by an
    outer kit component (health probes) and ``exclude_paths`` are not logged;
    both are matched against the path the app routes on (without ``root_path``).
    """

    hardenkit_slot: ClassVar[str] = "access_log"
    hardenkit_env_name: ClassVar[str] = "ACCESSLOG"
    hardenkit_env: ClassVar[dict[str, Any]] = {
        "logger": env_str,
        "slow_ms": env_optional(env_float),
        "exclude_paths": env_list,
        "redact": env_bool,
    }

    def __init__(
        self,
        app: ASGIApp,
        *,
        logger: str | logging.Logger = "hardenkit.access",
        slow_ms: float | None = 1000.0,
        exclude_paths: Iterable[str] = (),
        redact: bool | Redactor = True,
        kit: Wiring | None = None,
    ) -> None:
        self.app = app
        if isinstance(logger, str):
            if not logger:
                raise ConfigurationError(
                    "AccessLogMiddleware: logger must be a logger name such as 'app.access'"
                )
            self.logger = logging.getLogger(logger)
        elif isinstance(logger, logging.Logger):
            self.logger = logger
        else:
            raise ConfigurationError(
                f"AccessLogMiddleware: logger takes a name or a logging.Logger, got {type(logger).__name__}"
            )
        if slow_ms is not None and (
            isinstance(slow_ms, bool) or not isinstance(slow_ms, (int, float)) or not slow_ms > 0
        ):
            raise ConfigurationError(
                f"AccessLogMiddleware: slow_ms must be a number of milliseconds > 0 or None, got {slow_ms!r}"
            )
        self.slow_ms = None if slow_ms is None else float(slow_ms)
        if isinstance(exclude_paths, str):
            raise ConfigurationError(
                f"AccessLogMiddleware: exclude_paths takes a list of paths, e.g. [{exclude_paths!r}]"
            )
        paths = list(exclude_paths)
        for path in paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigurationError(
                    f"AccessLogMiddleware: exclude_paths entries must start with '/', got {path!r}"
                )
        self.exclude_paths = frozenset(paths)
        if isinstance(redact, Redactor):
            self.redactor: Redactor | None = redact
        elif isinstance(redact, bool):
            self.redactor = Redactor() if redact else None
        else:
            raise ConfigurationError("AccessLogMiddleware: redact takes True, False or a hardenkit.Redactor")
        self.kit = kit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path in self.exclude_paths or (self.kit is not None and self.kit.is_answered(path)):
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        status = 0
        sent = 0
        disconnected = False
        finished = False

        async def receive_wrapper() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect" and not finished:
                disconnected = True
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent, finished, disconnected
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body":
                sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    finished = True
            try:
                await send(message)
            except OSError:
                # The server could not write: the client is gone.
                disconnected = True
                raise

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except Exception as exc:
            self._log(scope, status or 500, sent, start, disconnected, failed=type(exc).__qualname__)
            raise
        except BaseException as exc:
            if cut_by_drain(exc):
                # drain_timeout cut it: the health component (outside) answers 503 when nothing
                # was sent yet. Log what the client gets, not a disconnect that did not happen.
                self._log(scope, status or 503, sent, start, disconnected, failed=None, cut=True)
            else:
                # Cancelled (the server gave up on a vanished client): still one line.
                self._log(scope, status or 499, sent, start, True, failed=None, cut=False)
            raise
        self._log(scope, status or (499 if disconnected else 500), sent, start, disconnected, failed=None)

    def _log(
        self,
        scope: Scope,
        status: int,
        sent: int,
        start: float,
        disconnected: bool,
        *,
        failed: str | None,
        cut: bool | None = None,
    ) -> None:
        duration_ms = round((time.perf_counter() - start) * 1000.0, 3)
        if failed is not None or status >= 500:
            level = logging.ERROR
        elif self.slow_ms is not None and duration_ms >= self.slow_ms:
            level = logging.WARNING
        else:
            level = logging.INFO
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        try:
            method: str = scope.get("method", "")
            path: str = scope.get("path", "")
            query = scope.get("query_string", b"").decode("latin-1")
            user_agent = ""
            for name, value in scope.get("headers", ()):
                if name == b"user-agent":
                    user_agent = value.decode("latin-1")[:_SCAN_UA]
                    break
            client = scope.get("client")
            host = str(client[0]) if client else None
            rid = REQUEST_ID.get()
            redactor = self.redactor
            if redactor is None:
                path, query, user_agent = encode_path(path), query[:MAX_TARGET], user_agent[:_MAX_UA]
            elif (
                # What the app decodes differs from what was sent: decode, then redact.
                "%" in query
                or "+" in query
                or "%" in path
                or len(query) > MAX_TARGET
                or len(path) > MAX_TARGET
                or redactor.might_contain(f"{method}\x00{path}\x00{query}\x00{user_agent}\x00{host}\x00{rid}")
                or has_secret_names(query, redactor)
            ):
                path, query = redact_path(path, redactor), redact_query(query, redactor)
                if redactor.might_contain(f"{method}\x00{user_agent}\x00{host}\x00{rid}"):
                    method, user_agent = redactor.redact(method), redactor.redact(user_agent)
                    host = None if host is None else redactor.redact(host)
                    rid = None if rid is None else redactor.redact(rid)
                user_agent = user_agent[:_MAX_UA]
            else:
                path, user_agent = encode_path(path), user_agent[:_MAX_UA]
            fields: dict[str, Any] = {
                "method": method,
                "path": path,
                "query": query,
                "status": status,
                "duration_ms": duration_ms,
                "response_bytes": sent,
                "client": host,
                "user_agent": user_agent,
                "request_id": rid,
            }
            key_id = scope.get("hardenkit.key_id")
            if isinstance(key_id, str):
                # Set by APIKeyMiddleware once a key is verified: the key's id, never the key.
                fields["key_id"] = key_id
            if disconnected:
                fields["disconnected"] = True
            if cut is not None:
                fields["cancelled"] = True
                if cut:
                    fields["drain_cut"] = True
            if failed is not None:
                fields["error"] = failed
            message = f"{method} {path} {status}"
            # Logger.log() without its stack walk (findCaller: the caller is always this method)
            # and without makeRecord's key-by-key copy of extra (these keys are known not to clash).
            record = logger.makeRecord(logger.name, level, __file__, _LINE, message, (), None, "_log")
            record.__dict__.update(fields)
            if redactor is None:
                logger.handle(record)
                return
            # Every field here was just vetted by this redactor: a RedactingFilter whose rules
            # it covers skips these very values of this very record, and redacts anything else.
            names = _BASE_NAMES if len(fields) == len(_BASE_FIELDS) else Vetted.names_for(fields)
            token = VETTED.set(Vetted((record, redactor, message, fields, names)))
            try:
                logger.handle(record)
            finally:
                VETTED.reset(token)
        except Exception:
            # The access log must never break the request it describes.
            logging.getLogger("hardenkit.accesslog").exception("could not write the access log line")


_LINE = AccessLogMiddleware._log.__code__.co_firstlineno
# The attribute names of the usual line (no optional field), computed once.
_BASE_NAMES = Vetted.names_for(dict.fromkeys(_BASE_FIELDS))
