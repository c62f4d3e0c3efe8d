"""Bypasses and crashes found by an adversarial review (issue 11), in process with memory storage."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from limits import parse
from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

import hardenkit as hk
from hardenkit.ratelimit import RateLimitMiddleware
from hardenkit.ratelimit.engine import Window
from support import asgi_request


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("ok")(scope, receive, send)


async def request(
    app: Any,
    path: str = "/",
    *,
    method: str = "GET",
    root_path: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
    client: tuple[str, int] = ("203.0.113.9", 1),
) -> int:
    """Status of one request; ``path`` is the full path, as servers send it under a root_path."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": root_path,
        "query_string": b"", "headers": [(b"host", b"test"), *(headers or [])], "client": client,
        "server": ("test", 80),
    }  # fmt: skip
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    status: int = messages[0]["status"]
    return status


# -- 1. HEAD is served by GET endpoints, so GET rules cover it ----------------------------------


@pytest.mark.anyio
async def test_a_get_rule_also_counts_head_requests() -> None:
    app = RateLimitMiddleware(ok_app, default=None, rules=[("GET /x", "2/minute")])
    assert [await request(app, "/x", method="HEAD") for _ in range(2)] == [200, 200]
    assert await request(app, "/x") == 429  # the HEADs used the GET budget
    assert await request(app, "/x", method="HEAD") == 429


@pytest.mark.anyio
async def test_a_post_rule_does_not_count_head() -> None:
    app = RateLimitMiddleware(ok_app, default=None, rules=[("POST /x", "1/minute")])
    assert [await request(app, "/x", method="HEAD") for _ in range(3)] == [200, 200, 200]


def test_head_walks_around_nothing_in_a_starlette_app() -> None:
    async def page(request: Any) -> PlainTextResponse:
        return PlainTextResponse("page")

    app = Starlette(routes=[Route("/page", page)])
    app.add_middleware(RateLimitMiddleware, default=None, rules=[("GET /page", "1/minute")])
    with TestClient(app) as client:
        assert client.head("/page").status_code == 200
        assert client.get("/page").status_code == 429


# -- 2. root_path: rules match the path the app routes on --------------------------------------------


@pytest.mark.anyio
async def test_rules_and_exempt_paths_match_under_a_root_path() -> None:
    app = RateLimitMiddleware(
        ok_app, default="1/minute", rules=[("POST /login", "2/minute")], exempt_paths=["/public/*"]
    )
    statuses = [await request(app, "/api/login", method="POST", root_path="/api") for _ in range(3)]
    assert statuses == [200, 200, 429]  # the login rule applies behind the prefix
    assert [await request(app, "/api/public/a", root_path="/api") for _ in range(3)] == [200] * 3


@pytest.mark.anyio
async def test_a_path_outside_the_root_path_is_matched_as_it_is() -> None:
    app = RateLimitMiddleware(ok_app, default=None, rules=[("/apiary", "1/minute")])
    assert [await request(app, "/apiary", root_path="/api") for _ in range(2)] == [200, 429]


def test_rules_apply_inside_a_starlette_mount() -> None:
    async def login(request: Any) -> PlainTextResponse:
        return PlainTextResponse("in")

    inner = Starlette(routes=[Route("/login", login, methods=["POST"])])
    inner.add_middleware(RateLimitMiddleware, default=None, rules=[("POST /login", "1/minute")])
    app = Starlette(routes=[Mount("/api", app=inner)])
    with TestClient(app) as client:
        assert [client.post("/api/login").status_code for _ in range(2)] == [200, 429]


# -- 3. the memory store is bounded ---------------------------------------------------------------


def window(text: str) -> Window:
    return Window(parse(text), "default")


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window", "moving-window"])
def test_the_memory_store_never_holds_more_than_max_keys(strategy: str) -> None:
    from hardenkit.ratelimit.memory import LocalEngine

    engine = LocalEngine(strategy, max_keys=500)
    minute, day = window("5/minute"), window("50/day")
    for n in range(5_000):
        engine.decide((minute, day), "ns", f"rotating-{n}", 1, False)
        assert len(engine) <= 500


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window", "moving-window"])
def test_a_key_flood_does_not_reset_an_established_client(strategy: str) -> None:
    from hardenkit.ratelimit.memory import LocalEngine

    engine = LocalEngine(strategy, max_keys=100)
    w = window("3/day")
    assert [engine.decide((w,), "ns", "abuser", 1, False).allowed for _ in range(4)] == [True] * 3 + [False]
    for n in range(10_000):  # a client rotating keys to flush the abuser's count
        engine.decide((w,), "ns", f"fresh-{n}", 1, False)
    assert len(engine) <= 100
    assert engine.decide((w,), "ns", "abuser", 1, False).allowed is False


