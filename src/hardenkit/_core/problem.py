"""RFC 9457 problem details (``application/problem+json``) answers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from .context import REQUEST_ID

PROBLEM_JSON = "application/problem+json"


def problem_body(
    status: int,
    title: str,
    *,
    detail: str | None = None,
    type: str = "about:blank",
    instance: str | None = None,
    request_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """Encode a problem document; ``request_id`` defaults to the current request's id."""
    document: dict[str, Any] = {"type": type, "title": title, "status": status}
    if detail is not None:
        document["detail"] = detail
    if instance is not None:
        document["instance"] = instance
    if extra:
        document.update(extra)
    rid = request_id if request_id is not None else REQUEST_ID.get()
    if rid is not None:
        document["request_id"] = rid
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def problem_response(
    status: int, title: str, *, headers: Mapping[str, str] | None = None, **fields: Any
) -> Response:
    """A Response (an ASGI app) carrying a problem document; ``fields`` as for :func:`problem_body`."""
    body = problem_body(status, title, **fields)
    return Response(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)
