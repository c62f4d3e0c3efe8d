"""A request body limit for starlette releases without ``RequestBodyLimitMiddleware``.

``harden()`` puts starlette's own ``RequestBodyLimitMiddleware`` in the
``body_limit`` slot when the installed starlette has it (1.x). FastAPI 0.115 to
0.125 run on starlette 0.40 to 0.50, which have none; there this small pure-ASGI
equivalent takes the slot, answering 413 ``application/problem+json`` with the
request id (starlette's answers a plain-text 413). It is written here because
no dependency offers one for those releases.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigurationError
from .config import EnvParser, env_int

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "body_limit_class"]

_STARLETTE_TARGET = ("starlette.middleware.body_limit", "RequestBodyLimitMiddleware")


class _TooLarge(Exception):
    """Raised inside ``receive`` once the body passes the limit; turned into the 413 answer."""


class BodyLimitMiddleware:
    """413 problem+json for a request body over ``max_body_size`` bytes.

    A declared ``Content-Length`` over the limit is answered before the app
    runs; a chunked body is counted as the app reads it, and the app's read
    fails with the 413 answer once it passes the limit (when the app has not
    started its response yet; otherwise the error propagates, as in starlette).
    """

    hardenkit_slot: ClassVar[str] = "body_limit"
    hardenkit_env_name: ClassVar[str] = "BODY_LIMIT"
    hardenkit_env: ClassVar[Mapping[str, EnvParser]] = {"max_body_size": env_int}

    def __init__(self, app: ASGIApp, max_body_size: int, *, kit: Any = None) -> None:
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int) or max_body_size < 0:
            raise ConfigurationError(
                f"max_body_size={max_body_size!r}: write a whole number of bytes, for example 1_048_576"
            )
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_size
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._answer(scope, receive, send)
            return
        total = 0
        started = False

        async def receive_with_limit() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > limit:
                    raise _TooLarge
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_with_limit, send_wrapper)
        except _TooLarge:
            if started:
                raise
            await self._answer(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        from .problem import problem_response

        response = problem_response(
            413,
            "Content Too Large",
            detail=f"The request body is larger than {self.max_body_size} bytes.",
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def body_limit_class() -> type[Any]:
    """starlette's ``RequestBodyLimitMiddleware`` when the installed starlette has it, else ours."""
    import importlib

    module_name, attr = _STARLETTE_TARGET
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return BodyLimitMiddleware
    cls: type[Any] = getattr(module, attr)
    return cls