def test_the_store_is_capped_by_default_and_the_cap_is_an_option() -> None:
    from hardenkit.ratelimit.memory import DEFAULT_MAX_KEYS, LocalEngine

    assert LocalEngine("sliding-window").max_keys == DEFAULT_MAX_KEYS
    app = RateLimitMiddleware(ok_app, max_keys=10)
    assert app._decider.memory is not None and app._decider.memory.max_keys == 10
    for bad in (0, -1, True, 1.5, "10"):
        with pytest.raises(hk.ConfigurationError, match="max_keys"):
            RateLimitMiddleware(ok_app, max_keys=bad)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_rotating_ipv6_addresses_stay_within_the_cap() -> None:
    app = RateLimitMiddleware(ok_app, default="5/day", max_keys=200, ipv6_prefix=128)
    for n in range(1_000):
        assert await request(app, client=(f"2001:db8::{n:x}", 1)) == 200
    assert app._decider.memory is not None and len(app._decider.memory) <= 200


# -- 4. unknown keys are limited by address too ---------------------------------------------------


@pytest.mark.anyio
async def test_fresh_api_keys_from_one_address_are_limited_by_per_address() -> None:
    app = RateLimitMiddleware(ok_app, default="100/minute", key="header:X-API-Key", per_address="5/minute")
    statuses = [
        await request(app, headers=[(b"x-api-key", f"guess-{n}".encode())], client=("198.51.100.4", 1))
        for n in range(8)
    ]
    assert statuses == [200] * 5 + [429] * 3
    # Another address has its own budget.
    assert await request(app, headers=[(b"x-api-key", b"guess-x")], client=("198.51.100.5", 1)) == 200


