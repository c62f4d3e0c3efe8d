"""A bare app behind RateLimitMiddleware, configured from the environment, for fleet tests.

RL_STORAGE (a storage URI), RL_STRATEGY, RL_LIMIT, RL_PREFIX (key_prefix),
RL_ON_ERROR (on_storage_error, default "deny" so that no failure can hide as an
admission) and RL_TIMEOUT (storage_timeout).
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hardenkit.ratelimit import RateLimitMiddleware


async def index(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/", index)])
app.add_middleware(
    RateLimitMiddleware,
    storage=os.environ["RL_STORAGE"],
    strategy=os.environ.get("RL_STRATEGY", "sliding-window"),
    default=os.environ.get("RL_LIMIT", "100 per 100 days"),
    key_prefix=os.environ.get("RL_PREFIX", "fleet"),
    on_storage_error=os.environ.get("RL_ON_ERROR", "deny"),
    storage_timeout=float(os.environ.get("RL_TIMEOUT", "5")),
)
