"""``hardenkit demo``: serve examples/demo_app.py, hardened by harden(), on 127.0.0.1."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

_INSTALL_HINT = "hardenkit demo needs uvicorn: pip install 'hardenkit[demo]'"


def demo_app_path() -> Path:
    """The demo app: the copy shipped in the wheel, else examples/ of a source checkout."""
    bundled = Path(__file__).with_name("_demo_app.py")
    if bundled.exists():
        return bundled
    return Path(__file__).resolve().parents[3] / "examples" / "demo_app.py"


def load_demo_app() -> Any:
    path = demo_app_path()
    spec = importlib.util.spec_from_file_location("hardenkit_demo_app", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a broken installation
        raise RuntimeError(f"cannot load the demo app from {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hardenkit demo",
        description="Serve the demo app, hardened by harden(), on 127.0.0.1 (needs uvicorn: "
        "pip install 'hardenkit[demo]').",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--redis", metavar="URL", help="share rate limits through Redis, e.g. redis://127.0.0.1:6379/0"
    )
    args = parser.parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        print(_INSTALL_HINT, file=sys.stderr)
        return 1
    if args.redis:
        # Shared limits through Redis; per-process limits while it is unreachable.
        os.environ["HARDENKIT_RATELIMIT_STORAGE"] = args.redis
        os.environ.setdefault("HARDENKIT_RATELIMIT_ON_STORAGE_ERROR", "memory")
    from ..logs import configure_logging

    configure_logging(level="INFO", json=False)
    app = load_demo_app()
    url = f"http://{args.host}:{args.port}"
    print(f"hardenkit demo on {url}  (Ctrl+C to stop)")
    print("try:")
    print(f"  curl -i {url}/items/1")
    print(f"  curl -i -H 'X-Request-ID: my-trace-1' {url}/")
    print(f"  curl -i {url}/boom            # problem+json 500 with the request id")
    print(f"  curl -i {url}/readyz          # health probe")
    print(f"  for i in $(seq 120); do curl -s -o /dev/null -w '%{{http_code}} ' {url}/; done   # 429s")
    sys.stdout.flush()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
    except KeyboardInterrupt:
        # Older uvicorn releases (0.30) re-raise Ctrl+C once they have shut down gracefully:
        # for the demo that is the normal way out, not an error.
        pass
    return 0