@pytest.mark.anyio
async def test_per_address_does_not_double_count_requests_keyed_by_address() -> None:
    app = RateLimitMiddleware(ok_app, default="3/minute", key="header:X-API-Key", per_address="3/minute")
    # Without the header the address is the key: one count per request, not two.
    assert [await request(app) for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.anyio
async def test_per_address_applies_to_key_functions() -> None:
    app = RateLimitMiddleware(
        ok_app, default="100/minute", key=lambda scope: scope["path"], per_address="2/minute"
    )
    assert [await request(app, f"/k{n}") for n in range(3)] == [200, 200, 429]


def test_per_address_is_validated() -> None:
    with pytest.raises(hk.ConfigurationError, match="per_address"):
        RateLimitMiddleware(ok_app, per_address="lots")


# -- 5. a client-controlled cost ----------------------------------------------------------------------


def test_cost_is_clamped_to_what_can_change_a_decision() -> None:
    from hardenkit.ratelimit.fallback import clamp_cost

    windows = (window("10/minute"), window("100/hour"))
    assert clamp_cost(2**63, windows) == 101
    assert clamp_cost(7, windows) == 7
    assert clamp_cost(-3, windows) == 0


@pytest.mark.anyio
async def test_a_huge_cost_is_refused_not_an_error() -> None:
    app = RateLimitMiddleware(ok_app, default="10/minute", cost=lambda scope: 2**64)
    assert await request(app) == 429


def test_a_limit_larger_than_the_storages_can_count_is_refused() -> None:
    with pytest.raises(hk.ConfigurationError, match="more than the storages can count"):
        RateLimitMiddleware(ok_app, default=f"{2**40}/minute")


# -- 12. count_when sees crashes ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_count_when_counts_requests_whose_app_raises() -> None:
    async def crash(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    app = ServerErrorMiddleware(
        RateLimitMiddleware(crash, default="2/minute", count_when=lambda status: status >= 400)
    )
    statuses = []
    for _ in range(3):
        try:
            statuses.append(await request(app))
        except RuntimeError:
            statuses.append(500)  # ServerErrorMiddleware sent a 500, then re-raised
    assert statuses == [500, 500, 429]


@pytest.mark.anyio
async def test_count_when_still_skips_successes() -> None:
    app = RateLimitMiddleware(ok_app, default="1/minute", count_when=lambda status: status >= 400)
    assert [await request(app) for _ in range(3)] == [200, 200, 200]


# -- 13. on_breach returning something else than a Response -------------------------------------------


@pytest.mark.parametrize("returned", [lambda: None, PlainTextResponse, object(), "text"])
@pytest.mark.anyio
async def test_on_breach_returning_a_non_response_sends_the_standard_429(
    returned: object, caplog: pytest.LogCaptureFixture
) -> None:
    def hook(scope: Scope, breach: Any) -> Any:
        return returned  # what a mistyped hook returns at run time

    app = RateLimitMiddleware(ok_app, default="1/minute", on_breach=hook)
    assert await request(app) == 200
    response = await asgi_request(app, client=("203.0.113.9", 1))
    assert response.status == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert any("not a Response or None" in r.getMessage() for r in caplog.records)


# -- 14. cost=0 gets the same answer everywhere ----------------------------------------------------------


@pytest.mark.parametrize("strategy", ["fixed-window", "sliding-window", "moving-window"])
@pytest.mark.anyio
async def test_zero_cost_is_admitted_when_the_window_is_full(strategy: str) -> None:
    app = RateLimitMiddleware(
        ok_app, default="2/minute", strategy=strategy, cost=lambda scope: 0 if scope["path"] == "/free" else 1
    )
    assert [await request(app) for _ in range(4)] == [200, 200, 429, 429]
    assert await request(app, "/free") == 200


# -- 6. the back-off is capped ---------------------------------------------------------------------------


def test_the_outage_back_off_is_capped_at_five_seconds(caplog: pytest.LogCaptureFixture) -> None:
    from hardenkit.ratelimit.storage import MAX_BACKOFF, StorageGuard

    caplog.set_level(logging.WARNING, "hardenkit.ratelimit")
    now = [0.0]
    guard = StorageGuard(storage="redis://h/0", mode="deny", clock=lambda: now[0])
    guard.failed(ConnectionError("down"), probe=False)
    for _ in range(20):
        now[0] = guard.retry_at
        assert guard.should_try()
        guard.failed(ConnectionError("down"), probe=True)
    assert MAX_BACKOFF == 5.0 and guard.retry_in() == 5.0
    started = now[0]
    guard.succeeded()
    # A call that began during the outage and fails after it ended starts no new outage.
    guard.failed(ConnectionError("late"), probe=False, started=started)
    assert guard.healthy
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "unreachable" in messages[0] and "reachable again" in messages[1]


# -- options from the environment -------------------------------------------------------------------


def test_max_keys_and_per_address_from_the_environment() -> None:
    environ = {
        "HARDENKIT_RATELIMIT_MAX_KEYS": "50",
        "HARDENKIT_RATELIMIT_KEY": "header:X-API-Key",
        "HARDENKIT_RATELIMIT_PER_ADDRESS": "2/minute",
    }
    app = hk.Kit.from_env(environ).register(hk.RateLimitMiddleware).install(Starlette())
    with TestClient(app) as client:
        statuses = [client.get("/", headers={"X-API-Key": f"k{n}"}).status_code for n in range(3)]
    assert statuses == [404, 404, 429]


# -- what counts as an outage --------------------------------------------------------------------------


class _Failing:
    """An engine whose every call raises ``exc`` (the decider's view of a storage)."""

    bounded = True

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    async def acquire(self, *args: Any) -> Any:
        self.calls += 1
        raise self.exc

    async def aclose(self) -> None:
        return None


class _Network:
    def __init__(self, engine: _Failing) -> None:
        self.engine = engine

    def current(self) -> _Failing:
        return self.engine


def decider(exc: Exception, mode: str) -> Any:
    from hardenkit.ratelimit.fallback import Decider
    from hardenkit.ratelimit.memory import LocalEngine
    from hardenkit.ratelimit.storage import StorageGuard

    engine = _Failing(exc)
    guard = StorageGuard(storage="redis://h/0", mode=mode)
    made = Decider(
        guard=guard,
        mode=mode,
        timeout=0.5,
        network=_Network(engine),  # type: ignore[arg-type]
        local=LocalEngine("fixed-window"),
    )
    return made, engine, guard


@pytest.mark.parametrize("mode", ["allow", "deny", "memory"])
@pytest.mark.anyio
async def test_a_busy_pool_answers_that_request_alone_and_starts_no_outage(mode: str) -> None:
    from hardenkit.ratelimit.scripts import StorageBusy

    made, engine, guard = decider(StorageBusy("no connection free"), mode)
    w = window("1/minute")
    decision = await made.decide((w,), "ns", "c", 1, False)
    assert guard.healthy and engine.calls == 1  # not retried: it already waited its turn
    if mode == "deny":
        assert decision is None
    else:
        assert decision is not None and decision.allowed


@pytest.mark.anyio
async def test_a_request_error_is_counted_locally_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    class ResponseError(Exception):  # what redis-py and valkey raise for an error reply
        pass

    made, engine, guard = decider(ResponseError("ERR Error running script: bad number"), "allow")
    w = window("2/minute")
    allowed = [(await made.decide((w,), "ns", "c", 1, False)).allowed for _ in range(3)]
    assert allowed == [True, True, False]  # limited in this process, not let through
    assert guard.healthy and engine.calls == 3
    assert len([r for r in caplog.records if "refused one request" in r.getMessage()]) == 1


@pytest.mark.anyio
async def test_a_connection_error_is_retried_once_then_is_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    made, engine, guard = decider(ConnectionError("refused"), "deny")
    assert await made.decide((window("2/minute"),), "ns", "c", 1, False) is None
    assert engine.calls == 2 and not guard.healthy
    assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1


def test_transient_replies_are_not_request_errors() -> None:
    from hardenkit.ratelimit.fallback import is_request_error

    class ResponseError(Exception):
        pass

    for reply in ("MOVED 3999 127.0.0.1:6381", "READONLY You can't write", "LOADING", "CLUSTERDOWN x"):
        assert not is_request_error(ResponseError(reply))
    assert is_request_error(ResponseError("WRONGTYPE Operation against a key"))
    assert is_request_error(ValueError("bad reply"))

    class DataError(Exception):  # redis-py: arguments it cannot encode
        pass

    assert is_request_error(DataError("Invalid input of type"))
    assert not is_request_error(ConnectionError("reset"))
    assert not is_request_error(TimeoutError())


# -- the moving window's log stays small for large limits ------------------------------------------


def test_a_burst_against_a_large_moving_window_limit_keeps_a_small_log() -> None:
    from hardenkit.ratelimit.engine import MOVING_RESOLUTION
    from hardenkit.ratelimit.memory import LocalEngine

    now = [1_000_000.0]
    engine = LocalEngine("moving-window", clock=lambda: now[0])
    w = window("100000/hour")
    for n in range(20_000):
        now[0] += 0.0001 * (n % 7)  # a burst, with a few distinct times
        assert engine.decide((w,), "ns", "c", 1, False).allowed
    entry = next(iter(engine._gens[3600].current.values()))
    assert entry[1] == 20_000  # every unit is counted ...
    assert len(entry[0]) <= MOVING_RESOLUTION + 1  # ... in a bounded log


def test_large_moving_window_limits_free_units_late_never_early() -> None:
    from hardenkit.ratelimit.memory import LocalEngine

    now = [1_000_000.0]
    engine = LocalEngine("moving-window", clock=lambda: now[0])
    w = window("1000/10 seconds")
    for _ in range(1000):
        assert engine.decide((w,), "ns", "c", 1, False).allowed
    refused = engine.decide((w,), "ns", "c", 1, False)
    assert not refused.allowed
    wait = refused.stats[0].reset_in
    assert 10.0 <= wait <= 10.0 + 10 / 512 + 1e-9  # recorded up to 1/512 of the window late
    now[0] += wait - 0.001
    assert not engine.decide((w,), "ns", "c", 1, True).allowed  # not early
    now[0] += 0.001
    assert engine.decide((w,), "ns", "c", 1, True).allowed  # and honest
