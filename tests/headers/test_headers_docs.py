"""The docs' relaxed CSP goes exactly to the docs pages the app serves.

FastAPI's Swagger UI and ReDoc need a CDN and an inline script. The relaxation
used to cover every path under ``/docs`` and ``/redoc`` whether or not the app
served docs there, and missed custom ``docs_url``/``redoc_url`` such as
``/api/docs`` (a blank page). Now it is read from the app.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

import hardenkit as hk
from hardenkit.headers import HeaderContractMiddleware
from support import asgi_request

STRICT = "default-src 'none'; frame-ancestors 'none'"
# What FastAPI's Swagger UI and ReDoc pages need (hardenkit.headers.docs.DOCS_CSP).
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'"
)


def csp(client: TestClient, path: str) -> str:
    response = client.get(path)
    return response.headers["content-security-policy"]


def fastapi_app(**options: Any) -> FastAPI:
    app = FastAPI(**options)

    @app.get("/items")
    async def items() -> list[int]:
        return [1]

    @app.get("/docs/guide")
    async def guide() -> str:
        return "not the docs"

    return app


def test_fastapis_default_docs_pages_get_the_docs_csp_and_nothing_else() -> None:
    app = fastapi_app()
    app.add_middleware(HeaderContractMiddleware)
    client = TestClient(app)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert docs.headers["content-security-policy"] == DOCS_CSP
    assert csp(client, "/redoc") == DOCS_CSP
    assert csp(client, "/docs/oauth2-redirect") == DOCS_CSP
    # Under /docs but not a docs page; the schema itself is JSON: the strict policy.
    assert csp(client, "/docs/guide") == STRICT
    assert csp(client, "/openapi.json") == STRICT
    assert csp(client, "/items") == STRICT


def test_custom_docs_urls_get_the_docs_csp() -> None:
    app = fastapi_app(docs_url="/api/docs", redoc_url="/api/redoc", openapi_url="/api/openapi.json")
    app.add_middleware(HeaderContractMiddleware)
    client = TestClient(app)
    assert "swagger-ui" in client.get("/api/docs").text
    assert csp(client, "/api/docs") == DOCS_CSP
    assert csp(client, "/api/redoc") == DOCS_CSP
    # The default places serve nothing now: no relaxation there.
    assert csp(client, "/docs") == STRICT
    assert csp(client, "/redoc") == STRICT


@pytest.mark.parametrize(
    "options",
    [{"docs_url": None, "redoc_url": None}, {"openapi_url": None}],
    ids=["no-docs", "no-schema"],
)
def test_a_fastapi_app_without_docs_gets_no_relaxation(options: dict[str, Any]) -> None:
    app = fastapi_app(**options)
    app.add_middleware(HeaderContractMiddleware)
    client = TestClient(app)
    assert csp(client, "/docs") == STRICT
    assert csp(client, "/redoc") == STRICT


def test_a_starlette_app_gets_no_relaxation_anywhere() -> None:
    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("<script>alert(1)</script>")

    app = Starlette(routes=[Route("/docs", page), Route("/redoc/x", page)])
    app.add_middleware(HeaderContractMiddleware)
    client = TestClient(app)
    assert csp(client, "/docs") == STRICT
    assert csp(client, "/redoc/x") == STRICT


def test_kit_wrap_reads_the_docs_pages_of_the_wrapped_app() -> None:
    app = fastapi_app(docs_url="/api/docs", redoc_url=None)
    wrapped = hk.Kit().register(hk.HeaderContractMiddleware).wrap(app)
    client = TestClient(wrapped)
    assert csp(client, "/api/docs") == DOCS_CSP
    assert csp(client, "/redoc") == STRICT
    assert csp(client, "/items") == STRICT


def test_harden_keeps_the_docs_working() -> None:
    app = hk.harden(fastapi_app(docs_url="/api/docs"), env=False)
    client = TestClient(app)
    assert csp(client, "/api/docs") == DOCS_CSP
    assert csp(client, "/docs") == STRICT


@pytest.mark.anyio
async def test_docs_pages_match_under_a_root_path() -> None:
    app = fastapi_app()
    app.add_middleware(HeaderContractMiddleware)

    async def behind_proxy(scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn --root-path /svc: the prefix in root_path and in front of path.
        await app({**scope, "root_path": "/svc", "path": "/svc" + scope["path"]}, receive, send)

    docs = await asgi_request(behind_proxy, "/docs")
    assert docs.status == 200
    assert docs.headers["content-security-policy"] == DOCS_CSP
    assert (await asgi_request(behind_proxy, "/items")).headers["content-security-policy"] == STRICT


def test_a_mounted_fastapi_app_with_its_own_middleware_relaxes_its_docs() -> None:
    inner = fastapi_app()
    inner.add_middleware(HeaderContractMiddleware)
    client = TestClient(Starlette(routes=[Mount("/v1", app=inner)]))
    assert csp(client, "/v1/docs") == DOCS_CSP
    assert csp(client, "/v1/items") == STRICT


def test_the_docs_csp_is_the_one_hardenkit_documents() -> None:
    from hardenkit.headers.docs import DOCS_CSP as documented

    assert documented == DOCS_CSP


def test_docs_paths_can_be_listed_or_turned_off() -> None:
    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("docs")

    app = Starlette(routes=[Route("/reference", page), Route("/docs", page)])
    app.add_middleware(HeaderContractMiddleware, docs_paths=["/reference"])
    client = TestClient(app)
    assert csp(client, "/reference") == DOCS_CSP
    assert csp(client, "/docs") == STRICT

    off = fastapi_app()
    off.add_middleware(HeaderContractMiddleware, docs_paths=None)
    assert csp(TestClient(off), "/docs") == STRICT


def test_docs_pages_keep_the_rest_of_the_preset_and_lose_coep() -> None:
    app = fastapi_app()
    app.add_middleware(HeaderContractMiddleware, security_headers="strict")
    headers = TestClient(app).get("/docs").headers
    assert headers["content-security-policy"] == DOCS_CSP
    assert "cross-origin-embedder-policy" not in headers  # would block the CDN's files
    assert headers["x-frame-options"] == "DENY"


def test_without_security_headers_the_docs_get_no_csp_either() -> None:
    app = fastapi_app()
    app.add_middleware(HeaderContractMiddleware, security_headers=None)
    assert "content-security-policy" not in TestClient(app).get("/docs").headers


def test_path_overrides_still_apply_to_other_paths() -> None:
    app = fastapi_app()
    app.add_middleware(HeaderContractMiddleware, path_overrides={"/docs": "web"})
    client = TestClient(app)
    assert csp(client, "/docs") == DOCS_CSP  # the docs page itself
    assert client.get("/docs/guide").headers["x-frame-options"] == "SAMEORIGIN"  # the prefix


@pytest.mark.parametrize("bad", ["/docs", ["docs"], ["/docs?x=1"], [1], 42])
def test_bad_docs_paths_raise_configuration_error(bad: Any) -> None:
    with pytest.raises(hk.ConfigurationError, match="docs_paths"):
        HeaderContractMiddleware(Starlette(), docs_paths=bad)


def test_docs_paths_from_the_environment() -> None:
    env = {"HARDENKIT_HEADERS_DOCS_PATHS": "/reference, /guide"}
    app = Starlette(routes=[Route("/reference", lambda request: PlainTextResponse("x"))])
    hk.Kit.from_env(env).register(hk.HeaderContractMiddleware).install(app)
    assert csp(TestClient(app), "/reference") == DOCS_CSP


def test_served_docs_paths_reads_only_what_fastapi_serves() -> None:
    from hardenkit.headers.docs import served_docs_paths

    assert served_docs_paths(FastAPI()) == frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
    assert served_docs_paths(FastAPI(swagger_ui_oauth2_redirect_url=None, redoc_url=None)) == frozenset(
        {"/docs"}
    )
    assert served_docs_paths(Starlette()) is None
    assert served_docs_paths(object()) is None

    class Raising:
        @property
        def openapi_url(self) -> str:
            raise RuntimeError("no")

    assert served_docs_paths(Raising()) is None


def test_the_chain_search_stops_on_cycles_and_odd_attributes() -> None:
    class Loop:
        def __init__(self) -> None:
            self.app: object = self

    class Boom:
        @property
        def app(self) -> ASGIApp:
            raise RuntimeError("no")

    class Layer:
        def __init__(self, app: object) -> None:
            self.app = app

    deep: object = fastapi_app(docs_url="/deep/docs")
    for _ in range(100):  # far deeper than any real middleware stack: the search gives up
        deep = Layer(deep)
    for inner in (Loop(), Boom(), deep):
        middleware = HeaderContractMiddleware(inner)  # type: ignore[arg-type]
        assert middleware._docs_auto
    shallow = HeaderContractMiddleware(Layer(Layer(fastapi_app(docs_url="/deep/docs"))))  # type: ignore[arg-type]
    assert not shallow._docs_auto and shallow._docs_paths == frozenset(
        {"/deep/docs", "/docs/oauth2-redirect", "/redoc"}
    )
