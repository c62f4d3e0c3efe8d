"""Acceptance tests for issue 7 (hardenkit.aio), written from the issue's own words.

Black-box: only the public API as the issue and docs/aio.md spell it. Every async
test runs under asyncio and trio ("Everything works under asyncio and trio").
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import io
import json
import logging
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from typing_extensions import assert_type

import hardenkit as hk
import hardenkit.aio
from hardenkit.aio import AsyncWrapper, configure_limiter, gather_limited, limiter_stats, run_sync, to_async
from hardenkit.errors import ConfigurationError

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def unique(prefix: str = "contract") -> str:
    """A limiter name of its own (named limiters live as long as the process)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def eventually(condition: Callable[[], bool], what: str) -> None:
    for _ in range(1500):  # bounded: 15 s at most
        if condition():
            return
        await anyio.sleep(0.01)
    pytest.fail(f"never happened: {what}")


class Blocker:
    """A blocking sync callable: waits for ``release``, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.started = 0
        self.finished = 0

    def __call__(self, value: Any = None) -> Any:
        with self._lock:
            self.running += 1
            self.started += 1
            self.peak = max(self.peak, self.running)
        try:
            if not self.release.wait(15):
                raise RuntimeError("the test never released the blocker")
            return value
        finally:
            with self._lock:
                self.running -= 1
                self.finished += 1


@contextlib.contextmanager
def releasing(blocker: Blocker) -> Iterator[Blocker]:
    """Release the blocked threads even when an assertion fails half-way."""
    try:
        yield blocker
    finally:
        blocker.release.set()


# -- to_async: "a decorator (bare or with arguments) and a function" ----------------------


def scale(x: int, factor: int = 2, *, offset: int = 0) -> int:
    """Multiply, then add."""
    return x * factor + offset


@to_async
def bare(x: int) -> int:
    return x + 1


@to_async()
def empty_parens(x: int) -> int:
    return x + 2


@to_async(limiter="contract-db", timeout=5)
def with_arguments(x: int) -> int:
    return x + 3


async def test_decorator_bare_with_empty_parentheses_and_with_arguments() -> None:
    assert await bare(1) == 2
    assert await empty_parens(1) == 3
    assert await with_arguments(1) == 4


async def test_as_a_function_positionally_and_by_keyword() -> None:
    # The issue writes the signature as to_async(fn=None, *, limiter=None, timeout=None).
    assert await to_async(scale)(3) == 6
    assert await to_async(scale, limiter=2, timeout=5)(3, 3, offset=1) == 10
    assert await to_async(fn=scale)(4) == 8
    assert await to_async(fn=scale, limiter="contract-db")(5, factor=1) == 5


async def test_signature_name_doc_and_coroutine_function_are_kept() -> None:
    wrapped = to_async(scale)
    assert inspect.signature(wrapped) == inspect.signature(scale)
    assert wrapped.__name__ == "scale"
    assert wrapped.__doc__ == scale.__doc__
    assert inspect.iscoroutinefunction(wrapped)
    coro = wrapped(1)
    assert inspect.iscoroutine(coro)
    assert await coro == 2


class Repository:
    def __init__(self) -> None:
        self.prefix = "user"

    @to_async(limiter="contract-db")
    def load(self, user_id: int) -> str:
        return f"{self.prefix}-{user_id}"


class Multiplier:
    def __call__(self, x: int) -> int:
        return x * 10


async def test_decorated_methods_and_callable_objects() -> None:
    assert await Repository().load(7) == "user-7"
    assert await to_async(Multiplier())(4) == 40
    assert await to_async(Repository().prefix.upper)() == "USER"  # a builtin bound method


async def test_call_runs_in_a_worker_thread_and_errors_pass_through() -> None:
    loop_thread = threading.get_ident()
    assert await to_async(threading.get_ident)() != loop_thread

    class Boom(Exception):
        pass

    def fails(message: str) -> None:
        raise Boom(message)

    with pytest.raises(Boom, match="broken"):
        await to_async(fails)("broken")


async def test_contextvars_are_copied_into_the_thread() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("contract_var", default="unset")
    var.set("from the caller")
    assert await to_async(var.get)() == "from the caller"
    assert await to_async(var.get, timeout=5)() == "from the caller"  # the timeout path too
    assert await to_async(var.get, limiter="contract-db")() == "from the caller"


async def test_request_id_inside_sync_code_of_a_real_app() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from support import asgi_request

    def sync_lookup() -> str | None:
        return hk.request_id()  # what a driver's log line would carry

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"seen": await to_async(sync_lookup, limiter="contract-db")()})

    app = hk.HeaderContractMiddleware(Starlette(routes=[Route("/", endpoint)]))
    answer = await asgi_request(
        app, headers=[(b"host", b"testserver"), (b"x-request-id", b"contract-req-0001")]
    )
    assert answer.status == 200
    assert json.loads(answer.body) == {"seen": "contract-req-0001"}
    assert answer.headers["x-request-id"] == "contract-req-0001"

    generated = await asgi_request(app)  # no id sent: the generated one is seen in the thread
    assert json.loads(generated.body)["seen"] == generated.headers["x-request-id"]


async def test_log_lines_written_in_the_thread_carry_the_request_id() -> None:
    from hardenkit.headers import REQUEST_ID

    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = hk.configure_logging("INFO", stream=stream, uvicorn=False)
    try:

        @to_async(timeout=5)
        def driver_call() -> None:
            logging.getLogger("contract.driver").info("query done")

        REQUEST_ID.set("contract-log-req")
        await driver_call()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if "query done" in line]
    assert len(lines) == 1
    assert lines[0]["request_id"] == "contract-log-req"


# -- limiters: "each dependency its own bounded pool" --------------------------------------


async def test_named_limiter_bounds_concurrency_exactly_3_with_20_callers() -> None:
    name = unique()
    configure_limiter(name, 3)
    blocker = Blocker()
    call = to_async(blocker, limiter=name)
    results: list[int] = []

    async def caller(i: int) -> None:
        results.append(await call(i))

    with releasing(blocker):
        async with anyio.create_task_group() as group:
            for i in range(20):
                group.start_soon(caller, i)
            await eventually(lambda: blocker.running == 3 and limiter_stats()[name]["waiting"] == 17, "3 in")
            stats = limiter_stats()[name]
            assert (stats["borrowed"], stats["total"], stats["waiting"]) == (3, 3, 17)
            await anyio.sleep(0.05)
            assert blocker.running == 3  # nobody slipped past the limiter
            blocker.release.set()
    assert sorted(results) == list(range(20))
    assert blocker.peak == 3
    assert limiter_stats()[name]["borrowed"] == 0
    assert limiter_stats()[name]["waiting"] == 0


@pytest.mark.parametrize("form", ["int", "CapacityLimiter"])
async def test_int_and_capacity_limiter_bound_concurrency_too(form: str) -> None:
    capacity = anyio.CapacityLimiter(3)
    spec: int | anyio.CapacityLimiter = 3 if form == "int" else capacity
    blocker = Blocker()
    call = to_async(blocker, limiter=spec)
    with releasing(blocker):
        async with anyio.create_task_group() as group:
            for i in range(20):
                group.start_soon(call, i)
            await eventually(lambda: blocker.running == 3, "3 threads in")
            await anyio.sleep(0.05)
            assert blocker.running == 3
            if form == "CapacityLimiter":
                assert capacity.borrowed_tokens == 3  # the caller's own limiter, used as is
                assert capacity.statistics().tasks_waiting == 17
            blocker.release.set()
    assert blocker.peak == 3
    assert blocker.finished == 20


async def test_functions_sharing_a_name_share_one_pool() -> None:
    name = unique()
    configure_limiter(name, 2)
    first, second = Blocker(), Blocker()
    second.release = first.release
    with releasing(first):
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(to_async(first, limiter=name))
                group.start_soon(to_async(second, limiter=name))
            await eventually(lambda: limiter_stats()[name]["borrowed"] == 2, "2 borrowed")
            await anyio.sleep(0.05)
            assert first.running + second.running == 2
            assert limiter_stats()[name]["waiting"] == 4
            first.release.set()
    assert first.finished + second.finished == 6


async def test_one_slow_dependency_cannot_exhaust_the_apps_threads() -> None:
    slow = unique("slow")
    configure_limiter(slow, 2)
    blocker = Blocker()
    with releasing(blocker):
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(to_async(blocker, limiter=slow))
            await eventually(lambda: limiter_stats()[slow]["borrowed"] == 2, "slow pool full")
            with anyio.fail_after(10):  # "did not hang" bound only
                assert await to_async(lambda: "fast", limiter=unique("fast"))() == "fast"
                assert await to_async(lambda: "default")() == "default"  # hardenkit's default pool
                assert await anyio.to_thread.run_sync(lambda: "anyio") == "anyio"  # starlette's pool
            assert blocker.running == 2
            blocker.release.set()


async def test_limiter_stats_reports_borrowed_total_waiting_as_a_health_value() -> None:
    name = unique()
    configure_limiter(name, 4)
    await to_async(lambda: None, limiter=name)()
    stats = hardenkit.aio.limiter_stats()
    assert stats[name]["borrowed"] == 0
    assert stats[name]["total"] == 4
    assert stats[name]["waiting"] == 0
    assert stats[name]["abandoned"] == 0
    assert all(isinstance(value, int) for value in stats[name].values())
    json.dumps(stats)  # usable as a health check's observed value
    # Readable from a worker thread too (a sync health check).
    assert (await to_async(limiter_stats)())[name]["total"] == 4


async def test_unconfigured_name_and_no_limiter_have_a_bounded_default() -> None:
    name = unique()
    await to_async(lambda: None, limiter=name)()
    assert 1 <= limiter_stats()[name]["total"] < 1000
    await to_async(lambda: None)()
    default = limiter_stats()[hardenkit.aio.DEFAULT_LIMITER]
    assert 1 <= default["total"] < 1000


@pytest.mark.parametrize("limiter", ["", 0, -1, 2.5, True, object()])
def test_a_bad_limiter_is_refused_at_decoration(limiter: Any) -> None:
    with pytest.raises(ConfigurationError):
        to_async(scale, limiter=limiter)
    with pytest.raises(ValueError):  # ConfigurationError is a ValueError
        to_async(limiter=limiter)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "5", True])
def test_a_bad_timeout_is_refused_at_decoration(timeout: Any) -> None:
    with pytest.raises(ConfigurationError):
        to_async(scale, timeout=timeout)


# -- timeout: TimeoutError on time, the token held until the thread ends ------------------


@pytest.mark.parametrize("timeout", [0.1, 1])
async def test_timeout_raises_timeout_error_while_stats_show_the_token_held(timeout: float) -> None:
    name = unique()
    configure_limiter(name, 3)
    blocker = Blocker()
    call = to_async(blocker, limiter=name, timeout=timeout)
    with releasing(blocker):
        with anyio.fail_after(10):  # generous "did not hang" bound, not a timing assertion
            with pytest.raises(TimeoutError):
                await call("dropped")
        assert blocker.running == 1  # the thread really still runs
        stats = limiter_stats()[name]
        assert stats["borrowed"] == 1  # ... and keeps its token
        assert stats["abandoned"] == 1
        assert stats["timed_out"] >= 1
        blocker.release.set()
        await eventually(lambda: limiter_stats()[name]["borrowed"] == 0, "the token to come back")
    assert limiter_stats()[name]["abandoned"] == 0
    assert blocker.finished == 1


async def test_timeout_error_is_hardenkits_call_timeout() -> None:
    with pytest.raises(hk.CallTimeout):
        await to_async(threading.Event().wait, timeout=0.05)(0.5)


async def test_hung_calls_cannot_multiply_threads_past_the_limiter() -> None:
    name = unique()
    configure_limiter(name, 2)
    blocker = Blocker()
    call = to_async(blocker, limiter=name, timeout=0.05)
    with releasing(blocker):
        for _ in range(6):
            with anyio.fail_after(10), pytest.raises(TimeoutError):
                await call()
        assert blocker.started == 2  # the other 4 never got a thread
        assert blocker.peak == 2
        stats = limiter_stats()[name]
        assert stats["borrowed"] == 2
        assert stats["abandoned"] == 2
        assert stats["timed_out"] == 6
        blocker.release.set()
        await eventually(lambda: limiter_stats()[name]["abandoned"] == 0, "abandoned threads to end")
    assert limiter_stats()[name]["borrowed"] == 0
    assert blocker.started == 2


async def test_timeout_keeps_a_capacity_limiters_token_until_the_thread_ends() -> None:
    capacity = anyio.CapacityLimiter(1)
    blocker = Blocker()
    with releasing(blocker):
        with pytest.raises(TimeoutError):
            await to_async(blocker, limiter=capacity, timeout=0.05)()
        assert capacity.borrowed_tokens == 1
        blocker.release.set()
        await eventually(lambda: capacity.borrowed_tokens == 0, "the token to come back")


async def test_a_call_that_finishes_in_time_returns_its_value_and_token() -> None:
    name = unique()
    call = to_async(scale, limiter=name, timeout=5)
    assert await call(2, 5, offset=1) == 11
    stats = limiter_stats()[name]
    assert (stats["borrowed"], stats["abandoned"], stats["timed_out"]) == (0, 0, 0)

    def fails() -> None:
        raise KeyError("nope")

    with pytest.raises(KeyError):
        await to_async(fails, limiter=name, timeout=5)()
    assert limiter_stats()[name]["borrowed"] == 0


async def test_a_cancelled_caller_with_a_timeout_does_not_leak_the_token() -> None:
    name = unique()
    configure_limiter(name, 1)
    blocker = Blocker()
    with releasing(blocker):
        with anyio.move_on_after(0.05):
            await to_async(blocker, limiter=name, timeout=30)()
        assert limiter_stats()[name]["borrowed"] == 1  # still running, still holding it
        blocker.release.set()
        await eventually(lambda: limiter_stats()[name]["borrowed"] == 0, "the token to come back")
    assert await to_async(lambda: "next", limiter=name, timeout=5)() == "next"


# -- run_sync: from a script, and from a worker thread back into the loop -----------------


async def add_later(a: int, b: int) -> tuple[int, int]:
    await anyio.lowlevel.checkpoint()
    return a + b, threading.get_ident()


def test_run_sync_from_a_script() -> None:
    total, _ = run_sync(add_later, 20, 22)
    assert total == 42


def test_run_sync_from_a_plain_thread_without_a_loop() -> None:
    answers: list[int] = []
    thread = threading.Thread(target=lambda: answers.append(run_sync(add_later, 1, 2)[0]))
    thread.start()
    thread.join(10)
    assert answers == [3]


async def test_run_sync_from_a_to_async_thread_calls_back_into_the_running_loop() -> None:
    loop_thread = threading.get_ident()

    def sync_code() -> tuple[int, int]:
        return run_sync(add_later, 40, 2)

    total, ran_in = await to_async(sync_code)()
    assert total == 42
    assert ran_in == loop_thread  # in the running loop, not a second loop in the worker


async def test_run_sync_from_an_anyio_worker_thread_too() -> None:
    loop_thread = threading.get_ident()
    total, ran_in = await anyio.to_thread.run_sync(run_sync, add_later, 1, 1)
    assert (total, ran_in) == (2, loop_thread)


async def test_run_sync_errors_propagate_from_the_loop() -> None:
    async def fails(message: str) -> None:
        raise LookupError(message)

    with pytest.raises(LookupError, match="gone"):
        await to_async(run_sync)(fails, "gone")


# -- AsyncWrapper ----------------------------------------------------------------------------


class Client:
    """A small blocking client."""

    def __init__(self) -> None:
        self.host = "db.local"
        self.calls: list[tuple[str, int]] = []
        self.entered = 0
        self.exited: list[type[BaseException] | None] = []
        self.suppress = False

    def get(self, key: str, *, default: str = "") -> str:
        self.calls.append((key, threading.get_ident()))
        return f"value of {key}" if key else default

    def fail(self) -> None:
        raise ConnectionError("down")

    async def already_async(self) -> str:
        return "async"

    def __enter__(self) -> Client:
        self.entered += 1
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.exited.append(exc_type)
        return self.suppress


async def test_async_wrapper_methods_are_awaitable_and_run_in_threads() -> None:
    client = Client()
    wrapper = AsyncWrapper(client)
    assert await wrapper.get("k") == "value of k"
    assert await wrapper.get("", default="d") == "d"
    assert client.calls[0][1] != threading.get_ident()
    with pytest.raises(ConnectionError, match="down"):
        await wrapper.fail()
    assert await wrapper.already_async() == "async"


async def test_async_wrapper_plain_attribute_access_for_the_rest() -> None:
    client = Client()
    wrapper = AsyncWrapper(client)
    assert wrapper.host == "db.local"
    assert wrapper.calls is client.calls
    wrapper.host = "other"
    assert client.host == "other"
    with pytest.raises(AttributeError):
        _ = wrapper.missing


async def test_async_wrapper_uses_its_limiter() -> None:
    name = unique()
    configure_limiter(name, 2)
    blocker = Blocker()

    class Slow:
        def work(self, i: int) -> Any:
            return blocker(i)

    wrapper = AsyncWrapper(Slow(), limiter=name)
    with releasing(blocker):
        async with anyio.create_task_group() as group:
            for i in range(8):
                group.start_soon(wrapper.work, i)
            await eventually(lambda: limiter_stats()[name]["borrowed"] == 2, "2 borrowed")
            await anyio.sleep(0.05)
            assert blocker.running == 2
            blocker.release.set()
    assert blocker.peak == 2
    assert blocker.finished == 8


@pytest.mark.parametrize("limiter", [2, "CapacityLimiter"])
async def test_async_wrapper_takes_an_int_or_capacity_limiter(limiter: Any) -> None:
    spec = anyio.CapacityLimiter(2) if limiter == "CapacityLimiter" else limiter
    assert await AsyncWrapper(Client(), limiter=spec).get("x") == "value of x"


async def test_async_wrapper_context_manager() -> None:
    client = Client()
    async with AsyncWrapper(client) as db:
        assert client.entered == 1
        assert await db.get("inside") == "value of inside"
    assert client.exited == [None]

    with pytest.raises(RuntimeError, match="in the block"):
        async with AsyncWrapper(client):
            raise RuntimeError("in the block")
    assert client.exited[-1] is RuntimeError

    client.suppress = True  # __exit__ returning True swallows the error, as with `with`
    async with AsyncWrapper(client):
        raise RuntimeError("swallowed")
    assert client.exited[-1] is RuntimeError


async def test_async_wrapper_of_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("one\ntwo\n")
    async with AsyncWrapper(path.open()) as handle:
        assert await handle.readline() == "one\n"
        assert await handle.read() == "two\n"
        assert not handle.closed
    assert handle.closed


async def test_async_wrapper_of_a_non_context_manager_fails_clearly() -> None:
    class Plain:
        def ping(self) -> str:
            return "pong"

    with pytest.raises(TypeError):
        async with AsyncWrapper(Plain()):
            pass  # pragma: no cover


# -- gather_limited ----------------------------------------------------------------------------


async def test_gather_limited_results_in_call_order() -> None:
    async def value(n: int) -> int:
        await anyio.sleep(0.005 * (6 - n))  # the later ones finish first
        return n

    assert await gather_limited(*(value(n) for n in range(6)), limit=3) == list(range(6))
    assert await gather_limited(*(functools.partial(value, n) for n in range(6)), limit=2) == list(range(6))


async def test_gather_limited_takes_awaitables_and_sync_and_async_callables() -> None:
    async def twice(n: int) -> int:
        await anyio.lowlevel.checkpoint()
        return n * 2

    loop_thread = threading.get_ident()
    results = await gather_limited(
        twice(1),
        functools.partial(twice, 2),
        lambda: 6,
        threading.get_ident,
        lambda: twice(4),
        limit=2,
    )
    assert results[:3] == [2, 4, 6]
    assert results[3] != loop_thread  # a sync callable does not block the loop
    assert results[4] == 8
    assert await gather_limited(limit=3) == []


@pytest.mark.parametrize("kind", ["coroutines", "sync callables"])
async def test_gather_limited_runs_at_most_limit_at_a_time(kind: str) -> None:
    running = peak = 0

    async def task(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        return n

    if kind == "coroutines":
        results = await gather_limited(*(task(n) for n in range(20)), limit=3)
        assert peak == 3
    else:
        blocker = Blocker()
        with releasing(blocker):
            async with anyio.create_task_group() as group:
                out: list[list[Any]] = []

                async def run() -> None:
                    out.append(
                        await gather_limited(*(functools.partial(blocker, n) for n in range(20)), limit=3)
                    )

                group.start_soon(run)
                await eventually(lambda: blocker.running == 3, "3 running")
                await anyio.sleep(0.05)
                assert blocker.running == 3
                blocker.release.set()
        results = out[0]
        assert blocker.peak == 3
    assert results == list(range(20))


async def test_gather_limited_cancels_the_rest_on_an_error() -> None:
    started: list[int] = []
    cancelled: list[int] = []
    finished: list[int] = []

    async def slow(n: int) -> int:
        started.append(n)
        try:
            await anyio.sleep(5)
        except anyio.get_cancelled_exc_class():
            cancelled.append(n)
            raise
        finished.append(n)
        return n

    async def boom() -> int:
        await anyio.sleep(0.01)
        raise ValueError("boom")

    with anyio.fail_after(4):  # the slow ones must not be waited for
        with pytest.raises(ValueError, match="boom"):
            await gather_limited(slow(0), boom(), slow(2), slow(3), slow(4), limit=3)
    assert started == [0, 2]  # 3 and 4 never started
    assert sorted(cancelled) == [0, 2]
    assert finished == []


async def test_gather_limited_return_exceptions_keeps_going() -> None:
    async def ok(n: int) -> int:
        await anyio.sleep(0.01)
        return n

    async def bad() -> int:
        raise KeyError("missing")

    def sync_bad() -> int:
        raise OSError("disk")

    results = await gather_limited(ok(0), bad(), ok(2), sync_bad, ok(4), limit=2, return_exceptions=True)
    assert results[0] == 0 and results[2] == 2 and results[4] == 4
    assert isinstance(results[1], KeyError)
    assert isinstance(results[3], OSError)


async def test_gather_limited_result_types_for_type_checkers() -> None:
    # mypy --strict runs on this file: these are checked statically as well as at run time.
    async def fetch(n: int) -> int:
        await anyio.lowlevel.checkpoint()
        return n

    def label(n: int) -> str:
        return str(n)

    by_partial = await gather_limited(*(functools.partial(fetch, n) for n in range(3)), limit=2)
    assert_type(by_partial, list[int])
    mixed = await gather_limited(fetch(0), functools.partial(fetch, 1), lambda: fetch(2), limit=2)
    assert_type(mixed, list[int])
    sync = await gather_limited(functools.partial(label, 1), limit=2)
    assert_type(sync, list[str])
    with_errors = await gather_limited(fetch(1), functools.partial(fetch, 2), limit=2, return_exceptions=True)
    assert_type(with_errors, list[int | BaseException])
    assert (by_partial, mixed, sync, with_errors) == ([0, 1, 2], [0, 1, 2], ["1"], [1, 2])


def test_to_async_keeps_types_for_type_checkers() -> None:
    first = to_async(scale)(1, 2, offset=3)
    _ = assert_type(first, Coroutine[Any, Any, int])
    second = to_async(limiter="contract-db", timeout=1)(scale)(1)
    _ = assert_type(second, Coroutine[Any, Any, int])
    third = to_async(fn=scale)(1)
    _ = assert_type(third, Coroutine[Any, Any, int])
    for coro in (first, second, third):
        coro.close()  # never started: nothing runs


@pytest.mark.parametrize("limit", [0, -1, 1.5, None])
async def test_gather_limited_rejects_a_bad_limit(limit: Any) -> None:
    async def one() -> int:
        return 1

    coro = one()
    with pytest.raises(ValueError):
        await gather_limited(coro, limit=limit)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED  # not left to warn "never awaited"


# -- "imports anyio only", and the health component uses it ---------------------------------


def test_importing_hardenkit_aio_loads_no_web_stack() -> None:
    code = (
        "import sys, hardenkit.aio\n"
        "heavy = [m for m in ('starlette', 'limits', 'redis', 'fastapi', 'uvicorn', 'asyncer') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "aio_example.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr


async def test_a_hanging_sync_health_check_answers_on_time() -> None:
    from support import asgi_request

    hang = threading.Event()

    def stuck() -> bool:
        hang.wait(10)
        return True

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never reached
        raise AssertionError("the probe answers itself")

    probes = hk.HealthProbeMiddleware(app, checks=[hk.Check("stuck", stuck, timeout=0.1)])
    try:
        with anyio.fail_after(8):
            answer = await asgi_request(probes, "/readyz")
        assert answer.status == 503
    finally:
        hang.set()
