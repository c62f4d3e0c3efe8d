"""hardenkit's request body limit, used by harden() where starlette has no RequestBodyLimitMiddleware."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import hardenkit as hk
from hardenkit._core.body_limit import BodyLimitMiddleware, body_limit_class


async def upload(request: Request) -> Response:
    return PlainTextResponse(str(len(await request.body())))


async def echo_late(request: Request) -> Response:
    async def body() -> Iterator[bytes]:  # type: ignore[misc]
        yield b"started;"
        async for chunk in request.stream():
            yield chunk

    return StreamingResponse(body())


def app_with_limit(limit: int) -> TestClient:
    app = Starlette(
        routes=[Route("/upload", upload, methods=["POST"]), Route("/late", echo_late, methods=["POST"])]
    )
    kit = hk.Kit().register(hk.HeaderContractMiddleware).register(BodyLimitMiddleware, max_body_size=limit)
    return TestClient(kit.install(app))


def chunks(count: int, size: int) -> Iterator[bytes]:
    for _ in range(count):
        yield b"x" * size


def test_bodies_up_to_the_limit_pass() -> None:
    client = app_with_limit(10)
    assert client.post("/upload", content=b"x" * 10).text == "10"
    assert client.post("/upload", content=chunks(2, 5)).text == "10"


def test_a_declared_length_over_the_limit_gets_413_problem_json_with_the_request_id() -> None:
    response = app_with_limit(10).post("/upload", content=b"x" * 11)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert "10 bytes" in response.json()["detail"]


def test_a_chunked_body_over_the_limit_gets_413() -> None:
    response = app_with_limit(10).post("/upload", content=chunks(3, 5))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_a_body_passing_the_limit_after_the_response_started_raises() -> None:
    client = app_with_limit(10)
    with pytest.raises(Exception):  # noqa: B017 - the internal marker escapes, as in starlette
        client.post("/late", content=chunks(3, 5))


@pytest.mark.parametrize("bad", [-1, "1MB", True, 1.5])
def test_a_bad_limit_is_refused(bad: object) -> None:
    with pytest.raises(hk.ConfigurationError, match="max_body_size"):
        BodyLimitMiddleware(upload, max_body_size=bad)  # type: ignore[arg-type]


def test_harden_uses_starlettes_middleware_when_present_and_ours_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        from starlette.middleware.body_limit import RequestBodyLimitMiddleware  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:
        assert body_limit_class() is BodyLimitMiddleware
    else:
        assert body_limit_class() is RequestBodyLimitMiddleware
    # As on starlette < 1.0, where the module does not exist.
    monkeypatch.setitem(sys.modules, "starlette.middleware.body_limit", None)
    assert body_limit_class() is BodyLimitMiddleware
    app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
    client = TestClient(hk.harden(app, env=False, body_limit={"max_body_size": 10}))
    too_big = client.post("/upload", content=b"x" * 11)
    assert too_big.status_code == 413
    assert too_big.headers["content-type"] == "application/problem+json"
    assert client.post("/upload", content=b"x" * 10).text == "10"


def test_the_environment_sets_the_limit() -> None:
    kit = hk.Kit.from_env({"HARDENKIT_BODY_LIMIT_MAX_BODY_SIZE": "4"}).register(
        BodyLimitMiddleware, max_body_size=1
    )
    # explicit options win over the environment
    assert "max_body_size=1" in kit.describe()
    kit = hk.Kit.from_env({"HARDENKIT_BODY_LIMIT_MAX_BODY_SIZE": "4"}).register(BodyLimitMiddleware)
    app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
    client = TestClient(kit.install(app))
    assert client.post("/upload", content=b"x" * 5).status_code == 413
    assert client.post("/upload", content=b"x" * 4).text == "4"


@pytest.mark.anyio
async def test_an_unparsable_content_length_is_counted_as_the_body_arrives() -> None:
    sent: list[dict[str, object]] = []
    chunks = [
        {"type": "http.request", "body": b"x" * 8, "more_body": True},
        {"type": "http.request", "body": b"x" * 8, "more_body": False},
    ]

    async def receive() -> dict[str, object]:
        return chunks.pop(0)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def app(scope: object, receive: object, send: object) -> None:
        while True:
            message = await receive()  # type: ignore[operator]
            if not message.get("more_body"):
                break

    middleware = BodyLimitMiddleware(app, max_body_size=10)
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"lots")]}
    await middleware(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 413


@pytest.mark.anyio
async def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, str], receive: object, send: object) -> None:
        seen.append(scope["type"])

    await BodyLimitMiddleware(app, max_body_size=1)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]
