"""A FastAPI service whose rate limits are shared by every process through Redis.

Run two workers against one Redis and they enforce one combined limit::

    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn ratelimit_redis:app --workers 2

Environment: REDIS_URL (default redis://127.0.0.1:6379/0), RATE_LIMIT (the
default policy, default 100/minute), EXPORT_LIMIT (the /export endpoint's own
limit, default 5/minute).
"""

from __future__ import annotations

import os

from fastapi import Depends, FastAPI

import hardenkit as hk

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RATE_LIMIT = os.environ.get("RATE_LIMIT", "100/minute")
EXPORT_LIMIT = os.environ.get("EXPORT_LIMIT", "5/minute")

app = FastAPI()


@app.get("/")
async def index() -> dict[str, str]:
    return {"hello": "world"}


@app.post("/ai/{model}")
async def ai(model: str) -> dict[str, str]:
    return {"model": model, "answer": "42"}


# A per-endpoint limit without a `request` parameter: counted on top of the default.
@app.get("/export", dependencies=[Depends(hk.rate_limit("export"))])
async def export() -> dict[str, str]:
    return {"export": "done"}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


app.add_middleware(
    hk.RateLimitMiddleware,
    storage=REDIS_URL,
    default=RATE_LIMIT,
    policies={"ai": "20/minute", "export": EXPORT_LIMIT},
    rules=[("POST /ai/*", "ai"), ("/healthz", None)],
    # While Redis is unreachable each process limits on its own, then Redis takes over again.
    on_storage_error="memory",
)
