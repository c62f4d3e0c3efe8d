"""The app that tests/integration/test_auth_redis.py runs under real uvicorn processes.

``AUTH_APP_STORE`` is the key store (a redis:// URL); the admin app is mounted at /admin/keys;
``AUTH_APP_RATE`` (a limit string) adds a per-key rate limit counted in the same Redis.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import hardenkit as hk
from hardenkit.auth import RedisKeyStore, admin_app, key_by_principal


async def whoami(request: Request) -> JSONResponse:
    found = hk.principal()
    return JSONResponse({"name": found.name if found else None, "pid": os.getpid()})


store = RedisKeyStore(
    os.environ["AUTH_APP_STORE"], cache_ttl=float(os.environ.get("AUTH_APP_CACHE_TTL", "1"))
)
app = Starlette(routes=[Route("/whoami", whoami), Mount("/admin/keys", admin_app(store))])
kit = hk.Kit().register(hk.APIKeyMiddleware, store=store, rules=[("/admin/*", "admin")])
if os.environ.get("AUTH_APP_RATE"):
    # Per-key limits shared by the fleet: the rate limiter counts in the same Redis, keyed by key id.
    kit.register(
        hk.RateLimitMiddleware,
        default=os.environ["AUTH_APP_RATE"],
        storage=os.environ["AUTH_APP_STORE"],
        key=key_by_principal,
        strategy="moving-window",  # exact counts: the test must not depend on where a window starts
        exempt_paths=["/admin/*"],
    )
kit.install(app)
