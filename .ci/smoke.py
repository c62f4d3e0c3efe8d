"""Smoke test of an installed hardenkit wheel, run from a clean venv outside the source tree.

Checks what a user gets from `pip install hardenkit[demo]`: the package imports
lightly, the console script answers, and the demo app (shipped inside the wheel)
serves its routes with the header contract, driven in-process over raw ASGI (no
test client needed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any


async def call(app: Any, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "state": {},
    }  # fmt: skip
    sent: list[dict[str, Any]] = []
    request = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return request.pop() if request else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    except Exception:  # an app error re-raised after the 500 went out, as servers see it
        pass
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, body


def main() -> None:
    import hardenkit

    here = Path(hardenkit.__file__).resolve()
    assert "site-packages" in here.parts, f"hardenkit imported from {here}, not from the installed wheel"
    heavy = [m for m in ("starlette", "limits", "redis", "uvicorn") if m in sys.modules]
    assert not heavy, f"import hardenkit loaded {heavy}"

    version = subprocess.run(["hardenkit", "--version"], check=True, capture_output=True, text=True).stdout
    assert version.strip() == f"hardenkit {hardenkit.__version__}", version

    from hardenkit.cli.demo import demo_app_path

    assert "site-packages" in demo_app_path().parts, demo_app_path()
    asyncio.run(serve_demo())
    print(f"smoke: hardenkit {hardenkit.__version__} wheel OK ({here.parent})")


async def serve_demo() -> None:
    from hardenkit.cli.demo import load_demo_app

    app = load_demo_app()
    logging.disable(logging.CRITICAL)  # /boom's traceback is expected; keep CI output readable
    for method, path, status in [("GET", "/", 200), ("GET", "/items/1", 200), ("GET", "/missing", 404),
                                 ("GET", "/boom", 500)]:  # fmt: skip
        got, headers, body = await call(app, method, path)
        assert got == status, (path, got, body[:200])
        assert headers.get("x-request-id") and "x-latency-ms" in headers, (path, headers)
    got, headers, body = await call(app, "GET", "/livez")
    assert got == 200 and headers["content-type"] == "application/health+json", (got, headers)
    _, headers, body = await call(app, "GET", "/boom")
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["request_id"] == headers["x-request-id"]


if __name__ == "__main__":
    main()
