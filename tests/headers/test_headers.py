from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

import hardenkit as hk
from hardenkit.headers import SECURITY_PRESETS, HeaderContractMiddleware
from support import asgi_request

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
seen_ids: list[str | None] = []


async def echo(request: Request) -> Response:
    seen_ids.append(hk.request_id())
    return JSONResponse(
        {
            "header": request.headers.get("x-request-id"),
            "all": request.headers.getlist("x-request-id"),
            "contextvar": hk.request_id(),
        }
    )


async def boom(request: Request) -> Response:
    raise RuntimeError("kaboom")


async def own_headers(request: Request) -> Response:
    return PlainTextResponse(
        "mine",
        headers={
            "Cache-Control": "public, max-age=60",
            "X-Frame-Options": "SAMEORIGIN",
            "X-Request-ID": "app-chose-this",
            "X-Latency-MS": "999999",
        },
    )


async def stream(request: Request) -> Response:
    async def body() -> Any:
        for chunk in (b"a", b"b", b"c"):
            yield chunk

    return StreamingResponse(body(), media_type="text/plain")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(hk.request_id() or "")
    await websocket.close()


def make_app(**options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/echo", echo),
            Route("/boom", boom),
            Route("/own", own_headers),
            Route("/stream", stream),
            Route("/docs", echo),
            Route("/only-post", echo, methods=["POST"]),
            WebSocketRoute("/ws", ws),
        ]
    )
    app.add_middleware(HeaderContractMiddleware, **options)
    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app())


# -- request id ----------------------------------------------------------------------


def test_valid_incoming_id_is_kept_and_visible_to_app(client: TestClient) -> None:
    response = client.get("/echo", headers={"X-Request-ID": "abc-123.x:y_z"})
    assert response.headers["x-request-id"] == "abc-123.x:y_z"
    assert response.json() == {
        "header": "abc-123.x:y_z",
        "all": ["abc-123.x:y_z"],
        "contextvar": "abc-123.x:y_z",
    }


def test_missing_id_is_generated_as_uuid4(client: TestClient) -> None:
    response = client.get("/echo")
    rid = response.headers["x-request-id"]
    assert UUID_RE.match(rid)
    assert response.json()["header"] == rid
    assert response.json()["contextvar"] == rid


@pytest.mark.parametrize(
    "bad",
    [
        "has space",
        "x" * 129,
        "semi;colon",
        'quote"d',
        "ünïcode",
        "",
        "a/b",
    ],
)
def test_invalid_incoming_id_is_replaced(client: TestClient, bad: str) -> None:
    response = client.get("/echo", headers=[(b"x-request-id", bad.encode("utf-8"))])
    rid = response.headers["x-request-id"]
    assert rid != bad
    assert UUID_RE.match(rid)
    assert response.json()["all"] == [rid]


def test_boundary_length_128_is_valid(client: TestClient) -> None:
    value = "a" * 128
    response = client.get("/echo", headers={"X-Request-ID": value})
    assert response.headers["x-request-id"] == value


async def _raw_call(app: Any, headers: list[tuple[bytes, bytes]], path: str = "/echo") -> dict[str, Any]:
    """Drive the ASGI app directly, with raw header bytes no HTTP client would send."""
    response = await asgi_request(app, path, headers=headers)
    return {"status": response.status, "headers": response.raw_headers, "body": response.body}


@pytest.mark.anyio
async def test_crlf_in_request_id_never_reaches_response_headers() -> None:
    app = make_app()
    result = await _raw_call(app, [(b"x-request-id", b"abc\r\nSet-Cookie: evil=1")])
    values = [v for k, v in result["headers"] if k == b"x-request-id"]
    assert len(values) == 1
    assert b"\r" not in values[0] and b"\n" not in values[0]
    assert not any(k == b"set-cookie" for k, _ in result["headers"])


@pytest.mark.anyio
async def test_duplicate_request_id_headers_are_replaced_by_one() -> None:
    app = make_app()
    result = await _raw_call(app, [(b"x-request-id", b"one"), (b"x-request-id", b"two")])
    values = [v for k, v in result["headers"] if k == b"x-request-id"]
    assert len(values) == 1 and values[0] not in (b"one", b"two")
    import json

    assert json.loads(result["body"])["all"] == [values[0].decode()]


@pytest.mark.anyio
async def test_oversized_request_id_is_replaced() -> None:
    app = make_app()
    result = await _raw_call(app, [(b"x-request-id", b"a" * 100_000)])
    values = [v for k, v in result["headers"] if k == b"x-request-id"]
    assert len(values) == 1 and len(values[0]) == 36


