"""A Litestar app hardened by ``harden()`` (the whole set), for tests/integration under uvicorn.

``/slow`` creates the file named by ``FRAMEWORK_APP_MARKER`` once it runs, then answers
after 2 s; ``FRAMEWORK_APP_STARTED`` names a file the app's own startup hook writes,
so a test sees that Litestar's lifespan ran under the kit.
"""

from __future__ import annotations

import os

import anyio
from litestar import Litestar, get

import hardenkit as hk


@get("/", media_type="text/plain")
async def fast() -> str:
    return "fast"


@get("/slow", media_type="text/plain")
async def slow() -> str:
    marker = os.environ.get("FRAMEWORK_APP_MARKER")
    if marker:
        await anyio.Path(marker).write_text("in flight", encoding="utf-8")
    await anyio.sleep(2.0)
    return "slow done"


async def started() -> None:
    path = os.environ.get("FRAMEWORK_APP_STARTED")
    if path:
        await anyio.Path(path).write_text("started", encoding="utf-8")


app = hk.harden(
    Litestar([fast, slow], on_startup=[started], logging_config=None),
    env=False,
    health={"shutdown_delay": 1.0, "drain_timeout": 10.0},
)
