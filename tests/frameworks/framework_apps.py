"""The same small service in each ASGI framework hardenkit is tested with.

Every app serves ``/`` (200 "ok"), ``/boom`` (raises RuntimeError, answered by the
framework's own 500 page), ``/limited`` (an in-handler ``hk.rate_limit("1/minute")``
check) and records its own startup in ``STARTED``. A framework that is not
installed makes its builder skip the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

import hardenkit as hk

#: Frameworks whose startup hook ran, in order.
STARTED: list[str] = []


def _recording_lifespan(name: str) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        STARTED.append(name)
        yield

    return lifespan


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def index(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def boom(request: Request) -> Response:
        raise RuntimeError("kaput")

    async def limited(request: Request) -> Response:
        await hk.rate_limit("1/minute")()
        return PlainTextResponse("ok")

    return Starlette(
        routes=[Route("/", index), Route("/boom", boom), Route("/limited", limited)],
        lifespan=_recording_lifespan("starlette"),
    )


def fastapi_app() -> Any:
    pytest.importorskip("fastapi")
    from fastapi import FastAPI
    from starlette.responses import PlainTextResponse

    app = FastAPI(lifespan=_recording_lifespan("fastapi"))

    @app.get("/", response_class=PlainTextResponse)
    async def index() -> str:
        return "ok"

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("kaput")

    @app.get("/limited", response_class=PlainTextResponse)
    async def limited() -> str:
        await hk.rate_limit("1/minute")()
        return "ok"

    return app


def litestar_app() -> Any:
    pytest.importorskip("litestar")
    from litestar import Litestar, get

    @get("/", media_type="text/plain")
    async def index() -> str:
        return "ok"

    @get("/boom", media_type="text/plain")
    async def boom() -> str:
        raise RuntimeError("kaput")

    @get("/limited", media_type="text/plain")
    async def limited() -> str:
        await hk.rate_limit("1/minute")()
        return "ok"

    return Litestar(
        [index, boom, limited], on_startup=[lambda: STARTED.append("litestar")], logging_config=None
    )


def quart_app() -> Any:
    pytest.importorskip("quart")
    from quart import Quart

    app = Quart("hardenkit_quart_test")

    @app.before_serving
    async def started() -> None:
        STARTED.append("quart")

    @app.get("/")
    async def index() -> str:
        return "ok"

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("kaput")

    @app.get("/limited")
    async def limited() -> str:
        await hk.rate_limit("1/minute")()
        return "ok"

    return app


async def _django_index(request: Any) -> Any:
    from django.http import HttpResponse  # type: ignore[import-untyped,import-not-found,unused-ignore]

    return HttpResponse("ok", content_type="text/plain")


async def _django_boom(request: Any) -> Any:
    raise RuntimeError("kaput")


async def _django_limited(request: Any) -> Any:
    await hk.rate_limit("1/minute")()
    return await _django_index(request)


urlpatterns: list[Any] = []


def django_app() -> Any:
    """Django's real ASGI handler (it rejects lifespan: the kit answers it)."""
    pytest.importorskip("django")
    from django.conf import settings  # type: ignore[import-untyped,import-not-found,unused-ignore]

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
            ROOT_URLCONF=__name__,
            SECRET_KEY="hardenkit-tests-only",  # a throwaway key for in-process tests
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            DATABASES={},
            LOGGING_CONFIG=None,
        )
    from django.core.asgi import get_asgi_application  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from django.urls import path  # type: ignore[import-untyped,import-not-found,unused-ignore]

    if not urlpatterns:
        urlpatterns.extend(
            [path("", _django_index), path("boom", _django_boom), path("limited", _django_limited)]
        )
    return get_asgi_application()


BUILDERS: dict[str, Callable[[], Any]] = {
    "starlette": starlette_app,
    "fastapi": fastapi_app,
    "litestar": litestar_app,
    "quart": quart_app,
    "django": django_app,
}
