"""The probe middleware: :class:`HealthProbeMiddleware` answers the probe paths and drains on shutdown."""

from __future__ import annotations

import functools
import json
import logging
import math
import signal
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from starlette.responses import Response

from .._core.config import EnvParser, env_bool, env_float, env_list, env_optional, env_str
from .._core.drain import DRAIN_SCOPE
from .._core.events import HEALTH_CHECK, HEALTH_PROBE, events_of
from .._core.lifespan import serve_lifespan
from .._core.paths import route_path
from .._core.problem import problem_response
from ..errors import ConfigurationError
from .checks import (
    _RANK,
    FAIL,
    HEALTH_JSON,
    PASS,
    WARN,
    Check,
    CheckFn,
    _call_sync,
    _CheckState,
    _describe,
    _interpret,
    _Outcome,
    _ratelimit_storage_check,
    _Run,
    _utc_now,
)
from .shutdown import (
    _DRAIN_CANCEL,
    _cancel_requested,
    _CancelledError,
    _current_task,
    _is_drain_cancel,
    _Lifecycle,
    _Loop,
    _signal_number,
    _uncancel,
)

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .._core.kit import Wiring

__all__ = ["HealthProbeMiddleware"]

logger = logging.getLogger("hardenkit.health")

DEFAULT_LIVE_PATH = "/livez"
DEFAULT_READY_PATH = "/readyz"
DEFAULT_HEALTH_PATH = "/healthz"


_KINDS = ("live", "ready", "health", "startup")


def _seconds(value: Any, *, option: str, allow_zero: bool = True) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        low = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(
            f"HealthProbeMiddleware: {option} must be a number of seconds {low}, got {value!r}"
        )
    return float(value)


def _probe_paths(options: Mapping[str, Any]) -> dict[str, str]:
    """kind -> path for the enabled probes, validated."""
    paths: dict[str, str] = {}
    defaults = {"live": DEFAULT_LIVE_PATH, "ready": DEFAULT_READY_PATH, "health": DEFAULT_HEALTH_PATH}
    for kind in _KINDS:
        path = options.get(f"{kind}_path", defaults.get(kind))
        if path is None:
            continue
        if not isinstance(path, str) or not path.startswith("/") or any(ch in path for ch in "?# "):
            raise ConfigurationError(
                f"HealthProbeMiddleware: {kind}_path must be a path starting with '/' (no query), "
                f"got {path!r}; write for example {kind}_path='/{kind}z' or None to turn it off"
            )
        if path in paths.values():
            raise ConfigurationError(f"HealthProbeMiddleware: {kind}_path {path!r} is used by another probe")
        paths[kind] = path
    if not paths:
        raise ConfigurationError("HealthProbeMiddleware: every probe path is None; keep at least live_path")
    return paths


