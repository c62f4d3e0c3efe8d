"""ASGI apps without lifespan support, wrapped by ``Kit.wrap``, that tests/integration runs under uvicorn.

``app`` raises on a lifespan scope, as Django's ASGI handler does (a plain ASGI
callable, no framework). ``/slow`` creates the file named by
``NOLIFESPAN_APP_MARKER`` once it runs, then answers after 2 s, so a test knows
the request is in flight when it sends SIGTERM.
"""

from __future__ import annotations

import os

import anyio
from starlette.types import Receive, Scope, Send

import hardenkit as hk
from hardenkit.health import HealthProbeMiddleware


async def _answer(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise ValueError(f"this app can only handle HTTP, not {scope['type']}")
    if scope["path"] == "/slow":
        marker = os.environ.get("NOLIFESPAN_APP_MARKER")
        if marker:
            await anyio.Path(marker).write_text("in flight", encoding="utf-8")
        await anyio.sleep(2.0)
        await _answer(send, b"slow done")
        return
    await _answer(send, b"fast")


def wrap(inner: object) -> object:
    """The inner app under the kit, with the probes' shutdown_delay from the environment."""
    kit = hk.Kit().register(
        HealthProbeMiddleware,
        shutdown_delay=float(os.environ.get("NOLIFESPAN_APP_SHUTDOWN_DELAY", "1.0")),
        drain_timeout=10.0,
    )
    kit.register(hk.HeaderContractMiddleware)
    return kit.wrap(inner)  # type: ignore[arg-type]


app = wrap(raw_app)
