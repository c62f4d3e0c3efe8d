"""Apps that tests/integration/test_check_*.py serve under a real uvicorn for ``hardenkit check``.

``bare``: a plain Starlette app, no hardening at all (the violations a check must list).
``leaky``: a hardened app that still reflects any origin with credentials and leaks versions.
``api``: a FastAPI app with an OpenAPI document and a path parameter (discovery).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import hardenkit as hk


async def home(request: Request) -> Response:
    return JSONResponse({"hello": "world"})


async def items(request: Request) -> Response:
    return PlainTextResponse("items")


bare = Starlette(routes=[Route("/", home), Route("/items", items)])


async def powered(request: Request) -> Response:
    return JSONResponse({"ok": True}, headers={"X-Powered-By": "Express/4.17.1"})


async def big(request: Request) -> Response:
    return JSONResponse({"filler": "x" * 5000})


# Gzip-compressed answers (problem+json 404s included) are judged on their decoded bodies.
async def boom(request: Request) -> Response:
    raise RuntimeError("a deliberate failure")


zipped = hk.harden(Starlette(routes=[Route("/", big), Route("/boom", boom)]), env=False)
zipped.add_middleware(GZipMiddleware, minimum_size=10)

leaky = hk.harden(Starlette(routes=[Route("/", powered)]), env=False)
leaky.add_middleware(CORSMiddleware, allow_origin_regex=".*", allow_credentials=True, allow_methods=["GET"])

api = FastAPI()


@api.get("/things/{thing_id}")
async def thing(thing_id: int) -> dict[str, int]:
    return {"id": thing_id}


@api.get("/plain")
async def plain() -> dict[str, str]:
    return {"ok": "yes"}
