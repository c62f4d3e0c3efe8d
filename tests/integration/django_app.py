"""Django's real ASGI handler under ``Kit.wrap``, for tests/integration (needs Django installed).

Configured in code (no project on disk): ``/slow`` is an async view that creates
the file named by ``NOLIFESPAN_APP_MARKER`` once it runs, then answers after 2 s.
"""

from __future__ import annotations

import os

import anyio
from django.conf import settings  # type: ignore[import-untyped,import-not-found,unused-ignore]
from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped,import-not-found,unused-ignore]
from django.urls import path  # type: ignore[import-untyped,import-not-found,unused-ignore]

import hardenkit as hk
from hardenkit.health import HealthProbeMiddleware

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="hardenkit-tests-only",  # a throwaway key for this test server
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
)


async def slow(request: HttpRequest) -> HttpResponse:
    marker = os.environ.get("NOLIFESPAN_APP_MARKER")
    if marker:
        await anyio.Path(marker).write_text("in flight", encoding="utf-8")
    await anyio.sleep(2.0)
    return HttpResponse("slow done", content_type="text/plain")


async def fast(request: HttpRequest) -> HttpResponse:
    return HttpResponse("fast", content_type="text/plain")


urlpatterns = [path("slow", slow), path("", fast)]

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: E402 - needs the settings above

app = (
    hk.Kit()
    .register(
        HealthProbeMiddleware,
        shutdown_delay=float(os.environ.get("NOLIFESPAN_APP_SHUTDOWN_DELAY", "1.0")),
        drain_timeout=10.0,
    )
    .register(hk.HeaderContractMiddleware)
    .wrap(get_asgi_application())
)
