"""Label values a client cannot grow: route templates, known methods, status codes, a cap.

A raw path as a label is the classic cardinality explosion (``/items/1``,
``/items/2``... one time series each, for ever). The label is the route
*template* the router matched (``/items/{id}``), read from what Starlette and
FastAPI leave in the scope (``scope["route"]``, and for mounts the ``root_path``
they consumed); a path no route matched is one label; and every label keeps at
most ``max_values`` distinct values, the rest going to one overflow label.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "OVERFLOW",
    "UNMATCHED",
    "LabelCap",
    "RouteTemplates",
    "method_label",
    "status_label",
]

#: The route label of a request no route matched (404s, redirects of the router).
UNMATCHED = "<unmatched>"
#: The value a label takes once its cap is reached.
OVERFLOW = "<other>"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
# Status labels are precomputed: a str() per request is measurable at this scale.
_STATUS = {code: str(code) for code in range(100, 600)}
_STATUS_CLASS = {code: f"{code // 100}xx" for code in range(100, 600)}
# Bounds the cache of mount prefixes; each entry is a few dozen bytes.
_MOUNT_CACHE = 1024

RouteResolver = Callable[[Mapping[str, Any]], "str | None"]


def method_label(method: str) -> str:
    """The method, or ``OTHER`` for anything that is not a standard method (clients send any token)."""
    return method if method in _METHODS else "OTHER"


def status_label(status: int) -> tuple[str, str]:
    """(code, class) labels; anything outside 100-599 is ``other``."""
    code = _STATUS.get(status)
    if code is None:
        return "other", "other"
    return code, _STATUS_CLASS[status]


class LabelCap:
    """At most ``max_values`` distinct values for one label; later new values become :data:`OVERFLOW`."""

    __slots__ = ("_lock", "_seen", "max_values", "overflowed")

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.overflowed = 0

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.max_values:
                self._seen.add(value)
                return value
            self.overflowed += 1
            return OVERFLOW

    def __len__(self) -> int:
        return len(self._seen)


class RouteTemplates:
    """The route template a request was routed to, from what the router left in the scope.

    ``resolver`` (a callable taking the scope) is for frameworks that do not set
    ``scope["route"]``; it returns the template or None (unmatched).
    """

    def __init__(self, *, resolver: RouteResolver | None = None, unmatched: str = UNMATCHED) -> None:
        self._resolver = resolver
        self.unmatched = unmatched
        self._mounts: dict[tuple[int, str], str | None] = {}

    def template(self, scope: Mapping[str, Any], root_path: str, app: Any, *, routed: bool = True) -> str:
        """``root_path``: the scope's root_path when the request entered; ``app``: the scope's app then.

        ``routed=False`` (an answer that may have come before the router ran: a 429, a
        413) matches the app's routes here when the router left nothing in the scope.
        """
        if self._resolver is not None:
            found = self._resolver(scope)
            return found if isinstance(found, str) and found else self.unmatched
        route = scope.get("route")
        if route is None:
            if routed:
                return self.unmatched
            return _match_routes(getattr(app, "routes", None) or (), scope, root_path) or self.unmatched
        own = getattr(route, "path_format", None)
        if not isinstance(own, str):
            return self.unmatched
        consumed = scope.get("root_path", "")
        if consumed == root_path:
            return own or "/"
        # Mounts moved part of the path into root_path; what they consumed may hold raw
        # parameter values (Mount("/users/{uid}")), so it is turned back into templates.
        consumed = consumed[len(root_path) :] if consumed.startswith(root_path) else consumed
        prefix = self._mount_prefix(app, consumed, route)
        if prefix is None:
            return self.unmatched
        return (prefix + own) or "/"

    def _mount_prefix(self, app: Any, consumed: str, route: Any) -> str | None:
        key = (id(app), consumed)
        if key in self._mounts:
            found = self._mounts[key]
        else:
            found = _mount_templates(getattr(app, "routes", None) or (), consumed)
            if len(self._mounts) < _MOUNT_CACHE:
                self._mounts[key] = found
        if found is None:
            return None
        # The request ended on a Mount itself (a mounted app with no router, or a 404 inside
        # one): its own template is the last mount's, so the chain stops one mount earlier.
        if hasattr(route, "routes") and route.path_format.endswith("/{path}"):
            return found[: len(found) - len(route.path_format) + len("/{path}")]
        return found


def _match_routes(routes: Sequence[Any], scope: Mapping[str, Any], root_path: str) -> str | None:
    """Match ``routes`` as the router would have (a refusal answered before it ran), depth-first."""
    from starlette.routing import Match

    child: dict[str, Any] = {**scope, "root_path": root_path}
    template = ""
    partial: str | None = None
    for _ in range(16):
        for route in routes:
            try:
                match, updates = route.matches(child)
            except Exception:
                continue
            path_format = getattr(route, "path_format", None)
            if not isinstance(path_format, str):
                continue
            if match is Match.FULL:
                inner = getattr(route, "routes", None)
                if inner and path_format.endswith("/{path}"):
                    template += path_format[: -len("/{path}")]
                    child.update(updates)
                    routes = inner
                    break
                return template + path_format or "/"
            if match is Match.PARTIAL and partial is None:
                partial = template + path_format or "/"
        else:
            return partial
    return partial


def _mount_templates(routes: Sequence[Any], consumed: str) -> str | None:
    """The templates of the mounts that consumed ``consumed`` (e.g. ``/v1/users/{uid}``), or None."""
    template = ""
    remaining = consumed
    depth = 0
    while remaining and depth < 16:
        depth += 1
        for candidate in routes:
            regex: re.Pattern[str] | None = getattr(candidate, "path_regex", None)
            path_format = getattr(candidate, "path_format", "")
            if regex is None or not hasattr(candidate, "routes") or not path_format.endswith("/{path}"):
                continue
            match = regex.match(remaining + "/")
            if match is None:
                continue
            rest = match.groupdict().get("path", "")
            matched = (remaining + "/")[: len(remaining) + 1 - len("/" + rest)]
            if not matched or not remaining.startswith(matched):
                continue
            template += path_format[: -len("/{path}")]
            remaining = remaining[len(matched) :]
            routes = candidate.routes
            break
        else:
            return None
    return template if not remaining else None