class HealthProbeMiddleware:
    """Answers liveness, readiness and health probes before the app; drains on shutdown.

    Pure ASGI; ``app.add_middleware(HealthProbeMiddleware, checks=[...])`` or
    ``HealthProbeMiddleware(app, checks=[...])`` (which keeps a handle for
    :meth:`add_check`).
    """

    hardenkit_slot: ClassVar[str] = "health"
    hardenkit_env_name: ClassVar[str] = "HEALTH"
    hardenkit_env: ClassVar[Mapping[str, EnvParser]] = {
        "live_path": env_optional(env_str),
        "ready_path": env_optional(env_str),
        "health_path": env_optional(env_str),
        "startup_path": env_optional(env_str),
        "cache_ttl": env_float,
        "expose_details": env_bool,
        "version": env_optional(env_str),
        "release_id": env_optional(env_str),
        "service_id": env_optional(env_str),
        "description": env_optional(env_str),
        "shutdown_delay": env_float,
        "drain_timeout": env_float,
        "shutdown_signals": env_list,
    }

    def __init__(
        self,
        app: ASGIApp,
        *,
        checks: Iterable[Check] = (),
        live_path: str | None = DEFAULT_LIVE_PATH,
        ready_path: str | None = DEFAULT_READY_PATH,
        health_path: str | None = DEFAULT_HEALTH_PATH,
        startup_path: str | None = None,
        cache_ttl: float = 1.0,
        expose_details: bool = False,
        version: str | None = None,
        release_id: str | None = None,
        service_id: str | None = None,
        description: str | None = None,
        shutdown_delay: float = 5.0,
        drain_timeout: float = 20.0,
        shutdown_signals: Sequence[str | int] = ("SIGTERM",),
        kit: Wiring | None = None,
    ) -> None:
        self.app = app
        paths = _probe_paths(
            {"live_path": live_path, "ready_path": ready_path, "health_path": health_path,
             "startup_path": startup_path}
        )  # fmt: skip
        self._kind_by_path = {path: kind for kind, path in paths.items()}
        self.paths: Mapping[str, str] = dict(paths)
        self.cache_ttl = _seconds(cache_ttl, option="cache_ttl")
        self.shutdown_delay = _seconds(shutdown_delay, option="shutdown_delay")
        self.drain_timeout = _seconds(drain_timeout, option="drain_timeout")
        if not isinstance(expose_details, bool):
            raise ConfigurationError(
                f"HealthProbeMiddleware: expose_details must be True or False, got {expose_details!r}"
            )
        self.expose_details = expose_details
        if isinstance(shutdown_signals, (str, int)):
            raise ConfigurationError(
                "HealthProbeMiddleware: shutdown_signals takes a list, e.g. ['SIGTERM'] or []"
            )
        self._signals = tuple(dict.fromkeys(_signal_number(sig) for sig in shutdown_signals))
        meta: dict[str, str] = {}
        for key, value in (("version", version), ("releaseId", release_id), ("serviceId", service_id),
                           ("description", description)):  # fmt: skip
            if value is not None:
                if not isinstance(value, str):
                    raise ConfigurationError(f"HealthProbeMiddleware: {key} must be a string, got {value!r}")
                meta[key] = value
        self._meta = meta
        self._kit = kit
        self._events = events_of(kit)
        self._states: dict[str, _CheckState] = {}
        self._limiter = anyio.CapacityLimiter(1)
        self._started = True  # False while a startup check has not passed yet
        self._cache: dict[str, tuple[float, tuple[Response, Response]]] = {}
        for check in checks:
            self.add_check(check)
        self._life = _Lifecycle()
        self._cache_control = f"max-age={int(self.cache_ttl)}" if self.cache_ttl >= 1 else "no-store"
        live_body = self._encode({"status": PASS, **meta})
        self._live = self._responses(200, live_body, "no-store")
        self._ratelimit_state: _CheckState | None = None
        self._ratelimit_provider: Any = None
        if kit is not None:
            kit.on_startup(self._on_startup)
            kit.on_shutdown(self._on_shutdown)

    # -- kit --------------------------------------------------------------------------
    @classmethod
    def hardenkit_declare(cls, options: dict[str, Any], wiring: Wiring) -> None:
        wiring.answer_paths(*_probe_paths(options).values(), owner="health")

    # -- checks -----------------------------------------------------------------------
    def add_check(self, check: Check | str, fn: CheckFn | None = None, **options: Any) -> Check:
        """Add a check: ``add_check(Check("db", ping))`` or ``add_check("db", ping, timeout=2.0)``."""
        if isinstance(check, str):
            if fn is None:
                raise ConfigurationError(f"add_check({check!r}): give the check function too")
            check = Check(check, fn, **options)
        elif not isinstance(check, Check) or fn is not None or options:
            raise ConfigurationError(
                f"add_check: expected a hardenkit.health.Check or (name, fn, **options), got {check!r}"
            )
        if check.key in self._states or check.key == "ratelimit:storage":
            raise ConfigurationError(f"add_check: a check with key {check.key!r} already exists; rename it")
        self._states[check.key] = _CheckState(check)
        sync_checks = sum(1 for state in self._states.values() if not state.check.is_async)
        # Single flight means one thread per sync check at most: the limiter never makes a probe wait.
        self._limiter.total_tokens = max(1, sync_checks)
        if check.startup:
            self._started = False
        self._cache.clear()
        return check

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(state.check for state in self._states.values())

    @property
    def draining(self) -> bool:
        """True once a shutdown signal or the lifespan shutdown has arrived."""
        return self._life.draining_since is not None

    # -- ASGI -------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "http":
            kind = self._kind_by_path.get(route_path(scope))
            if kind is not None:
                await self._answer(kind, scope, receive, send)
                return
        elif scope_type == "lifespan":
            if self._kit is None:
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        elif scope_type != "websocket":
            await self.app(scope, receive, send)
            return
        # Counted (and cancellable) so that shutdown can wait for it, bounded by drain_timeout.
        try:
            task = _current_task()
        except RuntimeError:  # not asyncio (trio): a cancel scope, cheap there
            await self._call_in_scope(scope, receive, send)
            return
        # asyncio: remember the task, not an anyio CancelScope (that costs ~5 us per request);
        # at drain_timeout the task gets a plain cancel() that only this frame swallows.
        life = self._life
        tasks = life.tasks
        mine = task not in tasks
        if mine:
            tasks.add(task)
        life.inflight += 1
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        cut = False
        try:
            await self.app(scope, receive, send_wrapper)
        except _CancelledError as exc:
            # Ours (drain_timeout) and nobody else's: swallow it; anything else propagates.
            if task not in life.cut:
                raise
            if not _is_drain_cancel(exc):  # Python 3.10: someone else's cancel, delivered first
                raise
            life.cut.discard(task)
            if _uncancel(task) > 0:  # cancelled by someone else too (the server): theirs to handle
                raise
            cut = True
        finally:
            life.inflight -= 1
            if mine:
                tasks.discard(task)
                if task in life.cut:  # cancelled, but the app swallowed it: leave the task as it was
                    life.cut.discard(task)
                    _uncancel(task)
        if cut and not started and scope_type == "http":
            await self._shutting_down(scope, receive, send)

    async def _call_in_scope(self, scope: Scope, receive: Receive, send: Send) -> None:
        life = self._life
        cancel_scope = anyio.CancelScope()
        life.scopes.add(cancel_scope)
        life.inflight += 1
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        token = DRAIN_SCOPE.set(cancel_scope)  # the access log inside tells a drain cut by it
        try:
            with cancel_scope:
                await self.app(scope, receive, send_wrapper)
        finally:
            DRAIN_SCOPE.reset(token)
            life.inflight -= 1
            life.scopes.discard(cancel_scope)
        if cancel_scope.cancelled_caught and not started and scope["type"] == "http":
            await self._shutting_down(scope, receive, send)

    @staticmethod
    async def _shutting_down(scope: Scope, receive: Receive, send: Send) -> None:
        # Cut by drain_timeout before it answered: say why, rather than leave the server to say 500.
        response = problem_response(
            503, "Service Unavailable", detail="the server is shutting down", headers={"Connection": "close"}
        )
        await response(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Standalone (no kit root above): serve the protocol for apps that reject it, as the kit does.
        async def startup() -> None:
            self._on_startup()

        await serve_lifespan(self.app, scope, receive, send, startup=startup, shutdown=self._on_shutdown)

    async def _answer(self, kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            response: Response = problem_response(
                405, "Method Not Allowed", detail="probes answer GET and HEAD", headers={"Allow": "GET, HEAD"}
            )
            await response(scope, receive, send)
            return
        head = method == "HEAD"
        if kind == "live":
            responses = self._live
        elif kind != "startup" and self._life.draining_since is not None:
            responses = self._draining(kind)
        else:
            cached = self._cache.get(kind)
            if cached is not None and time.monotonic() < cached[0]:
                responses = cached[1]
            else:
                responses = await self._evaluate(kind)
        self._events.emit(
            HEALTH_PROBE, probe=kind, status="pass" if responses[head].status_code == 200 else "fail"
        )
        await responses[head](scope, receive, send)

    # -- evaluation -------------------------------------------------------------------
    def _selected(self, kind: str) -> list[_CheckState]:
        if kind == "startup":
            return [] if self._started else [s for s in self._states.values() if s.check.startup]
        states = [s for s in self._states.values() if not (self._started and s.check.startup)]
        ratelimit = self._ratelimit_check()
        if ratelimit is not None:
            states.append(ratelimit)
        return states

    def _ratelimit_check(self) -> _CheckState | None:
        if self._kit is None:
            return None
        provider = self._kit.get("ratelimit.storage_state")
        if not callable(provider):
            return None
        if self._ratelimit_state is None or self._ratelimit_provider is not provider:
            self._ratelimit_provider = provider
            self._ratelimit_state = _CheckState(_ratelimit_storage_check(provider))
        return self._ratelimit_state

    async def _evaluate(self, kind: str) -> tuple[Response, Response]:
        states = self._selected(kind)
        now = time.monotonic()
        outcomes: list[_Outcome | None] = [
            state.outcome if state.outcome is not None and now < state.expires else None for state in states
        ]
        stale = [index for index, outcome in enumerate(outcomes) if outcome is None]
        if len(stale) == 1:
            outcomes[stale[0]] = await self._outcome(states[stale[0]])
        elif stale:

            async def resolve(index: int) -> None:
                outcomes[index] = await self._outcome(states[index])

            async with anyio.create_task_group() as group:
                for index in stale:
                    group.start_soon(resolve, index)
        for index in stale:
            fresh = outcomes[index]
            if fresh is not None:
                self._events.emit(HEALTH_CHECK, check=states[index].check.key, status=fresh.status)
        final = [outcome for outcome in outcomes if outcome is not None]
        pairs = list(zip(states, final, strict=True))
        status = PASS
        for state, outcome in pairs:
            effective = outcome.status
            if effective == FAIL and not state.check.critical:
                effective = WARN
            if _RANK[effective] > _RANK[status]:
                status = effective
        if not self._started and all(o.status != FAIL for s, o in pairs if s.check.startup):
            self._started = True
            logger.info("startup checks passed; readiness may now pass")
        if kind == "startup":
            status = PASS if self._started else FAIL
        elif not self._started:
            status = FAIL
        document: dict[str, Any] = {"status": status, **self._meta}
        if status != PASS and kind != "health":
            document["output"] = (
                "starting" if not self._started else "a check failed" if status == FAIL else "degraded"
            )
        if kind == "health":
            document["checks"] = {state.check.key: [self._entry(state.check, o)] for state, o in pairs}
        responses = self._responses(
            503 if status == FAIL else 200, self._encode(document), self._cache_control
        )
        expires = min((state.expires for state in states), default=now + self.cache_ttl)
        if expires > time.monotonic():
            self._cache[kind] = (expires, responses)
        return responses

    async def _outcome(self, state: _CheckState) -> _Outcome:
        outcome = state.outcome
        if outcome is not None and time.monotonic() < state.expires:
            # Another probe finished a run between our look at the cache and now.
            return outcome
        run = state.run
        if run is not None:
            # Single flight: share the run in progress (it is decided by its own timeout at the latest).
            await run.done.wait()
            assert run.outcome is not None
            return run.outcome
        if state.thread_busy and state.outcome is not None:
            # A sync check still stuck in its thread from an earlier run: never start a second one.
            return state.outcome
        run = state.run = _Run()
        outcome = None
        try:
            outcome = await self._execute(state)
        finally:
            if outcome is None:  # cancelled from outside (the probe's client went away)
                outcome = self._failed(state.check, "check interrupted", None)
            state.outcome = outcome
            state.expires = outcome.at + self.cache_ttl
            self._log_transition(state, outcome)
            run.outcome = outcome
            state.run = None
            run.done.set()
        return outcome

    async def _execute(self, state: _CheckState) -> _Outcome:
        check = state.check
        state.calls += 1
        try:
            if check.is_async:
                with anyio.fail_after(check.timeout):
                    result = await check.fn()
            else:
                result = await self._execute_sync(state)
        except TimeoutError as exc:
            return self._failed(check, f"timed out after {check.timeout:g}s", exc)
        except Exception as exc:
            return self._failed(check, "check failed", exc)
        except SystemExit as exc:  # sys.exit() in a check must not take the request (or server) down
            return self._failed(check, "check failed", exc)
        except _CancelledError as exc:
            if _cancel_requested():
                raise  # the probe itself is cancelled (its client went away, the server stops)
            # Raised by the check's own code, nobody cancelled us: a failure like any other.
            return self._failed(check, "check failed", exc)
        return self._interpret(check, result)

    async def _execute_sync(self, state: _CheckState) -> Any:
        fn = state.check.fn
        lock = threading.Lock()
        entered = abandoned = False

        def in_thread() -> Any:
            nonlocal entered
            with lock:
                if abandoned:  # pragma: no cover - a race: given up between queueing and starting
                    return None
                entered = True
            try:
                return fn()
            finally:
                state.thread_busy = False

        state.thread_busy = True
        try:
            return await _call_sync(in_thread, limiter=self._limiter, timeout=state.check.timeout)
        except BaseException:
            with lock:
                if not entered:
                    # Given up before a thread picked it up: it never will, so nothing is busy.
                    abandoned = True
                    state.thread_busy = False
            raise

    def _failed(self, check: Check, generic: str, exc: BaseException | None) -> _Outcome:
        output = generic
        if self.expose_details and exc is not None:
            output = f"{generic}: {_describe(exc)}"
        return _Outcome(FAIL, time.monotonic(), _utc_now(), output=output)

    def _interpret(self, check: Check, result: Any) -> _Outcome:
        return _interpret(result, expose_details=self.expose_details)

    def _log_transition(self, state: _CheckState, outcome: _Outcome) -> None:
        # Logged once per incident (a change of status), never once per probe.
        previous, state.last_status = state.last_status, outcome.status
        if outcome.status == previous:
            return
        if outcome.status == PASS:
            if previous is not None:
                logger.info("health check %s passes again", state.check.key)
        else:
            log = logger.warning if outcome.status == FAIL else logger.info
            log("health check %s: %s (%s)", state.check.key, outcome.status, outcome.output or "no output")

    def _entry(self, check: Check, outcome: _Outcome) -> dict[str, Any]:
        entry: dict[str, Any] = {"status": outcome.status}
        if check.component_type is not None:
            entry["componentType"] = check.component_type
        if outcome.observed_value is not None:
            entry["observedValue"] = outcome.observed_value
        if outcome.observed_unit is not None:
            entry["observedUnit"] = outcome.observed_unit
        entry["time"] = outcome.time
        if outcome.output is not None and outcome.status != PASS:
            entry["output"] = outcome.output
        return entry

    # -- rendering ----------------------------------------------------------------------
    @staticmethod
    def _encode(document: Mapping[str, Any]) -> bytes:
        # allow_nan=False: NaN is not JSON (every observedValue was made finite before it got here).
        return json.dumps(document, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")

    @staticmethod
    def _responses(status: int, body: bytes, cache_control: str) -> tuple[Response, Response]:
        """(GET answer, HEAD answer): Response objects hold no per-request state, so they are reused."""
        headers = {"Cache-Control": cache_control}
        full = Response(body, status_code=status, headers=headers, media_type=HEALTH_JSON)
        head = Response(
            b"",
            status_code=status,
            headers={**headers, "Content-Length": str(len(body))},
            media_type=HEALTH_JSON,
        )
        return full, head

    @functools.cached_property
    def _draining_answers(self) -> dict[str, tuple[Response, Response]]:
        answers = {}
        for kind in ("ready", "health"):
            document: dict[str, Any] = {"status": FAIL, **self._meta, "output": "shutting down"}
            if kind == "health":
                document["checks"] = {}
            answers[kind] = self._responses(503, self._encode(document), "no-store")
        return answers

    def _draining(self, kind: str) -> tuple[Response, Response]:
        return self._draining_answers[kind]

    # -- shutdown ---------------------------------------------------------------------
    def _start_draining(self, reason: str) -> None:
        life = self._life
        if life.draining_since is None:
            life.draining_since = time.monotonic()
            self._cache.clear()
            logger.info("%s: readiness now fails (liveness still passes)", reason)

    def _on_startup(self) -> None:
        """Lifespan startup: hook the shutdown signals (main thread of an asyncio or trio loop only)."""
        life = self._life
        life.draining_since = life.drain_deadline = None
        life.released.clear()
        self._cache.clear()
        if not self._signals or threading.current_thread() is not threading.main_thread():
            return
        life.loop = _Loop.current()
        if life.loop is None:  # pragma: no cover - only asyncio and trio exist
            return
        for sig in self._signals:
            if sig in life.hooked:
                continue
            previous = signal.getsignal(sig)
            if previous is None or getattr(previous, "__module__", "") == "asyncio.unix_events":
                # Not set from Python, or owned by the event loop (loop.add_signal_handler) whose
                # handler runs from the wakeup fd whatever we install: readiness flips at lifespan
                # shutdown instead.
                logger.info("signal %s is not hooked by hardenkit (owned by the server's event loop)", sig)
                continue

            def handler(signum: int, frame: FrameType | None) -> None:
                self._on_signal(signum)

            signal.signal(sig, handler)
            life.hooked[sig] = (handler, previous)

    def _on_signal(self, sig: int) -> None:
        """In a signal handler: flip readiness now, do the rest in the event loop."""
        life = self._life
        loop = life.loop
        assert loop is not None
        if life.draining_since is None:
            life.draining_since = time.monotonic()
            loop.soon(functools.partial(self._after_signal, sig))
        else:
            # A second signal: the operator insists, let the server go now.
            loop.soon(functools.partial(self._release, sig))

    def _after_signal(self, sig: int) -> None:
        self._cache.clear()
        name = signal.Signals(sig).name
        logger.info("%s: readiness now fails; the server is told to stop in %gs", name, self.shutdown_delay)
        loop = self._life.loop
        assert loop is not None
        loop.later(self.shutdown_delay, functools.partial(self._release, sig))

    def _release(self, sig: int) -> None:
        """Give the signal to the handler that was there before ours."""
        life = self._life
        if sig in life.released or sig not in life.hooked:
            return
        life.released.add(sig)
        handler, previous = life.hooked.pop(sig)
        if signal.getsignal(sig) is handler:
            signal.signal(sig, previous)
        self._arm_drain_deadline()
        if callable(previous):
            previous(sig, None)
        elif previous == signal.SIG_DFL:
            signal.raise_signal(sig)

    def _arm_drain_deadline(self) -> None:
        life = self._life
        if life.drain_deadline is not None:
            return
        life.drain_deadline = time.monotonic() + self.drain_timeout
        if life.loop is not None:
            life.loop.later(self.drain_timeout, self._cancel_stragglers)

    def _cancel_stragglers(self) -> None:
        life = self._life
        count = len(life.scopes) + len(life.tasks)
        if count:
            logger.warning(
                "drain_timeout (%gs) passed: cancelling %d in-flight request(s)", self.drain_timeout, count
            )
            for cancel_scope in list(life.scopes):
                cancel_scope.cancel()
            for task in list(life.tasks):
                if task not in life.cut and not task.done():
                    life.cut.add(task)
                    task.cancel(_DRAIN_CANCEL)

    def _unhook(self) -> None:
        life = self._life
        for sig, (handler, previous) in list(life.hooked.items()):
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)
            del life.hooked[sig]

    async def _on_shutdown(self) -> None:
        """Lifespan shutdown: readiness fails at once, in-flight requests finish (bounded by drain_timeout)."""
        self._start_draining("lifespan shutdown")
        self._unhook()
        life = self._life
        if life.drain_deadline is None:
            life.drain_deadline = time.monotonic() + self.drain_timeout
        while life.inflight and time.monotonic() < life.drain_deadline:
            await anyio.sleep(0.05)
        if life.inflight:
            self._cancel_stragglers()
            with anyio.move_on_after(1.0):  # let the cancelled requests unwind
                while life.inflight:
                    await anyio.sleep(0.01)
