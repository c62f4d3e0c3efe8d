"""RateLimitMiddleware with the in-process memory storage (Redis lives in integration/)."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

import hardenkit as hk
from hardenkit._core.kit import Kit, Wiring
from hardenkit.errors import ConfigurationError
from hardenkit.headers import REQUEST_ID
from hardenkit.ratelimit import (
    QUOTA_EXCEEDED,
    RateLimitBreach,
    RateLimitExceeded,
    RateLimitMiddleware,
    rate_limit,
)
from support import asgi_request

STREAM_CHUNKS = [b"chunk-%d;" % i for i in range(50)]


async def _stream() -> AsyncIterator[bytes]:
    for chunk in STREAM_CHUNKS:
        yield chunk


async def _ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def make_app(tmp_path: Path | None = None) -> Starlette:
    async def plain(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def login(request: Request) -> Response:
        status = 401 if request.query_params.get("password") != "right" else 200
        return PlainTextResponse("login", status_code=status)

    async def stream(request: Request) -> Response:
        return StreamingResponse(_stream(), media_type="text/plain")

    async def file(request: Request) -> Response:
        assert tmp_path is not None
        path = tmp_path / "data.bin"
        return FileResponse(path)

    async def own_headers(request: Request) -> Response:
        return PlainTextResponse("own", headers={"RateLimit": "bogus", "X-RateLimit-Limit": "9"})

    return Starlette(
        routes=[
            Route("/", plain),
            Route("/other", plain),
            Route("/login", login, methods=["POST"]),
            Route("/ai/{name}", plain, methods=["GET", "POST"]),
            Route("/webhooks/{name:path}", plain, methods=["POST"]),
            Route("/export/{name}", plain),
            Route("/health", plain),
            Route("/stream", stream),
            Route("/file", file),
            Route("/own", own_headers),
            WebSocketRoute("/ws", _ws),
        ]
    )


def start_of_a_second() -> None:
    """Sleep to just after the next whole second, so a 1-second window is all ahead.

    Windows are clock-aligned; a test that counts requests in a 1-second window must
    not straddle a boundary.
    """
    now = time.time()
    time.sleep(math.ceil(now) - now + 0.01)


def client_for(app: ASGIApp, ip: str = "203.0.113.7") -> TestClient:
    return TestClient(app, client=(ip, 50000))


def limited(**options: Any) -> RateLimitMiddleware:
    options.setdefault("strategy", "fixed-window")
    return RateLimitMiddleware(make_app(), **options)


# -- a tiny ASGI driver for concurrent and raw tests ------------------------------------------


async def call(
    app: ASGIApp,
    path: str = "/",
    *,
    method: str = "GET",
    client: tuple[str, int] | None = ("203.0.113.7", 1234),
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> tuple[int, dict[str, str], bytes]:
    response = await asgi_request(
        app, path, method=method, client=client, headers=[(b"host", b"test"), *headers]
    )
    for name in ("ratelimit", "ratelimit-policy", "x-ratelimit-limit", "retry-after"):
        assert response.header_count(name) <= 1, f"{name} sent more than once"
    return response.status, response.headers, response.body


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("ok")(scope, receive, send)


async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
    await anyio.sleep(0.01)  # lets all concurrent requests interleave
    await PlainTextResponse("ok")(scope, receive, send)


# -- the basic contract -------------------------------------------------------------------------


def test_limit_then_429_problem_json_with_headers() -> None:
    app = limited(default="3/hour")
    with client_for(app) as client:
        seen = [client.get("/") for _ in range(3)]
        refused = client.get("/")
    assert [r.status_code for r in seen] == [200, 200, 200]
    assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["2", "1", "0"]
    assert seen[0].headers["ratelimit-policy"] == '"default";q=3;w=3600'
    assert seen[0].headers["ratelimit"].startswith('"default";r=2;t=')
    assert seen[0].headers["x-ratelimit-limit"] == "3"
    assert int(seen[0].headers["x-ratelimit-reset"]) >= int(time.time())
    assert "retry-after" not in seen[0].headers
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    retry = int(refused.headers["retry-after"])
    assert 1 <= retry <= 3600
    body = refused.json()
    assert body["type"] == QUOTA_EXCEEDED
    assert body["status"] == 429
    assert body["violated-policies"] == ["default"]
    assert body["retry-after"] == retry
    assert refused.headers["x-ratelimit-remaining"] == "0"


def test_429_body_carries_the_request_id() -> None:
    inner = limited(default="1/hour")

    async def with_request_id(scope: Scope, receive: Receive, send: Send) -> None:
        token = REQUEST_ID.set("req-42")
        try:
            await inner(scope, receive, send)
        finally:
            REQUEST_ID.reset(token)

    with client_for(with_request_id) as client:
        client.get("/")
        refused = client.get("/")
    assert refused.status_code == 429
    assert refused.json()["request_id"] == "req-42"


@pytest.mark.parametrize(
    ("strategy", "wait"), [("fixed-window", 1.1), ("moving-window", 1.1), ("sliding-window", 2.05)]
)
def test_each_strategy_admits_exactly_the_limit_then_resets(strategy: str, wait: float) -> None:
    app = RateLimitMiddleware(make_app(), default="3/second", strategy=strategy)
    with client_for(app) as client:
        start_of_a_second()
        codes = [client.get("/").status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        time.sleep(wait)
        assert client.get("/").status_code == 200


def test_clients_are_limited_separately() -> None:
    app = limited(default="2/hour")
    with client_for(app, "198.51.100.1") as one, client_for(app, "198.51.100.2") as two:
        assert [one.get("/").status_code for _ in range(3)] == [200, 200, 429]
        assert [two.get("/").status_code for _ in range(2)] == [200, 200]


def test_several_limits_in_one_string_each_apply_and_show_in_headers() -> None:
    app = limited(default="2/second;3/hour")
    with client_for(app) as client:
        start_of_a_second()
        first = client.get("/")
        assert first.headers["ratelimit-policy"] == '"default-1s";q=2;w=1, "default-3600s";q=3;w=3600'
        assert '"default-1s";r=1;' in first.headers["ratelimit"]
        assert '"default-3600s";r=2;' in first.headers["ratelimit"]
        assert client.get("/").status_code == 200
        refused = client.get("/")
        assert refused.status_code == 429
        assert refused.json()["violated-policies"] == ["default-1s"]
        time.sleep(1.05)
        assert client.get("/").status_code == 200  # the minute limit had room for one more
        refused = client.get("/")
        assert refused.json()["violated-policies"] == ["default-3600s"]


def test_a_refused_request_does_not_use_the_other_limits() -> None:
    app = limited(default="1/second;2/hour")
    with client_for(app) as client:
        start_of_a_second()
        assert client.get("/").status_code == 200
        assert client.get("/").status_code == 429  # the second does not count on the minute
        time.sleep(1.05)
        assert client.get("/").status_code == 200


def test_default_none_limits_nothing_without_rules() -> None:
    app = limited(default=None)
    with client_for(app) as client:
        responses = [client.get("/") for _ in range(5)]
    assert {r.status_code for r in responses} == {200}
    assert "ratelimit" not in responses[0].headers


# -- policies, rules, exemptions ----------------------------------------------------------------


def test_rules_pick_policies_first_match_wins() -> None:
    app = limited(
        default="5/hour",
        policies={"webhook": "3/hour", "ai": "1/hour", "export": "2/hour"},
        rules=[
            ("/webhooks/*", "webhook"),
            ("POST /ai/*", "ai"),
            ("/export/{name}", "export"),
            ("/health", None),
            ("/other", "1/hour"),
            ("/other", "ai"),  # never reached: the rule above matches first
        ],
    )
    with client_for(app) as client:
        assert [client.post("/ai/x").status_code for _ in range(2)] == [200, 429]
        assert client.get("/ai/x").status_code == 200  # GET is not in the rule: the default policy
        assert client.get("/ai/x").headers["ratelimit-policy"] == '"default";q=5;w=3600'
        hook = client.post("/webhooks/a/b")
        assert hook.headers["ratelimit-policy"] == '"webhook";q=3;w=3600'
        assert [client.post("/webhooks/c").status_code for _ in range(2)] == [200, 200]
        assert client.post("/webhooks/d").status_code == 429  # one policy, one bucket
        assert [client.get(f"/export/{n}").status_code for n in "abc"] == [200, 200, 429]
        assert {client.get("/health").status_code for _ in range(10)} == {200}
        assert "ratelimit" not in client.get("/health").headers
        other = client.get("/other")
        assert other.headers["ratelimit-policy"] == '"rule-5";q=1;w=3600'
        refused = client.get("/other")
        assert refused.status_code == 429
        assert refused.json()["violated-policies"] == ["rule-5"]


def test_rules_as_a_mapping_and_method_lists() -> None:
    app = limited(default=None, rules={"GET,POST /ai/{name}": "1/hour"})
    with client_for(app) as client:
        assert client.get("/ai/x").status_code == 200
        assert client.post("/ai/x").status_code == 429


def test_exempt_paths_exact_and_glob() -> None:
    app = limited(default="1/hour", exempt_paths=["/health", "/export/*"])
    with client_for(app) as client:
        assert {client.get("/health").status_code for _ in range(3)} == {200}
        assert {client.get("/export/a").status_code for _ in range(3)} == {200}
        assert [client.get("/").status_code for _ in range(2)] == [200, 429]


def test_paths_answered_by_an_outer_component_are_not_limited() -> None:
    wiring = Wiring()
    wiring.answer_paths("/health", owner="health")
    app = RateLimitMiddleware(make_app(), default="1/hour", kit=wiring)
    with client_for(app) as client:
        assert {client.get("/health").status_code for _ in range(3)} == {200}
        assert [client.get("/").status_code for _ in range(2)] == [200, 429]


def test_overrides_give_named_clients_their_own_limits() -> None:
    app = limited(
        default="1/hour",
        policies={"ai": "1/hour"},
        rules=[("/ai/*", "1/hour")],
        key="header:X-API-Key",
        overrides={
            "partner": "3/hour",
            "internal": None,
            "mixed": {"ai": "2/hour", "default": None},
        },
    )
    with client_for(app) as client:

        def codes(key: str, path: str, n: int) -> list[int]:
            return [client.get(path, headers={"X-API-Key": key}).status_code for _ in range(n)]

        assert codes("partner", "/", 4) == [200, 200, 200, 429]
        assert codes("nobody", "/", 2) == [200, 429]
        assert set(codes("internal", "/", 5)) == {200}
        assert set(codes("internal", "/ai/x", 5)) == {200}
        assert set(codes("mixed", "/", 4)) == {200}


def test_overrides_apply_within_rules_by_policy_name() -> None:
    app = limited(
        default="10/hour",
        policies={"ai": "1/hour"},
        rules=[("/ai/*", "ai")],
        key="header:X-API-Key",
        overrides={"mixed": {"ai": "2/hour"}},
    )
    with client_for(app) as client:
        got = [client.get("/ai/x", headers={"X-API-Key": "mixed"}).status_code for _ in range(3)]
        assert got == [200, 200, 429]


def test_allow_list_by_network_and_by_key() -> None:
    app = limited(default="1/hour", allow=["10.0.0.0/8", "2001:db8::1", "tools-key"], key="header:X-Key")
    with client_for(app, "10.1.2.3") as internal, client_for(app, "203.0.113.9") as outside:
        assert {internal.get("/").status_code for _ in range(4)} == {200}
        assert {outside.get("/", headers={"X-Key": "tools-key"}).status_code for _ in range(4)} == {200}
        assert [outside.get("/", headers={"X-Key": "other"}).status_code for _ in range(2)] == [200, 429]


# -- keys ---------------------------------------------------------------------------------------


def test_header_key_isolates_api_keys_and_falls_back_to_the_address() -> None:
    app = limited(default="1/hour", key="header:X-API-Key")
    with client_for(app) as client:
        assert client.get("/", headers={"X-API-Key": "a"}).status_code == 200
        assert client.get("/", headers={"X-API-Key": "a"}).status_code == 429
        assert client.get("/", headers={"X-API-Key": "b"}).status_code == 200
        # Leaving the key out is no way around the limit: the address is limited instead.
        assert client.get("/").status_code == 200
        assert client.get("/").status_code == 429


def test_huge_header_keys_are_digested_and_still_limited() -> None:
    app = limited(default="1/hour", key="header:X-API-Key")
    huge = "k" * 5000
    with client_for(app) as client:
        assert client.get("/", headers={"X-API-Key": huge}).status_code == 200
        assert client.get("/", headers={"X-API-Key": huge}).status_code == 429
        assert client.get("/", headers={"X-API-Key": huge + "x"}).status_code == 200


@pytest.mark.anyio
async def test_key_function_sync_async_and_none_exempts() -> None:
    def by_user(scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"x-user":
                return value.decode() if value != b"admin" else None
        return "anonymous"

    async def by_user_async(scope: Scope) -> str | None:
        return by_user(scope)

    for key in (by_user, by_user_async):
        app = RateLimitMiddleware(ok_app, default="1/hour", key=key)
        alice = [(b"x-user", b"alice")]
        assert (await call(app, headers=alice))[0] == 200
        assert (await call(app, headers=alice))[0] == 429
        assert (await call(app, headers=[(b"x-user", b"bob")]))[0] == 200
        admin = [(b"x-user", b"admin")]
        assert {(await call(app, headers=admin))[0] for _ in range(3)} == {200}


@pytest.mark.anyio
async def test_requests_without_a_client_address_share_one_bucket() -> None:
    app = RateLimitMiddleware(ok_app, default="1/hour")
    assert (await call(app, client=None))[0] == 200
    assert (await call(app, client=None))[0] == 429


@pytest.mark.anyio
async def test_ipv6_clients_are_limited_per_64_network() -> None:
    app = RateLimitMiddleware(ok_app, default="1/hour")
    assert (await call(app, client=("2001:db8:1:2::1", 1)))[0] == 200
    assert (await call(app, client=("2001:db8:1:2::ffff", 1)))[0] == 429
    assert (await call(app, client=("2001:db8:1:3::1", 1)))[0] == 200
    exact = RateLimitMiddleware(ok_app, default="1/hour", ipv6_prefix=128)
    assert (await call(exact, client=("2001:db8:1:2::1", 1)))[0] == 200
    assert (await call(exact, client=("2001:db8:1:2::2", 1)))[0] == 200


# -- spoofing -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_forged_forwarding_headers_change_nothing_without_trusted_proxies() -> None:
    app = RateLimitMiddleware(ok_app, default="2/hour")
    peer = ("203.0.113.7", 1)
    for n in range(2):
        forged = [(b"x-forwarded-for", f"10.0.0.{n}".encode()), (b"forwarded", f"for=10.9.9.{n}".encode())]
        assert (await call(app, client=peer, headers=forged))[0] == 200
    forged = [(b"x-forwarded-for", b"192.0.2.200")]
    assert (await call(app, client=peer, headers=forged))[0] == 429


@pytest.mark.anyio
async def test_trusted_proxies_take_the_right_most_untrusted_address() -> None:
    app = RateLimitMiddleware(ok_app, default="1/hour", trusted_proxies=["10.0.0.0/8"])
    proxy = ("10.0.0.5", 1)
    # The client forges a left-most entry; the proxies append the real address on the right.
    xff = [(b"x-forwarded-for", b"1.1.1.1, 198.51.100.20, 10.0.0.9")]
    assert (await call(app, client=proxy, headers=xff))[0] == 200
    other_forgery = [(b"x-forwarded-for", b"2.2.2.2, 198.51.100.20, 10.0.0.9")]
    assert (await call(app, client=proxy, headers=other_forgery))[0] == 429
    # Two header lines form one list.
    split = [(b"x-forwarded-for", b"3.3.3.3"), (b"x-forwarded-for", b"198.51.100.21")]
    assert (await call(app, client=proxy, headers=split))[0] == 200
    assert (await call(app, client=proxy, headers=split))[0] == 429
    # A peer that is not a trusted proxy cannot forward for anyone.
    direct = ("198.51.100.99", 1)
    spoof = [(b"x-forwarded-for", b"198.51.100.77")]
    assert (await call(app, client=direct, headers=spoof))[0] == 200
    assert (await call(app, client=direct, headers=[(b"x-forwarded-for", b"198.51.100.78")]))[0] == 429


@pytest.mark.anyio
async def test_forwarded_header_mode_reads_rfc7239_and_ignores_x_forwarded_for() -> None:
    app = RateLimitMiddleware(
        ok_app, default="1/hour", trusted_proxies="10.0.0.0/8, fd00::/8", proxy_header="forwarded"
    )
    proxy = ("10.0.0.5", 1)
    first = [(b"forwarded", b'for=1.1.1.1, for="[2001:db8::7]:4711";proto=https, for=10.1.1.1')]
    assert (await call(app, client=proxy, headers=first))[0] == 200
    again = [(b"forwarded", b'for="[2001:db8::8]"'), (b"x-forwarded-for", b"198.51.100.1")]
    assert (await call(app, client=proxy, headers=again))[0] == 429  # same /64
    assert (await call(app, client=proxy, headers=[(b"forwarded", b"for=198.51.100.5:80")]))[0] == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    "value",
    [
        b"",
        b",,,",
        b"not-an-ip",
        b"unknown, _hidden",
        b"1.1.1.1" + b", 10.0.0.1" * 5000,
        b"\xff\xfe\x00garbage",
        b"[::1",
        b"1.2.3.4:99999:1",
        b"x" * 100_000,
    ],
)
async def test_malformed_or_huge_forwarding_headers_never_crash(value: bytes) -> None:
    app = RateLimitMiddleware(ok_app, default="100/hour", trusted_proxies=["10.0.0.0/8"])
    status, _, _ = await call(app, client=("10.0.0.5", 1), headers=[(b"x-forwarded-for", value)])
    assert status == 200
    fwd = RateLimitMiddleware(
        ok_app, default="100/hour", trusted_proxies=["10.0.0.0/8"], proxy_header="forwarded"
    )
    status, _, _ = await call(fwd, client=("10.0.0.5", 1), headers=[(b"forwarded", value)])
    assert status == 200


@pytest.mark.anyio
async def test_garbage_hop_falls_back_to_the_last_trusted_address() -> None:
    app = RateLimitMiddleware(ok_app, default="1/hour", trusted_proxies=["10.0.0.0/8"])
    proxy = ("10.0.0.5", 1)
    assert (await call(app, client=proxy, headers=[(b"x-forwarded-for", b"garbage, 10.0.0.9")]))[0] == 200
    # Same last trusted hop: same bucket, whatever the garbage says.
    assert (await call(app, client=proxy, headers=[(b"x-forwarded-for", b"other, 10.0.0.9")]))[0] == 429
    # Every hop trusted: the left-most one is the client.
    assert (await call(app, client=proxy, headers=[(b"x-forwarded-for", b"10.7.7.7, 10.0.0.1")]))[0] == 200


# -- headers options, streaming and files --------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "present", "absent"),
    [
        ("ietf", {"ratelimit", "ratelimit-policy"}, {"x-ratelimit-limit"}),
        ("x-ratelimit", {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}, {"ratelimit"}),
        (None, set(), {"ratelimit", "x-ratelimit-limit"}),
    ],
)
def test_headers_option_picks_the_header_families(
    mode: str | None, present: set[str], absent: set[str]
) -> None:
    app = limited(default="1/hour", headers=mode)
    with client_for(app) as client:
        admitted = client.get("/")
        refused = client.get("/")
    assert present <= set(admitted.headers)
    assert not absent & set(admitted.headers)
    assert refused.status_code == 429 and "retry-after" in refused.headers


def test_headers_replace_the_apps_own_and_appear_once() -> None:
    app = limited(default="5/hour")
    with client_for(app) as client:
        response = client.get("/own")
    (value,) = response.headers.get_list("ratelimit")
    assert value.startswith('"default";r=4;t=')
    assert response.headers.get_list("x-ratelimit-limit") == ["5"]


def test_streaming_and_file_responses_pass_through_intact(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096
    (tmp_path / "data.bin").write_bytes(payload)
    app = RateLimitMiddleware(make_app(tmp_path), default="10/hour", strategy="fixed-window")
    with client_for(app) as client:
        streamed = client.get("/stream")
        filed = client.get("/file")
        ranged = client.get("/file", headers={"Range": "bytes=10-19"})
    assert streamed.content == b"".join(STREAM_CHUNKS)
    assert streamed.headers.get_list("ratelimit-policy") == ['"default";q=10;w=3600']
    assert filed.content == payload
    assert filed.headers["content-length"] == str(len(payload))
    assert filed.headers.get_list("x-ratelimit-remaining") == ["8"]
    assert ranged.status_code == 206 and ranged.content == payload[10:20]


@pytest.mark.anyio
async def test_streaming_body_messages_are_forwarded_unchanged() -> None:
    app = RateLimitMiddleware(make_app(), default="10/hour")
    _, head, body = await call(app, "/stream")
    assert body == b"".join(STREAM_CHUNKS)
    assert head["ratelimit-policy"] == '"default";q=10;w=3600'


# -- cost and count_when ------------------------------------------------------------------------


def test_cost_int_and_callable() -> None:
    heavy = limited(default="5/hour", cost=2)
    with client_for(heavy) as client:
        assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]

    async def by_path(scope: Scope) -> int:
        return 5 if scope["path"] == "/other" else 1

    app = limited(default="6/hour", cost=by_path)
    with client_for(app) as client:
        assert client.get("/other").headers["x-ratelimit-remaining"] == "1"
        assert client.get("/").status_code == 200
        assert client.get("/").status_code == 429


def test_cost_zero_is_free_and_bad_cost_function_results_count_one(caplog: pytest.LogCaptureFixture) -> None:
    free = limited(default="1/hour", cost=lambda scope: 0)
    with client_for(free) as client:
        assert {client.get("/").status_code for _ in range(3)} == {200}
    broken = limited(default="2/hour", cost=lambda scope: "lots")
    with caplog.at_level(logging.ERROR, "hardenkit.ratelimit"), client_for(broken) as client:
        assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    assert "cost function returned 'lots'" in caplog.text


def test_count_when_counts_only_matching_responses() -> None:
    app = limited(default="2/hour", count_when=lambda status: status >= 400)
    with client_for(app) as client:
        for _ in range(5):
            good = client.post("/login?password=right")
            assert good.status_code == 200
        assert good.headers["x-ratelimit-remaining"] == "2"
        bad = client.post("/login?password=wrong")
        assert bad.status_code == 401
        assert bad.headers["x-ratelimit-remaining"] == "1"
        assert client.post("/login?password=wrong").status_code == 401
        assert client.post("/login?password=right").status_code == 429  # exhausted by failures


def test_count_when_that_raises_counts_the_request(caplog: pytest.LogCaptureFixture) -> None:
    def broken(status: int) -> bool:
        raise RuntimeError("boom")

    app = limited(default="1/hour", count_when=broken)
    with caplog.at_level(logging.ERROR, "hardenkit.ratelimit"), client_for(app) as client:
        assert [client.get("/").status_code for _ in range(2)] == [200, 429]
    assert "count_when raised" in caplog.text


# -- on_breach ----------------------------------------------------------------------------------


def test_on_breach_may_answer_and_gets_the_breach() -> None:
    seen: list[RateLimitBreach] = []

    def hook(scope: Scope, breach: RateLimitBreach) -> Response:
        seen.append(breach)
        return JSONResponse({"slow": "down"}, status_code=429)

    app = limited(default="1/hour", policies={"ai": "1/hour"}, rules=[("POST /ai/*", "ai")], on_breach=hook)
    with client_for(app) as client:
        client.post("/ai/x")
        refused = client.post("/ai/x")
    assert refused.json() == {"slow": "down"}
    assert len(seen) == 1
    breach = seen[0]
    assert (breach.key, breach.policy, breach.violated, breach.method, breach.path) == (
        "203.0.113.7",
        "ai",
        ("ai",),
        "POST",
        "/ai/x",
    )
    assert 1 <= breach.retry_after <= 3600


def test_async_on_breach_returning_none_keeps_the_standard_429() -> None:
    alerts: list[str] = []

    async def alert(scope: Scope, breach: RateLimitBreach) -> None:
        alerts.append(breach.key)

    app = limited(default="1/hour", on_breach=alert)
    with client_for(app) as client:
        client.get("/")
        refused = client.get("/")
    assert refused.status_code == 429 and refused.json()["type"] == QUOTA_EXCEEDED
    assert alerts == ["203.0.113.7"]


def test_on_breach_that_raises_still_sends_a_429(caplog: pytest.LogCaptureFixture) -> None:
    def broken(scope: Scope, breach: RateLimitBreach) -> None:
        raise RuntimeError("alerting is down")

    app = limited(default="1/hour", on_breach=broken)
    with caplog.at_level(logging.ERROR, "hardenkit.ratelimit"), client_for(app) as client:
        client.get("/")
        refused = client.get("/")
    assert refused.status_code == 429
    assert "on_breach hook raised" in caplog.text


# -- websockets ---------------------------------------------------------------------------------


def test_websocket_handshakes_are_limited_by_a_rule_only() -> None:
    unlimited = limited(default="1/hour")
    with client_for(unlimited) as client:
        for _ in range(3):
            with client.websocket_connect("/ws") as ws:
                assert ws.receive_text() == "hello"

    app = limited(default=None, rules=[("WEBSOCKET /ws", "1/hour")])
    with client_for(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "hello"
        with pytest.raises(WebSocketDenialResponse) as denied:
            client.websocket_connect("/ws").__enter__()
    assert denied.value.status_code == 429
    assert denied.value.json()["type"] == QUOTA_EXCEEDED


@pytest.mark.anyio
async def test_websocket_refused_with_close_1008_without_the_denial_extension() -> None:
    app = RateLimitMiddleware(ok_app, default=None, rules=[("/ws", "1/hour")])
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [], "client": ("203.0.113.7", 1)}
    app_calls: list[str] = []

    async def ws_app(scope: Scope, receive: Receive, send: Send) -> None:
        app_calls.append(scope["path"])

    app.app = ws_app
    await app(scope, receive, send)
    await app(scope, receive, send)
    assert app_calls == ["/ws"]
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "rate limit exceeded"}]


# -- per-endpoint limits without a request parameter ----------------------------------------------


def test_rate_limit_dependency_in_fastapi() -> None:
    from fastapi import Depends, FastAPI

    api = FastAPI()

    @api.post("/ai", dependencies=[Depends(rate_limit("ai"))])
    async def ai() -> dict[str, str]:
        return {"answer": "42"}

    @api.get("/inline", dependencies=[Depends(hk.rate_limit("2/hour"))])
    def inline() -> dict[str, str]:  # a sync endpoint runs in a thread: the check still finds its request
        return {"ok": "yes"}

    api.add_middleware(RateLimitMiddleware, default="100/hour", policies={"ai": "2/hour"})
    with client_for(api) as client:
        first = client.post("/ai")
        assert first.status_code == 200
        assert first.headers["ratelimit-policy"] == '"default";q=100;w=3600, "ai";q=2;w=3600'
        assert client.post("/ai").status_code == 200
        refused = client.post("/ai")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["violated-policies"] == ["ai"]
        assert "retry-after" in refused.headers
        assert [client.get("/inline").status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.anyio
async def test_rate_limit_awaited_inside_a_starlette_endpoint() -> None:
    check = rate_limit("export", cost=2)

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await check()
        await PlainTextResponse("exported")(scope, receive, send)

    app = RateLimitMiddleware(endpoint, default=None, policies={"export": "3/hour"})
    status, head, body = await call(app)
    assert (status, body) == (200, b"exported")
    assert head["x-ratelimit-remaining"] == "1"
    status, head, body = await call(app)
    assert status == 429
    assert json.loads(body)["violated-policies"] == ["export"]


@pytest.mark.anyio
async def test_rate_limit_errors_are_clear() -> None:
    with pytest.raises(ConfigurationError, match="outside a request"):
        await rate_limit("ai")()

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await rate_limit("nope")()

    app = RateLimitMiddleware(endpoint, policies={"ai": "1/hour"})
    with pytest.raises(ConfigurationError, match="no such policy; known: ai"):
        await call(app)
    with pytest.raises(ConfigurationError):
        rate_limit("")
    with pytest.raises(ConfigurationError):
        rate_limit("ai", cost=-1)
    with pytest.raises(ConfigurationError):
        rate_limit("not a limit at all")


@pytest.mark.anyio
async def test_rate_limit_respects_exempt_keys_and_overrides() -> None:
    check = rate_limit("ai")

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await check()
        await PlainTextResponse("ok")(scope, receive, send)

    app = RateLimitMiddleware(
        endpoint,
        default=None,
        policies={"ai": "1/hour"},
        allow=["198.51.100.0/24"],
        overrides={"203.0.113.50": {"ai": None}, "203.0.113.51": {"ai": "2/hour"}},
    )
    assert {(await call(app, client=("198.51.100.3", 1)))[0] for _ in range(3)} == {200}
    assert {(await call(app, client=("203.0.113.50", 1)))[0] for _ in range(3)} == {200}
    assert [(await call(app, client=("203.0.113.51", 1)))[0] for _ in range(3)] == [200, 200, 429]


@pytest.mark.anyio
async def test_a_rate_limit_error_after_the_response_started_is_not_swallowed() -> None:
    check = rate_limit("ai")

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await check()

    app = RateLimitMiddleware(endpoint, default=None, policies={"ai": "1/hour"})
    await call(app)
    with pytest.raises(RateLimitExceeded):
        await call(app)


# -- exactness under concurrency ------------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window"])
@pytest.mark.anyio
async def test_300_concurrent_requests_against_100_admit_exactly_100(strategy: str) -> None:
    # Windows are clock-aligned: a 100-day window keeps the test inside one window.
    app = RateLimitMiddleware(slow_app, default="100 per 100 days", strategy=strategy)
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await call(app))[0])

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(300):
                tg.start_soon(one)
    assert statuses.count(200) == 100
    assert statuses.count(429) == 200


# -- kit integration, environment, non-http scopes ---------------------------------------------------


def test_kit_wiring_exposes_headers_and_provides_storage_state() -> None:
    kit = Kit().register(RateLimitMiddleware, default="1/hour", headers="ietf")
    wiring, final = kit._resolve()
    assert set(wiring.exposed_headers) == {"RateLimit", "RateLimit-Policy", "Retry-After"}
    app = RateLimitMiddleware(ok_app, **final[0][2])
    state = wiring.get("ratelimit.storage_state")()
    assert state == {
        "healthy": True,
        "mode": "primary",
        "on_storage_error": "memory",
        "since": None,
        "storage": "memory://",
    }
    assert app.guard.state() == state
    wiring = Wiring()
    RateLimitMiddleware.hardenkit_declare({}, wiring)
    assert "X-RateLimit-Remaining" in wiring.exposed_headers


def test_environment_variables_configure_the_limiter() -> None:
    environ = {
        "HARDENKIT_RATELIMIT_DEFAULT": "2/hour",
        "HARDENKIT_RATELIMIT_STRATEGY": "moving-window",
        "HARDENKIT_RATELIMIT_HEADERS": "none",
        "HARDENKIT_RATELIMIT_EXEMPT_PATHS": "/health, /other",
    }
    app = Starlette(routes=make_app().routes)
    Kit.from_env(environ).register(RateLimitMiddleware).install(app)
    with client_for(app) as client:
        assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
        assert "ratelimit" not in client.get("/other").headers
        assert {client.get("/other").status_code for _ in range(3)} == {200}


def test_harden_style_install_with_storage_option() -> None:
    app = Starlette(routes=make_app().routes)
    Kit().register(RateLimitMiddleware, default="1/hour", storage="memory://").install(app)
    with client_for(app) as client:
        assert [client.get("/").status_code for _ in range(2)] == [200, 429]


@pytest.mark.anyio
async def test_lifespan_and_other_scopes_pass_straight_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    app = RateLimitMiddleware(inner, default="1/hour")
    for _ in range(3):
        await app({"type": "lifespan"}, _never_receive, _never_send)
    assert seen == ["lifespan"] * 3


async def _never_receive() -> Message:  # pragma: no cover - never called
    raise AssertionError("receive called")


async def _never_send(message: Message) -> None:  # pragma: no cover - never called
    raise AssertionError("send called")


# -- configuration errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"default": "lots"}, "is not a rate limit"),
        ({"default": 5}, "expected a limit string"),
        ({"default": [5]}, "expected a limit string"),
        ({"default": []}, "no limit given"),
        ({"default": "0/hour"}, "allows nothing"),
        ({"policies": {"bad name": "1/hour"}}, "policy name"),
        ({"policies": {"default": "1/hour"}}, "default= option"),
        ({"rules": "nope"}, "list of"),
        ({"rules": [("/x",)]}, "pair"),
        ({"rules": [("x", "1/hour")]}, "must start with '/'"),
        ({"rules": [("GET/POST /x", "1/hour")]}, "optional method"),
        ({"rules": [(5, "1/hour")]}, "rule pattern"),
        ({"rules": [("/x/{a:nosuch}", "1/hour")]}, "bad path pattern"),
        ({"rules": [("/x", "unknown-policy")]}, "neither a policy name"),
        ({"key": "cookie:session"}, "header:<Name>"),
        ({"key": "header:bad name"}, "not a valid HTTP header name"),
        ({"trusted_proxies": ["not-a-cidr"]}, "not an IP address"),
        ({"trusted_proxies": [10]}, "CIDR strings"),
        ({"proxy_header": "x-real-ip"}, "proxy_header"),
        ({"ipv6_prefix": 0}, "ipv6_prefix"),
        ({"ipv6_prefix": True}, "ipv6_prefix"),
        ({"storage": "nowhere"}, "storage URI"),
        ({"storage": "async+redis://localhost"}, "picks limits' async storage"),
        ({"storage": "bogus://x"}, "cannot be used"),
        ({"strategy": "token-bucket"}, "strategy"),
        ({"on_storage_error": "panic"}, "on_storage_error"),
        ({"storage_timeout": 0}, "storage_timeout"),
        ({"storage_timeout": True}, "storage_timeout"),
        ({"key_prefix": "has space"}, "key_prefix"),
        ({"exempt_paths": [5]}, "exempt_paths"),
        ({"exempt_paths": ["health"]}, "must start with '/'"),
        ({"allow": [""]}, "allow"),
        ({"allow": ["10.0.0.0/33"]}, "not an IP address"),
        ({"overrides": ["x"]}, "overrides"),
        ({"overrides": {"": "1/hour"}}, "non-empty"),
        ({"overrides": {"k": {"nope": "1/hour"}}}, "no policy named"),
        ({"overrides": {"k": "lots"}}, "is not a rate limit"),
        ({"cost": -1}, "cost"),
        ({"cost": True}, "cost"),
        ({"count_when": 5}, "count_when"),
        ({"headers": "all"}, "headers"),
        ({"on_breach": "log"}, "on_breach"),
    ],
)
def test_bad_options_raise_configuration_error_saying_what_to_write(
    options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        RateLimitMiddleware(ok_app, **options)


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        RateLimitMiddleware(ok_app, strategy="nope")


def test_limit_objects_and_lists_are_accepted() -> None:
    from limits import parse

    app = RateLimitMiddleware(ok_app, default=[parse("1/second"), "5/hour"], policies={"p": ["1/hour"]})
    assert app.default_policy is not None
    assert [w.name for w in app.default_policy.windows] == ["default-1s", "default-3600s"]


def test_rules_may_name_the_default_policy_and_duplicate_windows_get_distinct_names() -> None:
    from limits import parse

    app = limited(default=parse("1/hour"), rules=[("/other", "default"), ("/ai/*", "1/hour;1/hour")])
    with client_for(app) as client:
        assert client.get("/other").status_code == 200
        assert client.get("/").status_code == 429  # one bucket: /other used the default policy
        assert (
            client.get("/ai/x").headers["ratelimit-policy"]
            == '"rule-2-3600s";q=1;w=3600, "rule-2-3600s-2";q=1;w=3600'
        )


@pytest.mark.anyio
async def test_rate_limit_default_policy_and_websocket_refusal_from_an_endpoint_check() -> None:
    check = rate_limit("default")

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await check()
        if scope["type"] == "http":
            await PlainTextResponse("ok")(scope, receive, send)

    app = RateLimitMiddleware(endpoint, default="1/hour", exempt_paths=["/free"])
    assert (await call(app, "/free"))[0] == 200  # exempt from the middleware, counted by the check
    status, _, body = await call(app, "/free")
    assert status == 429 and json.loads(body)["violated-policies"] == ["default"]

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": [],
        "client": ("203.0.113.7", 1),
        "extensions": {"websocket.http.response": {}},
    }
    await app(scope, receive, send)
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 429


def test_overrides_and_allow_match_long_keys_too() -> None:
    long_key = "sk-" + "x" * 300
    other = "sk-" + "y" * 300
    app = limited(
        default="1/hour",
        key="header:Authorization",
        overrides={long_key: "3/hour"},
        allow=["ops key with spaces"],
    )
    with client_for(app) as client:
        got = [client.get("/", headers={"Authorization": long_key}).status_code for _ in range(4)]
        assert got == [200, 200, 200, 429]
        assert [client.get("/", headers={"Authorization": other}).status_code for _ in range(2)] == [200, 429]
        ops = {"Authorization": "ops key with spaces"}
        assert {client.get("/", headers=ops).status_code for _ in range(3)} == {200}


def test_importing_the_limiter_loads_no_storage_backend() -> None:
    import subprocess
    import sys

    code = (
        "import sys, hardenkit.ratelimit\n"
        "loaded = [m for m in ('redis', 'limits.storage', 'limits.aio', 'valkey') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_in_a_kit_the_429_carries_the_request_id_and_probes_are_not_limited() -> None:
    app = Starlette(routes=make_app().routes)
    kit = Kit().register(RateLimitMiddleware, default="1/hour").register(hk.HeaderContractMiddleware)
    kit.register(hk.HealthProbeMiddleware)
    kit.install(app)
    with client_for(app) as client:
        assert client.get("/").status_code == 200
        refused = client.get("/", headers={"X-Request-ID": "trace-7"})
        assert {client.get("/livez").status_code for _ in range(3)} == {200}
    assert refused.status_code == 429
    assert refused.headers["x-request-id"] == "trace-7"
    assert refused.json()["request_id"] == "trace-7"
