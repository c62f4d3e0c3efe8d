from __future__ import annotations

import contextlib
import functools
import inspect
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from typing_extensions import assert_type

from hardenkit.aio import (
    DEFAULT_LIMITER,
    AsyncWrapper,
    configure_limiter,
    gather_limited,
    limiter_stats,
    run_sync,
    to_async,
)
from hardenkit.errors import CallTimeout, ConfigurationError
from hardenkit.headers import REQUEST_ID

ROOT = Path(__file__).resolve().parents[2]

# Every async test here runs on both backends: named limiters, abandoned threads
# and callbacks into the loop each have a backend-specific side.
pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def fresh_name() -> str:
    """A limiter name no other test uses (named limiters live as long as the process)."""
    return f"test-{uuid.uuid4().hex[:12]}"


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(1000):
        if condition():
            return
        await anyio.sleep(0.01)
    pytest.fail(f"gave up waiting for {what}")


@contextlib.contextmanager
def released(event: threading.Event) -> Iterator[threading.Event]:
    """Let blocked worker threads go even when the test fails half-way."""
    try:
        yield event
    finally:
        event.set()


class Gate:
    """A sync function that blocks until the test opens the gate, counting who is inside."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0
        self.entered = 0
        self.threads: set[int] = set()

    def __call__(self, value: int = 0) -> int:
        with self.lock:
            self.inside += 1
            self.entered += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.threads.add(threading.get_ident())
        try:
            if not self.open.wait(20):
                raise RuntimeError("the test never opened the gate")
            return value
        finally:
            with self.lock:
                self.inside -= 1


# -- to_async: shape -----------------------------------------------------------------


def add(a: int, b: int = 2, *, scale: int = 1) -> int:
    """Add two numbers."""
    return (a + b) * scale


async def test_signature_name_and_doc_are_kept() -> None:
    for wrapped in (to_async(add), to_async()(add), to_async(limiter=3, timeout=5)(add)):
        assert inspect.signature(wrapped) == inspect.signature(add)
        assert wrapped.__name__ == "add"
        assert wrapped.__doc__ == "Add two numbers."
        assert inspect.iscoroutinefunction(wrapped)
        assert await wrapped(1, 2, scale=3) == 9


async def test_types_are_kept_for_type_checkers() -> None:
    wrapped = to_async(add)
    result = await wrapped(1, b=4)
    assert_type(result, int)
    assert result == 5


@to_async
def bare_decorated(x: str) -> str:
    return x * 2


@to_async(limiter="decorated-with-options", timeout=10)
def decorated_with_options(x: str) -> str:
    return x.upper()


async def test_works_as_bare_decorator_and_with_options() -> None:
    assert await bare_decorated("ab") == "abab"
    assert await decorated_with_options("ab") == "AB"
    assert "decorated-with-options" in limiter_stats()


async def test_runs_in_a_worker_thread_not_the_loop_thread() -> None:
    loop_thread = threading.get_ident()
    assert await to_async(threading.get_ident)() != loop_thread
    assert await to_async(threading.get_ident, timeout=5)() != loop_thread


async def test_exceptions_propagate_unchanged() -> None:
    def fail(message: str) -> None:
        raise KeyError(message)

    with pytest.raises(KeyError, match="nope"):
        await to_async(fail)("nope")
    with pytest.raises(KeyError, match="nope"):
        await to_async(fail, timeout=5)("nope")


async def test_contextvars_are_copied_into_the_thread() -> None:
    seen: list[str | None] = []

    def read_and_change() -> None:
        seen.append(REQUEST_ID.get())
        REQUEST_ID.set("changed-in-thread")

    token = REQUEST_ID.set("req-123")
    try:
        await to_async(read_and_change)()
        await to_async(read_and_change, timeout=5, limiter=fresh_name())()
        assert seen == ["req-123", "req-123"]
        assert REQUEST_ID.get() == "req-123"  # a copy: the thread cannot change the caller's context
    finally:
        REQUEST_ID.reset(token)


# -- limiters --------------------------------------------------------------------------


@pytest.mark.parametrize("with_timeout", [False, True])
async def test_named_limiter_bounds_concurrency_exactly(with_timeout: bool) -> None:
    name = fresh_name()
    configure_limiter(name, 3)
    gate = Gate()
    call = to_async(gate, limiter=name, timeout=30 if with_timeout else None)
    results: list[int] = []

    async def one(i: int) -> None:
        results.append(await call(i))

    with released(gate.open):
        async with anyio.create_task_group() as group:
            for i in range(20):
                group.start_soon(one, i)
            await wait_until(lambda: limiter_stats()[name]["waiting"] == 17, "17 waiting callers")
            assert limiter_stats()[name]["borrowed"] == 3
            assert gate.inside == 3
            gate.open.set()
    assert sorted(results) == list(range(20))
    assert gate.most_inside == 3
    assert limiter_stats()[name] == {"borrowed": 0, "total": 3, "waiting": 0, "abandoned": 0, "timed_out": 0}


@pytest.mark.parametrize("kind", ["int", "capacity_limiter"])
async def test_int_and_capacity_limiters_bound_concurrency(kind: str) -> None:
    gate = Gate()
    limiter: int | anyio.CapacityLimiter = 2 if kind == "int" else anyio.CapacityLimiter(2)
    call = to_async(gate, limiter=limiter)
    with released(gate.open):
        async with anyio.create_task_group() as group:
            for i in range(8):
                group.start_soon(call, i)
            await wait_until(lambda: gate.entered == 2, "two threads in")
            await anyio.sleep(0.05)  # give a third one the chance to (wrongly) get in
            assert gate.inside == 2
            gate.open.set()
    assert gate.most_inside == 2
    assert gate.entered == 8


async def test_one_slow_dependency_does_not_starve_another() -> None:
    slow, fast = fresh_name(), fresh_name()
    configure_limiter(slow, 2)
    gate = Gate()
    with released(gate.open):
        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(to_async(gate, limiter=slow))
            await wait_until(lambda: limiter_stats()[slow]["waiting"] == 4, "the slow pool full")
            with anyio.fail_after(10):  # "did not hang" bound, not a timing assertion
                assert await to_async(add, limiter=fast)(1, 1) == 2
                assert await to_async(add)(2, 2) == 4  # the default pool is free too
            gate.open.set()


async def test_configure_limiter_resizes_a_pool_in_use() -> None:
    name = fresh_name()
    configure_limiter(name, 1)
    assert await to_async(add, limiter=name)(1) == 3
    configure_limiter(name, 4)
    gate = Gate()
    with released(gate.open):
        async with anyio.create_task_group() as group:
            for i in range(4):
                group.start_soon(to_async(gate, limiter=name), i)
            await wait_until(lambda: gate.entered == 4, "four threads in a pool resized to 4")
            gate.open.set()
    assert limiter_stats()[name]["total"] == 4


async def test_unconfigured_names_and_default_pool_sizes() -> None:
    name = fresh_name()
    to_async(add, limiter=name)
    stats = limiter_stats()
    assert stats[name]["total"] == 10
    assert stats[DEFAULT_LIMITER]["total"] == 40


async def test_limiter_stats_can_be_read_from_a_worker_thread() -> None:
    name = fresh_name()
    stats = await to_async(limiter_stats, limiter=name)()
    assert stats[name]["borrowed"] == 1  # the call reading it holds that pool's only busy token


# -- timeouts ----------------------------------------------------------------------------


async def test_timeout_raises_while_the_token_stays_held_until_the_thread_ends() -> None:
    name = fresh_name()
    gate = Gate()
    call = to_async(gate, limiter=name, timeout=0.1)
    with released(gate.open):
        with pytest.raises(CallTimeout) as caught:
            await call(1)
        assert isinstance(caught.value, TimeoutError)
        assert "did not finish within 0.1 s" in str(caught.value)
        assert gate.inside == 1
        assert limiter_stats()[name] == {
            "borrowed": 1,
            "total": 10,
            "waiting": 0,
            "abandoned": 1,
            "timed_out": 1,
        }
        gate.open.set()
        await wait_until(lambda: limiter_stats()[name]["borrowed"] == 0, "the abandoned thread to end")
    assert limiter_stats()[name] == {"borrowed": 0, "total": 10, "waiting": 0, "abandoned": 0, "timed_out": 1}


async def test_hung_calls_cannot_run_more_threads_than_the_limiter() -> None:
    name = fresh_name()
    configure_limiter(name, 2)
    gate = Gate()
    call = to_async(gate, limiter=name, timeout=0.1)
    with released(gate.open):
        for _ in range(6):
            with pytest.raises(CallTimeout):
                await call()
        # Only two calls ever got a thread; the four others timed out waiting for one.
        assert gate.entered == 2
        assert limiter_stats()[name] == {
            "borrowed": 2,
            "total": 2,
            "waiting": 0,
            "abandoned": 2,
            "timed_out": 6,  # every caller got its CallTimeout
        }
        gate.open.set()
        await wait_until(lambda: limiter_stats()[name]["borrowed"] == 0, "the abandoned threads to end")
        assert await to_async(add, limiter=name, timeout=5)(1) == 3  # the pool works again


async def test_call_that_finishes_in_time_returns_its_token() -> None:
    name = fresh_name()
    assert await to_async(add, limiter=name, timeout=5)(2, 3) == 5
    assert limiter_stats()[name]["borrowed"] == 0
    assert limiter_stats()[name]["timed_out"] == 0


async def test_error_under_a_timeout_returns_its_token() -> None:
    name = fresh_name()

    def fail() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await to_async(fail, limiter=name, timeout=5)()
    assert limiter_stats()[name]["borrowed"] == 0


async def test_timeout_covers_the_wait_for_a_thread() -> None:
    name = fresh_name()
    configure_limiter(name, 1)
    gate = Gate()
    with released(gate.open):
        async with anyio.create_task_group() as group:
            group.start_soon(to_async(gate, limiter=name))
            await wait_until(lambda: gate.entered == 1, "the only thread taken")
            with pytest.raises(CallTimeout):
                await to_async(add, limiter=name, timeout=0.05)(1)
            stats = limiter_stats()[name]
            assert stats["timed_out"] == 1  # it timed out, waiting
            assert stats["abandoned"] == 0  # ... but never got a thread to abandon
            gate.open.set()
    assert limiter_stats()[name]["borrowed"] == 0


async def test_cancelled_caller_abandons_a_timed_call_but_keeps_its_token() -> None:
    name = fresh_name()
    gate = Gate()
    with released(gate.open):
        with anyio.move_on_after(0.05) as scope:  # an outer deadline, shorter than the call's own
            await to_async(gate, limiter=name, timeout=30)()
        assert scope.cancelled_caught
        assert limiter_stats()[name]["abandoned"] == 1
        assert limiter_stats()[name]["borrowed"] == 1
        gate.open.set()
        await wait_until(lambda: limiter_stats()[name]["borrowed"] == 0, "the abandoned thread to end")
    assert limiter_stats()[name]["abandoned"] == 0


@pytest.mark.parametrize("yields_before_cancel", range(6))
async def test_token_is_returned_exactly_once_whenever_the_cancel_comes(yields_before_cancel: int) -> None:
    # Cancel after 0..5 loop turns: before the thread is reached, while it starts,
    # while it runs. Whichever moment it is, the token comes back exactly once.
    name = fresh_name()
    ran = threading.Event()
    call = to_async(ran.set, limiter=name, timeout=30)
    async with anyio.create_task_group() as group:
        group.start_soon(call)
        for _ in range(yields_before_cancel):
            await anyio.lowlevel.checkpoint()
        group.cancel_scope.cancel()
    await wait_until(lambda: limiter_stats()[name]["borrowed"] == 0, "the token to come back")
    await anyio.sleep(0.02)
    stats = limiter_stats()[name]
    assert stats["borrowed"] == 0
    assert stats["abandoned"] == 0
    assert stats["timed_out"] == 0  # cancelled from outside: not a timeout


async def test_abandoned_thread_ending_after_the_loop_closed_does_not_fail() -> None:
    # A fresh loop in a thread of its own: the call is abandoned, the loop ends, then the thread ends.
    name = fresh_name()
    gate = Gate()
    outcome: list[BaseException] = []

    async def main() -> None:
        try:
            await to_async(gate, limiter=name, timeout=0.05)()
        except CallTimeout as error:
            outcome.append(error)

    def script() -> None:
        anyio.run(main)

    with released(gate.open):
        await anyio.to_thread.run_sync(script)
        assert len(outcome) == 1
        assert limiter_stats()[name]["abandoned"] == 1
        gate.open.set()
        await wait_until(lambda: limiter_stats()[name]["abandoned"] == 0, "the late thread to finish")


# -- validation ------------------------------------------------------------------------


@pytest.mark.parametrize("limiter", ["", 0, -1, True, 2.5, object()])
def test_bad_limiter_is_a_configuration_error(limiter: Any) -> None:
    with pytest.raises(ConfigurationError, match="limiter"):
        to_async(add, limiter=limiter)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "5"])
def test_bad_timeout_is_a_configuration_error(timeout: Any) -> None:
    with pytest.raises(ConfigurationError, match="timeout must be a number of seconds"):
        to_async(add, timeout=timeout)


def test_async_callables_are_refused() -> None:
    async def already_async() -> None:
        pass

    class AsyncCallable:
        async def __call__(self) -> None:
            pass

    with pytest.raises(ConfigurationError, match="already async"):
        to_async(already_async)
    with pytest.raises(ConfigurationError, match="already async"):
        to_async(AsyncCallable())


def test_partials_of_async_functions_are_refused_too() -> None:
    with pytest.raises(ConfigurationError, match="already async"):
        to_async(functools.partial(double_later, 1))


def test_non_callable_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="wraps a callable"):
        to_async(42)  # type: ignore[call-overload]


@pytest.mark.parametrize(("name", "total"), [("", 3), (3, 3), ("db", 0), ("db", True), ("db", 1.5)])
def test_bad_configure_limiter_is_a_configuration_error(name: Any, total: Any) -> None:
    with pytest.raises(ConfigurationError):
        configure_limiter(name, total)


# -- run_sync ----------------------------------------------------------------------------


async def double_later(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x * 2


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_run_sync_from_a_script(backend: Any) -> None:
    assert run_sync(double_later, 21, backend=backend) == 42


def test_run_sync_rejects_an_unknown_backend() -> None:
    with pytest.raises(ConfigurationError, match="backend"):
        run_sync(double_later, 1, backend="curio")  # type: ignore[arg-type]


async def test_run_sync_from_a_worker_thread_calls_back_into_the_loop() -> None:
    loop_thread = threading.get_ident()

    async def where() -> tuple[int, str | None]:
        return threading.get_ident(), REQUEST_ID.get()

    def in_thread() -> tuple[int, str | None]:
        return run_sync(where)

    token = REQUEST_ID.set("from-loop")
    try:
        thread_id, request_id = await to_async(in_thread)()
        timed_thread_id, _ = await to_async(in_thread, timeout=5)()
    finally:
        REQUEST_ID.reset(token)
    assert thread_id == loop_thread
    assert timed_thread_id == loop_thread
    assert request_id == "from-loop"


async def test_run_sync_with_a_token_from_a_plain_thread() -> None:
    token = anyio.lowlevel.current_token()
    results: list[int] = []
    thread = threading.Thread(target=lambda: results.append(run_sync(double_later, 5, token=token)))
    thread.start()
    await anyio.to_thread.run_sync(thread.join, 10.0)
    assert results == [10]


async def test_run_sync_in_the_loop_thread_is_refused() -> None:
    with pytest.raises(RuntimeError, match="await the coroutine instead"):
        run_sync(double_later, 1)


async def test_run_sync_does_not_rerun_a_coroutine_that_raised_no_event_loop() -> None:
    calls: list[int] = []

    async def raises() -> None:
        calls.append(1)
        raise anyio.NoEventLoopError("from inside the coroutine")

    with pytest.raises(anyio.NoEventLoopError, match="from inside"):
        await to_async(run_sync)(raises)
    assert calls == [1]


# -- AsyncWrapper ----------------------------------------------------------------------


class Client:
    """A sync client of the kind AsyncWrapper is for."""

    class Error(Exception):
        pass

    def __init__(self) -> None:
        self.host = "db.internal"
        self._secret = "s3cret"
        self.threads: list[int] = []
        self.entered = 0
        self.exited: list[type[BaseException] | None] = []

    def get(self, key: str, *, default: str = "") -> str:
        self.threads.append(threading.get_ident())
        return f"{key}@{self.host}" if key else default

    def fail(self) -> None:
        raise Client.Error("down")

    async def ping(self) -> str:
        return "pong"

    def __enter__(self) -> Client:
        self.entered += 1
        self.threads.append(threading.get_ident())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.exited.append(exc_type)
        return exc_type is Client.Error  # swallows its own errors only


async def test_async_wrapper_runs_methods_in_threads() -> None:
    client = Client()
    wrapper = AsyncWrapper(client)
    assert await wrapper.get("k") == "k@db.internal"
    assert await wrapper.get("", default="none") == "none"
    assert client.threads[0] != threading.get_ident()
    with pytest.raises(Client.Error):
        await wrapper.fail()


async def test_async_wrapper_plain_attributes_and_existing_async_methods() -> None:
    client = Client()
    wrapper = AsyncWrapper(client)
    assert wrapper.host == "db.internal"
    assert wrapper._secret == "s3cret"
    assert wrapper.Error is Client.Error  # a class is not a method
    assert await wrapper.ping() == "pong"  # already async: returned as is
    wrapper.host = "replica.internal"
    assert client.host == "replica.internal"
    assert wrapper.wrapped is client
    assert "get" in dir(wrapper)
    assert repr(wrapper).startswith("AsyncWrapper(")
    with pytest.raises(AttributeError):
        _ = wrapper.missing


async def test_async_wrapper_uses_its_limiter_and_timeout() -> None:
    name = fresh_name()
    gate = Gate()

    class Slow:
        def wait(self) -> int:
            return gate()

    wrapper = AsyncWrapper(Slow(), limiter=name, timeout=0.05)
    with released(gate.open):
        with pytest.raises(CallTimeout):
            await wrapper.wait()
        assert limiter_stats()[name]["abandoned"] == 1
        gate.open.set()
        await wait_until(lambda: limiter_stats()[name]["borrowed"] == 0, "the abandoned thread to end")


async def test_async_wrapper_as_a_context_manager() -> None:
    client = Client()
    async with AsyncWrapper(client) as wrapped:
        assert isinstance(wrapped, AsyncWrapper)  # __enter__ returned the object: you get the wrapper back
        assert await wrapped.get("x") == "x@db.internal"
    assert client.entered == 1
    assert client.exited == [None]
    assert client.threads[0] != threading.get_ident()

    async with AsyncWrapper(client):
        raise Client.Error("swallowed by __exit__")

    with pytest.raises(KeyError):
        async with AsyncWrapper(client):
            raise KeyError("not swallowed")
    assert client.exited == [None, Client.Error, KeyError]


async def test_async_wrapper_context_manager_returning_another_object() -> None:
    class Connection:
        def __init__(self) -> None:
            self.cursor = Client()
            self.closed = False

        def __enter__(self) -> Client:
            return self.cursor

        def __exit__(self, *exc_info: object) -> None:
            self.closed = True

    connection = Connection()
    async with AsyncWrapper(connection) as cursor:
        assert cursor is connection.cursor  # what __enter__ returned, as is
        assert connection.closed is False
    assert connection.closed is True


async def test_async_wrapper_of_a_non_context_manager_says_so() -> None:
    with pytest.raises(TypeError, match="not a context manager"):
        async with AsyncWrapper(object()):
            pass  # pragma: no cover


# -- gather_limited ----------------------------------------------------------------------


async def test_gather_limited_keeps_order() -> None:
    async def late(i: int) -> int:
        await anyio.sleep((10 - i) * 0.002)  # later calls finish first
        return i

    assert await gather_limited(*(late(i) for i in range(10)), limit=4) == list(range(10))
    assert await gather_limited(limit=3) == []


async def test_gather_limited_bounds_concurrency() -> None:
    running = 0
    most = 0

    async def tracked(i: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await anyio.sleep(0.005)
        running -= 1
        return i

    assert await gather_limited(*(tracked(i) for i in range(20)), limit=3) == list(range(20))
    assert most == 3


async def test_gather_limited_accepts_awaitables_async_and_sync_callables() -> None:
    loop_thread = threading.get_ident()

    async def coro_fn() -> str:
        return "async callable"

    def sync_fn() -> int:
        return threading.get_ident()

    calls: list[Any] = [
        functools.partial(double_later, 3),  # an async callable: called in the loop
        double_later(1),
        coro_fn,
        sync_fn,
        lambda: double_later(4),  # a sync callable returning an awaitable
    ]
    results = await gather_limited(*calls, limit=2)
    assert results[:3] == [6, 2, "async callable"]
    assert results[3] != loop_thread
    assert results[4] == 8


async def test_gather_limited_cancels_the_rest_on_error() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def slow(i: int) -> int:
        started.append(i)
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.append(i)
            raise
        return i  # pragma: no cover

    async def boom() -> int:
        await anyio.sleep(0.01)
        raise ValueError("boom")

    never: list[int] = []
    calls: list[Any] = [slow(0), slow(1), boom(), *(slow(i) for i in range(3, 9)), lambda: never.append(1)]
    with anyio.fail_after(10):  # "did not hang" bound
        with pytest.raises(ValueError, match="boom"):  # the error itself, not an exception group
            await gather_limited(*calls, limit=3)
    assert sorted(started) == [0, 1]
    assert sorted(cancelled) == [0, 1]
    assert never == []
    # The unstarted coroutines were closed (else Python warns "never awaited", an error here).
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in calls if inspect.iscoroutine(c))


async def test_gather_limited_return_exceptions() -> None:
    async def maybe(i: int) -> int:
        if i % 2:
            raise ValueError(i)
        return i

    results = await gather_limited(*(maybe(i) for i in range(5)), limit=2, return_exceptions=True)
    assert [r if isinstance(r, int) else ("error", r.args[0]) for r in results] == [
        0,
        ("error", 1),
        2,
        ("error", 3),
        4,
    ]


async def test_gather_limited_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="awaitables or callables"):
        await gather_limited(42, limit=1)  # type: ignore[call-overload]
    for bad in (0, -1, True):
        with pytest.raises(ConfigurationError, match="limit"):
            await gather_limited(double_later(1), limit=bad)


# -- packaging -------------------------------------------------------------------------


def test_import_loads_neither_starlette_nor_limits() -> None:
    code = (
        "import sys, hardenkit.aio\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'limits', 'redis'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "aio_example.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "timed out: CallTimeout" in out.stdout
    assert "'borrowed': 0" in out.stdout
    assert "request id in thread: demo-1" in out.stdout
