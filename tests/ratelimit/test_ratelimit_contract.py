"""Acceptance review of issue 3 (rate limiter), sentence by sentence, through the public API only.

Each test names the promise of the issue it checks. Everything here is black-box: the
middleware is built the way the issue spells its options and observed from outside
(status codes, headers, bodies, log records, the health component).
"""

from __future__ import annotations

import logging
import math
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

import hardenkit as hk
from support import RedisServer, asgi_request

QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
RATELIMIT_HEADERS = (
    "ratelimit",
    "ratelimit-policy",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)
STREAM = [b"part-%03d|" % i for i in range(40)]


async def _stream() -> AsyncIterator[bytes]:
    for chunk in STREAM:
        yield chunk


async def _ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


def app_with_routes(tmp_path: Path | None = None) -> Starlette:
    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def login(request: Request) -> Response:
        good = request.query_params.get("password") == "right"
        return PlainTextResponse("in" if good else "no", status_code=200 if good else 401)

    async def stream(request: Request) -> Response:
        return StreamingResponse(_stream(), media_type="text/plain")

    async def file(request: Request) -> Response:
        assert tmp_path is not None
        return FileResponse(tmp_path / "data.bin")

    return Starlette(
        routes=[
            Route("/login", login, methods=["POST"]),
            Route("/stream", stream),
            Route("/file", file),
            WebSocketRoute("/ws/{name}", _ws),
            Route("/{path:path}", ok, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )


def limited(tmp_path: Path | None = None, **options: Any) -> TestClient:
    app = app_with_routes(tmp_path)
    app.add_middleware(hk.RateLimitMiddleware, **options)
    return TestClient(app)


def statuses(client: TestClient, path: str, n: int, *, method: str = "GET", **kw: Any) -> list[int]:
    return [client.request(method, path, **kw).status_code for _ in range(n)]


def dead_redis_url() -> str:
    """A redis:// URL where nothing listens (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


# -- "Build hk.RateLimitMiddleware (pure ASGI, registered in the kit's rate-limit slot)" ------------


def test_public_name_and_kit_slot() -> None:
    assert hk.RateLimitMiddleware.hardenkit_slot == "ratelimit"
    app = hk.harden(Starlette(), env=False)
    client = TestClient(app)
    # harden() uses the limiter with memory storage by default.
    response = client.get("/anything")
    assert response.headers["ratelimit-policy"] == '"default";q=100;w=60'


@pytest.mark.anyio
async def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    middleware = hk.RateLimitMiddleware(app, default="1/minute")
    await middleware({"type": "lifespan"}, _never, _ignore)
    await middleware({"type": "lifespan"}, _never, _ignore)
    assert seen == ["lifespan", "lifespan"]


async def _never() -> dict[str, Any]:
    await anyio.sleep_forever()
    raise AssertionError  # pragma: no cover


async def _ignore(message: Any) -> None:
    return None


# -- default="100/minute" ----------------------------------------------------------------------------


def test_default_is_100_per_minute_with_exact_headers_then_429() -> None:
    client = limited()
    first = client.get("/x")
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == '"default";q=100;w=60'
    match = re.fullmatch(r'"default";r=(\d+);t=(\d+)', first.headers["ratelimit"])
    assert match is not None, first.headers["ratelimit"]
    assert int(match.group(1)) == 99
    assert 0 < int(match.group(2)) <= 60
    assert first.headers["x-ratelimit-limit"] == "100"
    assert first.headers["x-ratelimit-remaining"] == "99"
    reset = int(first.headers["x-ratelimit-reset"])
    assert time.time() - 5 < reset <= time.time() + 61  # a Unix time
    assert statuses(client, "/x", 99) == [200] * 99
    refused = client.get("/x")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    retry = int(refused.headers["retry-after"])
    assert 0 < retry <= 60
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert re.fullmatch(r'"default";r=0;t=\d+', refused.headers["ratelimit"])
    body = refused.json()
    assert body["type"] == QUOTA_EXCEEDED
    assert body["status"] == 429
    assert body["violated-policies"] == ["default"]
    assert body["retry-after"] == retry


@pytest.mark.parametrize(
    "default",
    [["3/minute", "10/hour"], "3/minute;10/hour", "3 per minute; 10 per hour", "10/hour,3/minute"],
)
def test_default_accepts_lists_and_several_limits_in_one_string(default: str | list[str]) -> None:
    client = limited(default=default)
    assert statuses(client, "/", 4) == [200, 200, 200, 429]
    policy = client.get("/").headers["ratelimit-policy"]
    assert "q=3;w=60" in policy and "q=10;w=3600" in policy


def test_default_none_limits_nothing() -> None:
    client = limited(default=None)
    responses = [client.get("/") for _ in range(150)]
    assert {r.status_code for r in responses} == {200}
    assert not any(name in responses[-1].headers for name in RATELIMIT_HEADERS)


# -- policies and rules ------------------------------------------------------------------------


def issue_rules_client() -> TestClient:
    return limited(
        default="5/minute",
        policies={"webhook": "3/minute", "ai": "2/minute", "export": "1/minute"},
        rules=[("/webhooks/*", "webhook"), ("POST /ai/*", "ai"), ("/export/{name}", "export")],
    )


def test_rules_from_the_issue_pick_their_policies() -> None:
    client = issue_rules_client()
    assert statuses(client, "/webhooks/github", 4, method="POST") == [200, 200, 200, 429]
    assert client.get("/webhooks/github").headers["ratelimit-policy"] == '"webhook";q=3;w=60'
    assert statuses(client, "/ai/chat", 3, method="POST") == [200, 200, 429]
    assert client.post("/ai/chat").json()["violated-policies"] == ["ai"]
    # Method optional in a rule: GET /ai/... matches no rule, so the default policy applies.
    get_ai = client.get("/ai/chat")
    assert get_ai.status_code == 200
    assert get_ai.headers["ratelimit-policy"] == '"default";q=5;w=60'
    # A starlette path pattern: one segment for {name}.
    assert statuses(client, "/export/report", 2) == [200, 429]
    deeper = client.get("/export/report/2024")
    assert deeper.headers["ratelimit-policy"] == '"default";q=5;w=60'


def test_first_matching_rule_wins_and_rules_may_exempt_or_carry_a_limit() -> None:
    client = limited(
        default="2/minute",
        policies={"strict": "1/minute"},
        rules=[
            ("/a/*", "strict"),
            ("/a/b", None),  # never reached: /a/* matches first
            ("/internal/*", None),
            ("GET /search", "3/minute"),
            ("/both", "default"),
        ],
    )
    assert statuses(client, "/a/b", 2) == [200, 429]
    internal = [client.get("/internal/metrics") for _ in range(10)]
    assert {r.status_code for r in internal} == {200}
    assert not any(name in internal[0].headers for name in RATELIMIT_HEADERS)
    assert statuses(client, "/search", 4) == [200, 200, 200, 429]
    assert "q=3;w=60" in client.get("/search").headers["ratelimit-policy"]


def test_glob_rules_with_methods_lists() -> None:
    client = limited(default=None, rules=[("PUT,DELETE /items/*", "1/minute")])
    assert statuses(client, "/items/1", 2, method="PUT") == [200, 429]
    assert statuses(client, "/items/1", 1, method="DELETE") == [429]  # one bucket per policy and client
    assert statuses(client, "/items/1", 3) == [200, 200, 200]


# -- key -----------------------------------------------------------------------------------


def test_key_ip_is_the_default_and_clients_are_isolated() -> None:
    app = app_with_routes()
    app.add_middleware(hk.RateLimitMiddleware, default="2/minute")
    one = TestClient(app, client=("198.51.100.1", 1000))
    two = TestClient(app, client=("198.51.100.2", 1000))
    assert statuses(one, "/", 3) == [200, 200, 429]
    assert statuses(two, "/", 2) == [200, 200]
    # Another port of the same address is the same client.
    assert TestClient(app, client=("198.51.100.1", 2000)).get("/").status_code == 429


def test_key_header_limits_per_api_key() -> None:
    client = limited(default="2/minute", key="header:X-API-Key")
    assert statuses(client, "/", 3, headers={"X-API-Key": "alpha"}) == [200, 200, 429]
    assert statuses(client, "/", 2, headers={"X-API-Key": "beta"}) == [200, 200]
    # Without the header the address is the key: no way around the limit.
    assert statuses(client, "/", 3) == [200, 200, 429]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_key_callable_sync_or_async_and_none_exempts(kind: str) -> None:
    def pick(scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"x-user":
                user = value.decode()
                return None if user == "admin" else user
        return "anonymous"

    async def apick(scope: Scope) -> str | None:
        return pick(scope)

    client = limited(default="1/minute", key=pick if kind == "sync" else apick)
    assert statuses(client, "/", 2, headers={"X-User": "ann"}) == [200, 429]
    assert statuses(client, "/", 2, headers={"X-User": "bob"}) == [200, 429]
    assert statuses(client, "/", 5, headers={"X-User": "admin"}) == [200] * 5
    assert statuses(client, "/", 2) == [200, 429]


# -- trusted_proxies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    [{"X-Forwarded-For": "1.1.1.1"}, {"Forwarded": "for=1.1.1.1"}, {"X-Real-IP": "1.1.1.1"}],
)
def test_forged_forwarding_headers_change_nothing_without_trusted_proxies(forged: dict[str, str]) -> None:
    app = app_with_routes()
    app.add_middleware(hk.RateLimitMiddleware, default="1/minute")
    client = TestClient(app, client=("203.0.113.9", 1))
    assert client.get("/").status_code == 200
    assert client.get("/", headers=forged).status_code == 429
    other = dict.fromkeys(forged, "2.2.2.2") if "Forwarded" not in forged else {"Forwarded": "for=2.2.2.2"}
    assert client.get("/", headers=other).status_code == 429


def test_with_trusted_proxies_the_right_most_untrusted_address_is_the_client() -> None:
    app = app_with_routes()
    app.add_middleware(hk.RateLimitMiddleware, default="1/minute", trusted_proxies=["10.0.0.0/8"])
    lb = TestClient(app, client=("10.1.2.3", 1))
    # The client forged the left entry; the proxies appended the real client and themselves.
    xff = {"X-Forwarded-For": "9.9.9.9, 198.51.100.20, 10.0.0.5"}
    assert lb.get("/", headers=xff).status_code == 200
    assert lb.get("/", headers={"X-Forwarded-For": "8.8.8.8, 198.51.100.20"}).status_code == 429
    assert lb.get("/", headers={"X-Forwarded-For": "198.51.100.21"}).status_code == 200
    # A peer that is not a trusted proxy cannot name a client.
    direct = TestClient(app, client=("203.0.113.50", 1))
    assert direct.get("/", headers={"X-Forwarded-For": "198.51.100.99"}).status_code == 200
    assert direct.get("/", headers={"X-Forwarded-For": "198.51.100.98"}).status_code == 429


def test_with_trusted_proxies_the_forwarded_header_is_used_too() -> None:
    # The issue: "only then are `Forwarded` / `X-Forwarded-For` used".
    app = app_with_routes()
    app.add_middleware(hk.RateLimitMiddleware, default="1/minute", trusted_proxies=["10.0.0.0/8"])
    lb = TestClient(app, client=("10.1.2.3", 1))
    assert lb.get("/", headers={"Forwarded": 'for="198.51.100.30:1234";proto=https'}).status_code == 200
    assert lb.get("/", headers={"Forwarded": "for=198.51.100.30, for=10.0.0.7"}).status_code == 429
    assert lb.get("/", headers={"Forwarded": "for=198.51.100.31"}).status_code == 200
    assert lb.get("/", headers={"Forwarded": 'for="[2001:db8::1]"'}).status_code == 200


# -- storage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "redis://127.0.0.1:6399/0",
        "rediss://127.0.0.1:6399/0",
        "redis+cluster://127.0.0.1:6399",
        "redis+sentinel://127.0.0.1:26399/mymaster",
        "valkey://127.0.0.1:6399",
    ],
)
def test_network_storage_uris_are_accepted_without_connecting(uri: str) -> None:
    middleware = hk.RateLimitMiddleware(app_with_routes(), storage=uri)
    assert middleware is not None


def test_a_storage_without_its_client_library_names_what_to_install() -> None:
    import importlib.util

    if importlib.util.find_spec("memcachio") is None:
        with pytest.raises(hk.ConfigurationError, match="pip install memcachio"):
            hk.RateLimitMiddleware(app_with_routes(), storage="memcached://127.0.0.1:11299")
    else:  # pragma: no cover - depends on the environment
        hk.RateLimitMiddleware(app_with_routes(), storage="memcached://127.0.0.1:11299")


@pytest.mark.parametrize("strategy", ["sliding-window", "fixed-window", "moving-window"])
def test_each_strategy_admits_the_limit_then_refuses(strategy: str) -> None:
    client = limited(default="3/minute", strategy=strategy)
    assert statuses(client, "/", 5) == [200, 200, 200, 429, 429]
    refused = client.get("/")
    assert 0 < int(refused.headers["retry-after"]) <= 60


def wait_for_fresh_second() -> None:
    now = time.time()
    if now - math.floor(now) > 0.3:
        time.sleep(math.ceil(now) - now + 0.02)


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window"])
def test_the_limit_resets_after_the_window(strategy: str) -> None:
    client = limited(default="2/second", strategy=strategy)
    for _attempt in range(3):  # a loaded machine may cross a window boundary: retry
        wait_for_fresh_second()
        got = statuses(client, "/", 3)
        if got == [200, 200, 429]:
            break
    else:
        pytest.fail(f"never saw the limit apply: {got}")
    retry = int(client.get("/").headers.get("retry-after", "1"))
    assert 1 <= retry <= 2
    time.sleep(retry + 0.05)
    assert client.get("/").status_code == 200


# -- on_storage_error (unreachable storage) ---------------------------------------------------


@pytest.mark.parametrize("mode", ["allow", "deny", "memory"])
def test_unreachable_storage_behaves_as_each_mode_says_and_logs_once(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hardenkit")
    client = limited(default="2/minute", storage=dead_redis_url(), on_storage_error=mode, storage_timeout=2)
    got = [client.get("/") for _ in range(5)]
    codes = [r.status_code for r in got]
    assert 500 not in codes
    if mode == "allow":
        assert codes == [200] * 5
    elif mode == "deny":
        assert codes == [503] * 5
        assert got[0].headers["content-type"] == "application/problem+json"
        assert int(got[0].headers["retry-after"]) >= 1
    else:
        assert codes == [200, 200, 429, 429, 429]
        assert got[2].headers["content-type"] == "application/problem+json"
    outage_lines = [
        r for r in caplog.records if r.name.startswith("hardenkit") and r.levelno >= logging.WARNING
    ]
    assert len(outage_lines) == 1, [r.getMessage() for r in outage_lines]


def test_default_on_storage_error_keeps_limiting() -> None:
    client = limited(default="1/minute", storage=dead_redis_url(), storage_timeout=2)
    assert statuses(client, "/", 2) == [200, 429]


def test_readiness_warns_while_the_storage_is_degraded() -> None:
    app = hk.harden(
        Starlette(),
        env=False,
        health={"cache_ttl": 0},
        ratelimit={"default": "5/minute", "storage": dead_redis_url()},
    )
    with TestClient(app) as client:
        assert client.get("/livez").status_code == 200
        healthy = client.get("/healthz")
        assert healthy.json()["status"] == "pass"  # not degraded before any request
        assert client.get("/x").status_code == 404
        ready = client.get("/readyz")
        assert ready.status_code == 200  # degraded, not down
        assert ready.json()["status"] == "warn"
        assert "ratelimit" in client.get("/healthz").text


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_killed_and_restarted_each_mode_no_500_one_line_each_way(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hardenkit")

    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    apps = {
        mode: hk.RateLimitMiddleware(
            ok, default="3 per 100 days", storage=redis_server.url, on_storage_error=mode, key_prefix=mode
        )
        for mode in ("allow", "deny", "memory")
    }

    async def hit(mode: str, n: int) -> list[int]:
        return [(await asgi_request(apps[mode], client=("192.0.2.1", 1))).status for _ in range(n)]

    try:
        for mode in apps:
            assert await hit(mode, 1) == [200]
        redis_server.stop()
        assert await hit("allow", 5) == [200] * 5
        assert await hit("deny", 5) == [503] * 5
        # Per-process limits meanwhile, carrying on from the last count Redis gave (1 of 3
        # used): a fallback never grants more than what was left.
        assert await hit("memory", 5) == [200, 200, 429, 429, 429]
        redis_server.start()

        def recovered() -> int:
            return sum("reachable again" in r.getMessage() for r in caplog.records)

        # Recovery: the back-off lets one probe through within a few seconds; then each
        # limiter counts in Redis again (the restarted server starts empty: 3 more).
        with anyio.fail_after(30):
            for mode in ("allow", "deny"):
                while 429 not in await hit(mode, 1):
                    await anyio.sleep(0.05)
            while recovered() < 3:
                assert (await hit("memory", 1))[0] in (200, 429)
                await anyio.sleep(0.05)
    finally:
        for app in apps.values():
            await app.aclose()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("hardenkit")]
    assert sum("unreachable" in line for line in lines) == 3, lines  # one per outage and limiter
    assert recovered() == 3, lines
    assert len(lines) == 6, lines


# -- exempt_paths, allow, overrides, cost, count_when -------------------------------------------


def test_exempt_paths_are_never_limited() -> None:
    client = limited(default="1/minute", exempt_paths=["/metrics", "/static/*"])
    assert statuses(client, "/metrics", 3) == [200] * 3
    assert statuses(client, "/static/app.js", 3) == [200] * 3
    assert statuses(client, "/", 2) == [200, 429]


def test_allow_lets_networks_and_keys_through() -> None:
    app = app_with_routes()
    app.add_middleware(
        hk.RateLimitMiddleware, default="1/minute", key="header:X-API-Key", allow=["10.0.0.0/8", "ops-tool"]
    )
    internal = TestClient(app, client=("10.9.9.9", 1))
    assert statuses(internal, "/", 4) == [200] * 4
    outside = TestClient(app, client=("203.0.113.1", 1))
    assert statuses(outside, "/", 4, headers={"X-API-Key": "ops-tool"}) == [200] * 4
    assert statuses(outside, "/", 2, headers={"X-API-Key": "someone"}) == [200, 429]


def test_overrides_give_named_clients_their_own_limits() -> None:
    client = limited(
        default="1/minute", key="header:X-API-Key", overrides={"partner": "3/minute", "friend": None}
    )
    assert statuses(client, "/", 4, headers={"X-API-Key": "partner"}) == [200, 200, 200, 429]
    assert statuses(client, "/", 4, headers={"X-API-Key": "friend"}) == [200] * 4
    assert statuses(client, "/", 2, headers={"X-API-Key": "nobody"}) == [200, 429]


@pytest.mark.parametrize("kind", ["int", "sync", "async"])
def test_cost_int_or_callable(kind: str) -> None:
    def sync_cost(scope: Scope) -> int:
        return 5 if scope["path"].startswith("/export") else 1

    async def async_cost(scope: Scope) -> int:
        return sync_cost(scope)

    cost: Any = {"int": 5, "sync": sync_cost, "async": async_cost}[kind]
    client = limited(default="10/minute", cost=cost)
    first = client.get("/export/x")
    assert first.status_code == 200
    assert first.headers["x-ratelimit-remaining"] == "5"
    assert client.get("/export/x").status_code == 200
    assert client.get("/export/x").status_code == 429


def test_count_when_counts_only_matching_responses() -> None:
    client = limited(default="2/minute", count_when=lambda status: status == 401)
    assert statuses(client, "/login?password=right", 5, method="POST") == [200] * 5
    assert statuses(client, "/login?password=wrong", 3, method="POST") == [401, 401, 429]
    assert client.post("/login?password=right").status_code == 429


# -- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("both", set(RATELIMIT_HEADERS)),
        ("ietf", {"ratelimit", "ratelimit-policy"}),
        ("x-ratelimit", {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}),
        (None, set()),
    ],
)
def test_headers_option_and_retry_after_on_every_429(mode: str | None, expected: set[str]) -> None:
    client = limited(default="1/minute", headers=mode)
    ok = client.get("/")
    assert {name for name in RATELIMIT_HEADERS if name in ok.headers} == expected
    refused = client.get("/")
    assert refused.status_code == 429
    assert {name for name in RATELIMIT_HEADERS if name in refused.headers} == expected
    assert int(refused.headers["retry-after"]) > 0


@pytest.mark.anyio
async def test_headers_once_on_streaming_and_file_responses(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 400)
    app = app_with_routes(tmp_path)
    app.add_middleware(hk.RateLimitMiddleware, default="10/minute")
    for path, body in (("/stream", b"".join(STREAM)), ("/file", bytes(range(256)) * 400)):
        response = await asgi_request(app, path)
        assert response.status == 200
        assert response.body == body
        for name in RATELIMIT_HEADERS:
            assert response.header_count(name) == 1, (path, name)
    # Through a client too (chunked streaming, file served).
    client = TestClient(app)
    assert client.get("/stream").content == b"".join(STREAM)
    assert client.get("/file").content == bytes(range(256)) * 400


# -- the 429 and on_breach -------------------------------------------------------------------


def test_429_problem_json_carries_the_request_id_in_a_kit() -> None:
    app = hk.harden(Starlette(), env=False, ratelimit={"default": "1/minute"})
    client = TestClient(app)
    client.get("/")
    refused = client.get("/", headers={"X-Request-ID": "req-contract-1"})
    assert refused.status_code == 429
    body = refused.json()
    assert body["request_id"] == "req-contract-1"
    assert body["type"] == QUOTA_EXCEEDED
    assert body["violated-policies"] == ["default"]
    assert refused.headers["x-request-id"] == "req-contract-1"
    assert int(refused.headers["retry-after"]) == body["retry-after"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_on_breach_may_answer_or_just_alert(kind: str) -> None:
    seen: list[Any] = []

    def hook(scope: Scope, breach: Any) -> Response | None:
        seen.append(breach)
        if scope["path"] == "/custom":
            return JSONResponse({"mine": True}, status_code=429)
        return None

    async def ahook(scope: Scope, breach: Any) -> Response | None:
        return hook(scope, breach)

    client = limited(default="1/minute", on_breach=hook if kind == "sync" else ahook)
    client.get("/custom")
    custom = client.get("/custom")
    assert custom.status_code == 429 and custom.json() == {"mine": True}
    standard = client.get("/other")
    assert standard.status_code == 429
    assert standard.headers["content-type"] == "application/problem+json"
    assert len(seen) == 2
    assert isinstance(seen[0], hk.RateLimitBreach)
    assert seen[0].policy == "default" and seen[0].retry_after > 0


# -- per-endpoint limits without a request parameter ------------------------------------------


def test_per_endpoint_limit_as_a_fastapi_dependency_without_request() -> None:
    app = FastAPI()

    @app.post("/ai", dependencies=[Depends(hk.rate_limit("ai"))])
    async def ai() -> dict[str, str]:
        return {"answer": "42"}

    @app.get("/report")
    def report(_: None = Depends(hk.rate_limit("1/minute"))) -> dict[str, str]:
        return {"report": "ready"}

    app.add_middleware(hk.RateLimitMiddleware, default="100/minute", policies={"ai": "2/minute"})
    client = TestClient(app)
    assert statuses(client, "/ai", 3, method="POST") == [200, 200, 429]
    refused = client.post("/ai")
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["violated-policies"] == ["ai"]
    assert "retry-after" in refused.headers
    assert statuses(client, "/report", 2) == [200, 429]


# -- websockets ------------------------------------------------------------------------------


def test_websocket_handshakes_can_be_limited_by_a_rule() -> None:
    client = limited(default="100/minute", rules=[("/ws/*", "1/minute")])
    with client.websocket_connect("/ws/a") as ws:
        assert ws.receive_text() == "hi"
    with pytest.raises((WebSocketDenialResponse, WebSocketDisconnect)) as info:
        with client.websocket_connect("/ws/a"):
            pass  # pragma: no cover
    if isinstance(info.value, WebSocketDenialResponse):
        assert info.value.status_code == 429


def test_websockets_are_not_limited_by_the_default_policy_alone() -> None:
    client = limited(default="1/minute")
    for _ in range(3):
        with client.websocket_connect("/ws/a") as ws:
            assert ws.receive_text() == "hi"


# -- exactness under concurrency -----------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["sliding-window", "fixed-window", "moving-window"])
@pytest.mark.anyio
async def test_300_concurrent_requests_against_100_admit_exactly_100_in_memory(strategy: str) -> None:
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep(0.001)
        await PlainTextResponse("ok")(scope, receive, send)

    app = hk.RateLimitMiddleware(slow, default="100/hour", strategy=strategy)
    codes: list[int] = []

    async def one() -> None:
        codes.append((await asgi_request(app, client=("192.0.2.7", 5))).status)

    async with anyio.create_task_group() as tg:
        for _ in range(300):
            tg.start_soon(one)
    assert codes.count(200) == 100
    assert codes.count(429) == 200


@pytest.mark.redis
@pytest.mark.anyio
async def test_300_concurrent_requests_against_100_admit_exactly_100_on_redis(
    redis_server: RedisServer,
) -> None:
    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    app = hk.RateLimitMiddleware(ok, default="100/hour", storage=redis_server.url, storage_timeout=20)
    codes: list[int] = []

    async def one() -> None:
        codes.append((await asgi_request(app, client=("192.0.2.8", 5))).status)

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(300):
                tg.start_soon(one)
    finally:
        await app.aclose()
    assert codes.count(200) == 100
    assert codes.count(429) == 200


# -- configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"default": "lots"},
        {"policies": {"ai": "twenty a minute"}},
        {"rules": [("/x", "missing-policy")]},
        {"key": "cookie:session"},
        {"storage": "nowhere"},
        {"strategy": "token-bucket"},
        {"on_storage_error": "ignore"},
        {"headers": "draft"},
        {"trusted_proxies": ["not-a-network"]},
        {"cost": -1},
        {"count_when": 401},
        {"on_breach": "alert"},
    ],
)
def test_bad_options_raise_configuration_error(options: dict[str, Any]) -> None:
    with pytest.raises(hk.ConfigurationError):
        hk.RateLimitMiddleware(app_with_routes(), **options)


def test_environment_configures_the_limiter_in_a_kit() -> None:
    environ = {"HARDENKIT_RATELIMIT_DEFAULT": "2/minute", "HARDENKIT_RATELIMIT_HEADERS": "ietf"}
    app = hk.Kit.from_env(environ).register(hk.RateLimitMiddleware).install(app_with_routes())
    client = TestClient(app)
    first = client.get("/")
    assert first.headers["ratelimit-policy"] == '"default";q=2;w=60'
    assert "x-ratelimit-limit" not in first.headers
    assert statuses(client, "/", 2) == [200, 429]


def test_on_breach_taking_only_the_breach_is_an_alert_hook(caplog: pytest.LogCaptureFixture) -> None:
    alerts: list[hk.RateLimitBreach] = []
    client = limited(default="1/minute", on_breach=lambda breach: alerts.append(breach))
    client.get("/a")
    refused = client.get("/a")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert [breach.path for breach in alerts] == ["/a"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("result", [True, {"error": "slow down"}, "no"])
def test_on_breach_returning_something_else_than_a_response_gets_the_standard_429(
    result: object, caplog: pytest.LogCaptureFixture
) -> None:
    client = limited(default="1/minute", on_breach=lambda scope, breach: result)
    client.get("/")
    refused = client.get("/")
    assert refused.status_code == 429
    assert refused.json()["type"] == QUOTA_EXCEEDED
    assert any("on_breach returned" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_memory_storage_works_on_both_backends(anyio_backend: str) -> None:
    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    app = hk.RateLimitMiddleware(ok, default="50/hour")
    codes: list[int] = []

    async def one() -> None:
        codes.append((await asgi_request(app, client=("192.0.2.9", 5))).status)

    async with anyio.create_task_group() as tg:
        for _ in range(80):
            tg.start_soon(one)
    assert sorted(codes) == [200] * 50 + [429] * 30


def test_proxy_header_can_be_pinned_to_one_header() -> None:
    app = app_with_routes()
    app.add_middleware(
        hk.RateLimitMiddleware,
        default="1/minute",
        trusted_proxies=["10.0.0.0/8"],
        proxy_header="x-forwarded-for",
    )
    lb = TestClient(app, client=("10.1.2.3", 1))
    assert lb.get("/", headers={"Forwarded": "for=198.51.100.40"}).status_code == 200
    # Pinned to X-Forwarded-For: Forwarded is ignored, both requests came from the proxy itself.
    assert lb.get("/", headers={"Forwarded": "for=198.51.100.41"}).status_code == 429


def test_auto_prefers_x_forwarded_for_when_both_are_present() -> None:
    app = app_with_routes()
    app.add_middleware(hk.RateLimitMiddleware, default="1/minute", trusted_proxies=["10.0.0.0/8"])
    lb = TestClient(app, client=("10.1.2.3", 1))
    real = {"X-Forwarded-For": "198.51.100.50"}
    assert lb.get("/", headers={**real, "Forwarded": "for=1.1.1.1"}).status_code == 200
    # A client adding its own Forwarded cannot escape: X-Forwarded-For (set by the proxy) wins.
    assert lb.get("/", headers={**real, "Forwarded": "for=2.2.2.2"}).status_code == 429


def test_a_custom_429_from_on_breach_still_gets_retry_after_and_the_headers() -> None:
    def hook(scope: Scope, breach: hk.RateLimitBreach) -> Response:
        if scope["path"] == "/own":
            return JSONResponse({"error": "slow"}, status_code=429, headers={"Retry-After": "999"})
        return JSONResponse({"error": "slow"}, status_code=429)

    client = limited(default="1/minute", on_breach=hook)
    client.get("/")
    refused = client.get("/")
    assert refused.json() == {"error": "slow"}
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-policy"] == '"default";q=1;w=60'
    assert re.fullmatch(r'"default";r=0;t=\d+', refused.headers["ratelimit"])
    own = client.get("/own")
    assert own.headers["retry-after"] == "999"  # the hook's own value is kept
    assert own.headers.get_list("retry-after") == ["999"]


@pytest.mark.parametrize("option", ["key", "cost"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_key_or_cost_function_that_raises_limits_by_address_and_never_answers_500(
    option: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(scope: Scope) -> Any:
        raise RuntimeError("bug in user code")

    async def abroken(scope: Scope) -> Any:
        raise RuntimeError("bug in user code")

    options: dict[str, Any] = {option: broken if kind == "sync" else abroken}
    client = limited(default="2/minute", **options)
    assert statuses(client, "/", 3) == [200, 200, 429]
    assert any("raised" in r.getMessage() and r.exc_info for r in caplog.records)
