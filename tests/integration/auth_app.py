"""The app that tests/integration/test_auth_redis.py runs under real uvicorn processes.

``AUTH_APP_STORE`` is the key store (a redis:// URL); the admin app is mounted at /admin/keys.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import hardenkit as hk
from hardenkit.auth import RedisKeyStore, admin_app


async def whoami(request: Request) -> JSONResponse:
    found = hk.principal()
    return JSONResponse({"name": found.name if found else None, "pid": os.getpid()})


store = RedisKeyStore(
    os.environ["AUTH_APP_STORE"], cache_ttl=float(os.environ.get("AUTH_APP_CACHE_TTL", "1"))
)
app = Starlette(routes=[Route("/whoami", whoami), Mount("/admin/keys", admin_app(store))])
hk.Kit().register(hk.APIKeyMiddleware, store=store, rules=[("/admin/*", "admin")]).install(app)