def test_reject_mode_answers_400_problem_json_with_fresh_id() -> None:
    client = TestClient(make_app(on_invalid_request_id="reject"))
    response = client.get("/echo", headers={"X-Request-ID": "bad id"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    rid = response.headers["x-request-id"]
    assert UUID_RE.match(rid)
    body = response.json()
    assert body["status"] == 400 and body["request_id"] == rid
    assert "x-latency-ms" in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    # A missing id is not invalid: it is generated, not rejected.
    assert client.get("/echo").status_code == 200
    assert client.get("/echo", headers={"X-Request-ID": "good"}).status_code == 200


def test_generator_option() -> None:
    counter = iter(range(1000))
    client = TestClient(make_app(request_id_generator=lambda: f"req-{next(counter)}"))
    assert client.get("/echo").headers["x-request-id"] == "req-0"
    assert client.get("/echo").headers["x-request-id"] == "req-1"


def test_generator_returning_unsafe_value_falls_back_to_uuid(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(make_app(request_id_generator=lambda: "evil\r\nX-Injected: 1"))
    with caplog.at_level(logging.WARNING, logger="hardenkit.headers"):
        response = client.get("/echo")
        client.get("/echo")
    assert UUID_RE.match(response.headers["x-request-id"])
    assert "x-injected" not in response.headers
    assert len([r for r in caplog.records if "request_id_generator" in r.getMessage()]) == 1


def test_generator_raising_falls_back_to_uuid() -> None:
    def broken() -> str:
        raise RuntimeError("no ids today")

    response = TestClient(make_app(request_id_generator=broken)).get("/echo")
    assert UUID_RE.match(response.headers["x-request-id"])


def test_custom_validator_regex_and_callable() -> None:
    client = TestClient(make_app(request_id_validator=r"[0-9]{4}"))
    assert client.get("/echo", headers={"X-Request-ID": "1234"}).headers["x-request-id"] == "1234"
    assert client.get("/echo", headers={"X-Request-ID": "abcd"}).headers["x-request-id"] != "abcd"
    client = TestClient(make_app(request_id_validator=lambda value: value.startswith("ok")))
    assert client.get("/echo", headers={"X-Request-ID": "ok-1"}).headers["x-request-id"] == "ok-1"
    assert client.get("/echo", headers={"X-Request-ID": "no-1"}).headers["x-request-id"] != "no-1"


def test_custom_validator_cannot_let_unsafe_values_through() -> None:
    client = TestClient(make_app(request_id_validator=lambda value: True))
    response = client.get("/echo", headers={"X-Request-ID": "has space"})
    assert response.headers["x-request-id"] != "has space"


def test_custom_header_name() -> None:
    client = TestClient(make_app(request_id_header="X-Correlation-ID"))
    response = client.get("/echo", headers={"X-Correlation-ID": "corr-1"})
    assert response.headers["x-correlation-id"] == "corr-1"
    assert "x-request-id" not in response.headers


def test_contextvar_is_set_during_and_reset_after_each_request(client: TestClient) -> None:
    seen_ids.clear()
    first = client.get("/echo").headers["x-request-id"]
    second = client.get("/echo").headers["x-request-id"]
    assert seen_ids == [first, second] and first != second
    assert hk.request_id() is None


@pytest.mark.anyio
async def test_contextvar_does_not_leak_between_concurrent_requests() -> None:
    import anyio

    results: dict[str, str | None] = {}

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        mine = hk.request_id()
        await anyio.sleep(0.01)
        results[str(mine)] = hk.request_id()
        await PlainTextResponse("ok")(scope, receive, send)

    app = HeaderContractMiddleware(slow)
    async with anyio.create_task_group() as tg:
        for index in range(50):
            tg.start_soon(_raw_call, app, [(b"x-request-id", f"id-{index}".encode())])
    assert results == {f"id-{i}": f"id-{i}" for i in range(50)}
    assert hk.request_id() is None


def test_response_id_is_never_duplicated_and_app_value_is_replaced(client: TestClient) -> None:
    response = client.get("/own", headers={"X-Request-ID": "client-id"})
    assert response.headers.get_list("x-request-id") == ["client-id"]
    assert response.headers.get_list("x-latency-ms") != ["999999"]
    assert len(response.headers.get_list("x-latency-ms")) == 1


# -- latency -------------------------------------------------------------------------


def test_latency_header_is_a_non_negative_integer(client: TestClient) -> None:
    value = client.get("/echo").headers["x-latency-ms"]
    assert value.isdigit()


def test_latency_header_can_be_disabled_and_renamed() -> None:
    assert "x-latency-ms" not in TestClient(make_app(latency_header=None)).get("/echo").headers
    response = TestClient(make_app(latency_header="X-Elapsed")).get("/echo")
    assert response.headers["x-elapsed"].isdigit()


def test_server_timing_is_optional(client: TestClient) -> None:
    assert "server-timing" not in client.get("/echo").headers
    response = TestClient(make_app(server_timing=True)).get("/echo")
    assert re.fullmatch(r"app;dur=\d+\.\d", response.headers["server-timing"])


# -- security headers ----------------------------------------------------------------


@pytest.mark.parametrize("preset", ["api", "web", "strict"])
def test_each_preset_sends_its_headers(preset: str) -> None:
    response = TestClient(make_app(security_headers=preset)).get("/echo")
    for name, value in SECURITY_PRESETS[preset].items():
        assert response.headers[name] == value, name
    assert "strict-transport-security" not in response.headers  # plain http


def test_api_preset_is_the_default_with_owasp_rest_set(client: TestClient) -> None:
    headers = client.get("/echo").headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert headers["cache-control"] == "no-store"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cross-origin-resource-policy"] == "same-origin"


@pytest.mark.parametrize(("preset", "expected"), [("api", "includeSubDomains"), ("strict", "preload")])
def test_hsts_only_on_https(preset: str, expected: str) -> None:
    client = TestClient(make_app(security_headers=preset), base_url="https://testserver")
    assert expected in client.get("/echo").headers["strict-transport-security"]


def test_hsts_can_be_customised_or_disabled() -> None:
    client = TestClient(make_app(hsts="max-age=60"), base_url="https://testserver")
    assert client.get("/echo").headers["strict-transport-security"] == "max-age=60"
    client = TestClient(make_app(hsts=None), base_url="https://testserver")
    assert "strict-transport-security" not in client.get("/echo").headers


def test_no_security_headers_preset() -> None:
    headers = TestClient(make_app(security_headers=None)).get("/echo").headers
    assert "x-content-type-options" not in headers
    assert "x-request-id" in headers and "x-latency-ms" in headers


def test_override_by_header() -> None:
    client = TestClient(
        make_app(
            security_overrides={"Referrer-Policy": "same-origin", "X-Frame-Options": None, "X-Extra": "1"}
        )
    )
    headers = client.get("/echo").headers
    assert headers["referrer-policy"] == "same-origin"
    assert "x-frame-options" not in headers
    assert headers["x-extra"] == "1"


def test_a_docs_path_of_an_app_that_serves_no_docs_keeps_the_strict_csp(client: TestClient) -> None:
    # A Starlette app with its own /docs route: no Swagger UI there, so nothing is relaxed
    # (tests/headers/test_headers_docs.py has the FastAPI cases).
    strict = "default-src 'none'; frame-ancestors 'none'"
    assert client.get("/docs").headers["content-security-policy"] == strict
    assert client.get("/docs/anything").headers["content-security-policy"] == strict
    assert client.get("/echo").headers["content-security-policy"] == strict


def test_path_override_by_prefix_matches_whole_segments() -> None:
    client = TestClient(make_app(path_overrides={"/ech": "web", "/stream": None}))
    assert client.get("/echo").headers["x-frame-options"] == "DENY"  # /ech is not a prefix segment of /echo
    assert "x-frame-options" not in client.get("/stream").headers
    client = TestClient(make_app(path_overrides={"/echo": {"X-Frame-Options": "SAMEORIGIN"}}))
    headers = client.get("/echo").headers
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["x-content-type-options"] == "nosniff"


def test_app_set_headers_win_by_default(client: TestClient) -> None:
    headers = client.get("/own").headers
    assert headers["cache-control"] == "public, max-age=60"
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers.get_list("cache-control") == ["public, max-age=60"]


def test_override_app_headers_when_told() -> None:
    headers = TestClient(make_app(override_app_headers=True)).get("/own").headers
    assert headers.get_list("x-frame-options") == ["DENY"]
    assert headers.get_list("cache-control") == ["no-store"]
    headers = TestClient(make_app(override_app_headers=["X-Frame-Options"])).get("/own").headers
    assert headers.get_list("x-frame-options") == ["DENY"]
    assert headers.get_list("cache-control") == ["public, max-age=60"]


@pytest.mark.parametrize(
    "options",
    [
        {"security_overrides": {"X-Evil": "a\r\nSet-Cookie: x=1"}},
        {"security_overrides": {"Bad Name": "x"}},
        {"security_headers": "paranoid"},
        {"hsts": "max-age=1\n"},
        {"path_overrides": {"docs": "api"}},
        {"path_overrides": {"/docs": {"X-A": "b\nc"}}},
        {"request_id_header": "X Request"},
        {"latency_header": "X-Latency\r\n"},
        {"on_invalid_request_id": "drop"},
        {"request_id_validator": "([unclosed"},
        {"request_id_validator": 42},
        {"request_id_generator": "uuid"},
        {"security_overrides": {"X-Unicode": "caf\u20ac"}},
    ],
)
def test_bad_options_fail_at_startup(options: dict[str, Any]) -> None:
    with pytest.raises(hk.ConfigurationError):
        HeaderContractMiddleware(PlainTextResponse("x"), **options)


# -- error responses -----------------------------------------------------------------


def test_404_and_405_carry_the_contract(client: TestClient) -> None:
    for response in (client.get("/nowhere"), client.get("/only-post")):
        assert response.status_code in (404, 405)
        assert UUID_RE.match(response.headers["x-request-id"])
        assert response.headers["x-latency-ms"].isdigit()
        assert response.headers["x-content-type-options"] == "nosniff"


def test_unhandled_exception_gives_problem_json_500_with_headers(caplog: pytest.LogCaptureFixture) -> None:
    client = TestClient(make_app(), raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="hardenkit.headers"):
        response = client.get("/boom", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "trace-me"
    assert response.headers["x-latency-ms"].isdigit()
    assert response.json()["request_id"] == "trace-me"
    assert "kaboom" not in response.text
    records = [r for r in caplog.records if r.name == "hardenkit.headers"]
    assert len(records) == 1
    assert getattr(records[0], "request_id", None) == "trace-me"
    assert records[0].exc_info is not None


def test_testclient_still_raises_the_exception_by_default(client: TestClient) -> None:
    with pytest.raises(RuntimeError, match="kaboom"):
        client.get("/boom")


@pytest.mark.anyio
async def test_exception_after_response_started_is_reraised_without_second_response() -> None:
    async def half(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("mid-stream")

    messages: list[Any] = []

    async def send(message: Any) -> None:
        messages.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    app = HeaderContractMiddleware(half)
    with pytest.raises(RuntimeError):
        await app({"type": "http", "path": "/", "headers": [], "method": "GET"}, receive, send)
    assert [m["type"] for m in messages] == ["http.response.start"]
    assert any(k == b"x-request-id" for k, _ in messages[0]["headers"])


def test_streaming_response_passes_through_intact(client: TestClient) -> None:
    response = client.get("/stream")
    assert response.text == "abc"
    assert response.headers.get_list("x-request-id") and len(response.headers.get_list("x-request-id")) == 1


# -- websocket and lifespan ----------------------------------------------------------


def test_websocket_gets_request_id_in_contextvar_and_accept_headers(client: TestClient) -> None:
    with client.websocket_connect("/ws", headers={"X-Request-ID": "ws-1"}) as websocket:
        assert websocket.receive_text() == "ws-1"
    with client.websocket_connect("/ws", headers={"X-Request-ID": "bad id"}) as websocket:
        assert UUID_RE.match(websocket.receive_text())


def test_lifespan_passes_through() -> None:
    events: list[str] = []

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(routes=[Route("/echo", echo)], lifespan=lifespan)
    app.add_middleware(HeaderContractMiddleware)
    with TestClient(app) as client:
        assert client.get("/echo").status_code == 200
    assert events == ["startup", "shutdown"]


def test_request_id_is_none_outside_requests() -> None:
    assert hk.request_id() is None
    uuid.UUID(TestClient(make_app()).get("/echo").headers["x-request-id"])
    assert hk.request_id() is None


@pytest.mark.anyio
async def test_path_overrides_match_the_path_the_app_routes_on_under_a_root_path() -> None:
    app = make_app(path_overrides={"/echo": "web"})

    async def behind_proxy(scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn --root-path /api: the prefix in root_path and in front of path.
        await app({**scope, "root_path": "/api", "path": "/api" + scope["path"]}, receive, send)

    response = await asgi_request(behind_proxy, "/echo")
    assert response.status == 200
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert (await asgi_request(behind_proxy, "/stream")).headers["x-frame-options"] == "DENY"


def test_path_overrides_match_inside_a_mount() -> None:
    from starlette.routing import Mount

    client = TestClient(Starlette(routes=[Mount("/v1", app=make_app(path_overrides={"/echo": "web"}))]))
    assert client.get("/v1/echo").headers["x-frame-options"] == "SAMEORIGIN"
    assert client.get("/v1/stream").headers["x-frame-options"] == "DENY"
