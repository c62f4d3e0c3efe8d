"""Call blocking code from async code with hardenkit.aio (run: python examples/aio_example.py).

A slow "database" gets its own pool of 2 threads and a 0.2 s timeout: one hung
call gives the caller a CallTimeout on time while its thread keeps its token,
and limiter_stats() shows it until the thread ends.
"""

from __future__ import annotations

import threading
import time

import anyio

from hardenkit.aio import AsyncWrapper, configure_limiter, gather_limited, limiter_stats, run_sync, to_async
from hardenkit.errors import CallTimeout
from hardenkit.headers import REQUEST_ID

configure_limiter("db", 2)
unstick = threading.Event()


@to_async(limiter="db", timeout=0.2)
def query(sql: str) -> str:
    """A blocking driver call; 'hang' never answers until unstuck."""
    if sql == "hang":
        unstick.wait(10)
    return f"rows for {sql!r} (request id in thread: {REQUEST_ID.get()})"


def square(i: int) -> int:
    return i * i


class Cache:
    """A sync client: AsyncWrapper gives awaitable versions of its methods."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def set(self, key: str, value: str) -> None:
        self.data[key] = value

    def get(self, key: str) -> str | None:
        return self.data.get(key)


async def main() -> None:
    REQUEST_ID.set("demo-1")  # in a web app the header contract middleware sets it
    print(await query("select 1"))

    try:
        await query("hang")
    except CallTimeout as error:
        print(f"timed out: {type(error).__name__}: {error}")
    print("while hung:", limiter_stats()["db"])
    unstick.set()
    while limiter_stats()["db"]["borrowed"]:  # the abandoned thread ends, its token comes back
        await anyio.sleep(0.01)
    print("after:", limiter_stats()["db"])

    cache = AsyncWrapper(Cache(), limiter="db")
    await cache.set("greeting", "hello")
    print("cache:", await cache.get("greeting"))

    squares = await gather_limited(*(to_async(square)(i) for i in range(6)), limit=3)
    print("squares:", squares)


if __name__ == "__main__":
    started = time.monotonic()
    run_sync(main)
    print(f"done in {time.monotonic() - started:.2f} s")
