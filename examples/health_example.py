"""Health probes for a Starlette app (run: uvicorn health_example:app --app-dir examples).

/livez answers as long as the process does, /readyz runs the checks (cached for
one second), /healthz shows each check; on SIGTERM readiness fails at once and
uvicorn is told to stop 5 seconds later, while in-flight requests finish.
"""

from __future__ import annotations

import os
import tempfile

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hardenkit.health import Check, HealthProbeMiddleware, disk_space, writable_dir

STATE_DIR = os.environ.get("STATE_DIR", tempfile.gettempdir())


def config_loaded() -> dict[str, object]:
    """A custom sync check: it runs in a worker thread of the probes' own, with a timeout."""
    return {"status": "pass", "observedValue": len(os.environ), "observedUnit": "variables"}


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/", hello)])
app.add_middleware(
    HealthProbeMiddleware,
    checks=[
        disk_space(STATE_DIR, min_free_bytes=10 * 1024 * 1024, warn_free_bytes=100 * 1024 * 1024),
        writable_dir(STATE_DIR, name="state_dir"),
        Check("config", config_loaded, critical=False, timeout=0.5),
    ],
    version="1.0.0",
    service_id="health-example",
    shutdown_delay=5.0,
)
