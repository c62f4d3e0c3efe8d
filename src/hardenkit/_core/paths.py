"""The path a request is routed on: what every component that matches paths compares against.

Under ``uvicorn --root-path /api`` (or a Starlette ``Mount``), ASGI servers put the
prefix in ``scope["root_path"]`` and, as the ASGI spec says, keep it in
``scope["path"]`` too. Routers match ``path`` minus ``root_path``; so must the
rate limiter's rules, the probe paths, the access-log exclusions and the header
path overrides, or a rule for ``POST /login`` never applies behind a prefix.
Written here rather than imported from starlette because ``starlette._utils`` is
private and the lock and aio packages must not load starlette.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["route_path"]


def route_path(scope: Mapping[str, Any]) -> str:
    """``scope["path"]`` without the ``root_path`` prefix, where the path carries it.

    A path that does not start with ``root_path`` (a server that already strips
    it, as older servers did) is returned as it is; the root itself is ``"/"``.
    """
    path: str = scope.get("path", "/")
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    rest = path[len(root_path) :]
    if not rest:
        return "/"
    if rest[0] == "/":
        return rest
    return path  # "/apiary" under root_path "/api" is not inside the mount
