"""TimeoutMiddleware: a bound on how long a request may take to start its answer, and its body to arrive.

Starlette has no such middleware, and the usual hand-written ``asyncio.wait_for``
wrapper cuts streaming responses, leaks the app's task and answers nothing useful.
Here the app runs in a task of its own, inside a cancel scope (anyio: asyncio and
trio alike), while the middleware waits for the first of: the response starts,
the app returns, the body is late, the deadline passes. On a deadline it answers
itself (504 or 408, problem+json with the request id) and cancels the app's work.

A sync endpoint runs in a worker thread that cannot be interrupted: the answer
still goes out at the bound, the event loop keeps serving, and the thread is left
to finish; whatever the app sends after that is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, ClassVar

import anyio

from .._core.config import EnvParser, env_float, env_list, env_optional
from .._core.context import REQUEST_ID
from .._core.kit import Wiring
from .._core.paths import route_path
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["TimeoutMiddleware"]

logger = logging.getLogger("hardenkit.timeouts")

#: The scope key that tells outer components (and the app's own error handlers) why
#: a request ended early: "request" (504), "body" (408) or "stream" (cut).
SCOPE_KEY = "hardenkit.timeout"

# What HeaderContractMiddleware accepts by default: an id that cannot inject anything.
_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")

# Seconds an answered request waits for its cancelled app before leaving it behind.
_DETACH_GRACE = 0.1
# Strong references to the apps left behind (asyncio keeps only weak ones to tasks).
_DETACHED: set[asyncio.Task[None]] = set()


def _check_seconds(value: object, *, option: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"{option}={value!r}: give a number of seconds such as 30, or None for no bound"
        )
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(
            f"{option}={value!r}: give a positive number of seconds such as 30, or None for no bound"
        )
    return seconds


class TimeoutMiddleware:
    """504 for a response not started in time, 408 for a body that arrives too slowly.

    Pure ASGI; HTTP only (websockets and lifespan pass through).

    * ``request_timeout`` (seconds, default 30): from the request's arrival until the
      app starts its response. Past it the client gets a 504 problem+json carrying
      the request id, and the app's work for the request is cancelled.
    * ``body_timeout`` (seconds, default 30): from the request's arrival until the
      last chunk of its body. A client that sends its body more slowly gets 408
      (with ``Connection: close``). A request deadline that passes while the app is
      waiting for the body is the client's fault too, so it also answers 408.
    * ``stream_timeout`` (seconds, default None): a response that has started is
      never cut by ``request_timeout``; this option bounds the whole exchange,
      streaming included. When it passes mid-stream the app is cancelled and the
      connection closed (the client sees a truncated response).
    * ``exclude_paths``: paths (and their sub-paths) left unbounded, e.g. an upload
      endpoint or a server-sent-events stream.
    """

    hardenkit_slot: ClassVar[str] = "timeout"
    hardenkit_env_name: ClassVar[str] = "TIMEOUT"
    hardenkit_env: ClassVar[Mapping[str, EnvParser]] = {
        "request_timeout": env_optional(env_float),
        "body_timeout": env_optional(env_float),
        "stream_timeout": env_optional(env_float),
        "exclude_paths": env_list,
    }

    def __init__(
        self,
        app: ASGIApp,
        *,
        request_timeout: float | None = 30.0,
        body_timeout: float | None = 30.0,
        stream_timeout: float | None = None,
        exclude_paths: Iterable[str] = (),
        kit: Wiring | None = None,
    ) -> None:
        self.app = app
        self.request_timeout = _check_seconds(request_timeout, option="request_timeout")
        self.body_timeout = _check_seconds(body_timeout, option="body_timeout")
        self.stream_timeout = _check_seconds(stream_timeout, option="stream_timeout")
        if isinstance(exclude_paths, str):
            raise ConfigurationError(
                f"exclude_paths={exclude_paths!r}: give a list of paths, e.g. exclude_paths=['/upload']"
            )
        excluded: list[str] = []
        for path in exclude_paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigurationError(f"exclude_paths: {path!r} must be a path starting with '/'")
            excluded.append(path.rstrip("/") or "/")
        self._excluded = tuple(excluded)
        self._unbounded = (
            self.request_timeout is None and self.body_timeout is None and self.stream_timeout is None
        )

    def _is_excluded(self, path: str) -> bool:
        for prefix in self._excluded:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self._unbounded
            or (self._excluded and self._is_excluded(route_path(scope)))
        ):
            await self.app(scope, receive, send)
            return
        await _Exchange(self, scope, receive, send).run()


class _Exchange:
    """One request's race between the app and its deadlines (per-request state lives here)."""

    __slots__ = (
        "_decide",
        "_receive",
        "_send",
        "answered",
        "app",
        "app_scope",
        "body_deadline",
        "body_done",
        "body_late",
        "error",
        "finished",
        "middleware",
        "request_deadline",
        "scope",
        "started",
        "stream_deadline",
        "waiting_for_body",
    )

    def __init__(self, middleware: TimeoutMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        self.middleware = middleware
        self.app = middleware.app
        self.scope = scope
        self._receive = receive
        self._send = send
        self.started = False  # the app sent http.response.start
        self.finished = False  # the app returned
        self.answered = False  # the middleware answered itself; the app's messages are dropped
        self.body_done = False
        self.body_late = False
        self.waiting_for_body = False
        self.error: Exception | None = None
        # Called on the first of: response start, app return, late body (and by the deadline timer).
        self._decide: Callable[[], None] = _nothing
        self.app_scope = anyio.CancelScope()

    def _set_deadlines(self, now: float) -> None:
        middleware = self.middleware
        inf = math.inf
        self.request_deadline = now + middleware.request_timeout if middleware.request_timeout else inf
        self.body_deadline = now + middleware.body_timeout if middleware.body_timeout else inf
        self.stream_deadline = now + middleware.stream_timeout if middleware.stream_timeout else inf

    async def run(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): anyio's task group
            await self._run_anyio()
        else:
            await self._run_asyncio(loop)
        # Raised here, not from a task, so callers see the app's own exception.
        if self.error is not None:
            raise self.error

    async def _run_asyncio(self, loop: asyncio.AbstractEventLoop) -> None:
        # A task, a future and a timer handle: an anyio task group costs ~5x more per
        # request on asyncio. The app still runs inside an anyio cancel scope, so that
        # cancelling it waits for a sync endpoint's thread (keeping the thread limit) as on trio.
        self._set_deadlines(loop.time())
        decided = loop.create_future()

        def decide() -> None:
            if not decided.done():
                decided.set_result(None)

        self._decide = decide
        task = loop.create_task(self._run_app())
        first = min(self.request_deadline, self.stream_deadline)
        timer = loop.call_at(first, decide) if first != math.inf else None
        try:
            try:
                await decided
            finally:
                if timer is not None:
                    timer.cancel()
            if not self.started and not self.finished:
                await self._answer()
                # An async app ends at its next checkpoint; a sync endpoint's thread cannot be
                # stopped: after a short grace the request ends without it (the server's cycle,
                # the access log's line and a test client's answer then come at the bound). The
                # task lives on, holding its thread-pool token, until the thread returns.
                await asyncio.wait((task,), timeout=_DETACH_GRACE)
                if not task.done():
                    _DETACHED.add(task)
                    task.add_done_callback(_DETACHED.discard)
                    return
            elif not self.finished and self.stream_deadline != math.inf:
                cut = loop.call_at(self.stream_deadline, self._cut)
                try:
                    await task
                finally:
                    cut.cancel()
            await task
        except asyncio.CancelledError:
            # The server cancelled the request: the app's task goes with it.
            task.cancel()
            raise

    async def _run_anyio(self) -> None:
        self._set_deadlines(anyio.current_time())
        decided = anyio.Event()
        done = anyio.Event()
        self._decide = decided.set
        async with anyio.create_task_group() as group:

            async def run_app() -> None:
                try:
                    await self._run_app()
                finally:
                    done.set()

            group.start_soon(run_app)
            with anyio.CancelScope(deadline=min(self.request_deadline, self.stream_deadline)):
                await decided.wait()
            if not self.started and not self.finished:
                await self._answer()
            elif not self.finished and self.stream_deadline != math.inf:
                with anyio.CancelScope(deadline=self.stream_deadline):
                    await done.wait()
                if not self.finished:
                    self._cut()

    def _cut(self) -> None:
        if self.finished:
            return
        self.scope[SCOPE_KEY] = "stream"
        self.app_scope.cancel()
        logger.info(
            "response stream cut after stream_timeout=%ss: %s %s",
            self.middleware.stream_timeout,
            self.scope.get("method"),
            route_path(self.scope),
        )

    async def _run_app(self) -> None:
        try:
            with self.app_scope:
                await self.app(self.scope, self.receive, self.send)
        except Exception as exc:
            if self.answered:
                # The client already has its 504/408: the late failure has nowhere to go.
                logger.warning(
                    "%s %s raised after its timeout answer was sent: %r",
                    self.scope.get("method"),
                    route_path(self.scope),
                    exc,
                )
            else:
                self.error = exc
        finally:
            self.finished = True
            self._decide()

    async def receive(self) -> Message:
        if self.body_done:
            return await self._receive()
        self.waiting_for_body = True
        try:
            with anyio.CancelScope(deadline=self.body_deadline) as waiting:
                message = await self._receive()
        finally:
            self.waiting_for_body = False
        # A chunk that arrives after the deadline is late too: a source that blocks the loop
        # while it produces the body (a test client's generator) never lets the scope fire.
        if waiting.cancelled_caught or (
            message["type"] == "http.request" and anyio.current_time() > self.body_deadline
        ):
            self.body_late = True
            if self.started:
                # Too late for a 408: end the exchange (the server closes the connection).
                self.scope[SCOPE_KEY] = "body"
                self.app_scope.cancel()
            self._decide()
            # The middleware answers 408 and cancels the app (this task) from outside.
            await anyio.sleep_forever()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_done = True
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.started = True
            self._decide()
        await self._send(message)

    async def _answer(self) -> None:
        from .._core.problem import problem_response

        # The header contract's id when it runs outside; alone, the client's own valid id.
        rid = REQUEST_ID.get() or _incoming_id(self.scope)
        self.answered = True
        self.app_scope.cancel()
        middleware = self.middleware
        if self.body_late or self.waiting_for_body:
            self.scope[SCOPE_KEY] = "body"
            response = problem_response(
                408,
                "Request Timeout",
                detail=(
                    f"The request body did not arrive within {_seconds(middleware.body_timeout)}; "
                    "send it faster or in a smaller request."
                ),
                headers={"Connection": "close"},
                request_id=rid,
            )
        else:
            self.scope[SCOPE_KEY] = "request"
            response = problem_response(
                504,
                "Gateway Timeout",
                detail=(
                    f"The server did not start its answer within {_seconds(middleware.request_timeout)}; "
                    "retry later, and quote the request id if it keeps happening."
                ),
                request_id=rid,
            )
        await response(self.scope, _no_receive, self._send)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id":
            return value.decode("ascii") if _VALID_ID.fullmatch(value) else None
    return None


def _nothing() -> None:  # pragma: no cover - replaced before the app runs
    return None


def _seconds(value: float | None) -> str:
    if value is None:  # pragma: no cover - a deadline only passes when its bound is set
        return "the time allowed"
    return f"{value:g} s"


async def _no_receive() -> Message:  # pragma: no cover - a Response never reads the request
    raise RuntimeError("the timeout answer does not read the request")
