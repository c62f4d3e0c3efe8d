"""Helpers for the metrics tests: one ASGI request with a body or a disconnect, and reading a scrape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from prometheus_client.parser import text_string_to_metric_families

from support import AsgiResponse


async def call(
    app: Any,
    path: str = "/",
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
    client: tuple[str, int] | None = ("127.0.0.1", 1234),
    disconnect: bool = False,
    root_path: str = "",
) -> AsgiResponse | None:
    """One request; ``disconnect`` sends ``http.disconnect`` right after the body. None if nothing was sent."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": root_path + path, "raw_path": (root_path + path).encode(),
        "root_path": root_path, "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers], "client": client, "server": ("testserver", 80),
    }  # fmt: skip
    messages: list[dict[str, Any]] = []
    sent_body = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        if disconnect:
            return {"type": "http.disconnect"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    if not messages:
        return None
    return AsgiResponse(scope, messages)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``{sorted label items: value}`` for the samples called ``name`` in an exposition."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def requests_by(text: str, *labels: str) -> dict[tuple[str, ...], float]:
    """http_requests_total summed by the given labels."""
    totals: dict[tuple[str, ...], float] = {}
    for items, value in samples(text, "http_requests_total").items():
        mapping = dict(items)
        key = tuple(mapping[label] for label in labels)
        totals[key] = totals.get(key, 0.0) + value
    return totals


async def scrape(app: Any, *, accept: bytes = b"") -> str:
    headers = [(b"accept", accept)] if accept else []
    response = await call(app, "/metrics", headers=headers)
    assert response is not None and response.status == 200, response and response.body
    return response.body.decode()
