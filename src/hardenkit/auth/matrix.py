"""The permission matrix of an app: route x method x the roles that may call it.

Built from the app's routes (Starlette routes and mounts, FastAPI routes and their dependencies)
and from the rules of the APIKeyMiddleware found among the app's middleware; both the middleware's
rule and a route's own ``require_roles`` must allow a role for it to be listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .context import RoleRequirement
from .manage import expand_roles
from .middleware import DEFAULT_IMPLIES, APIKeyMiddleware
from .rules import DENY, PUBLIC, RoleRules

__all__ = ["MatrixRow", "permission_matrix", "render_markdown"]


@dataclass(frozen=True)
class MatrixRow:
    method: str
    path: str
    #: "public", "any key", "denied" or "roles"
    access: str
    roles: tuple[str, ...]


def _middleware_options(app: Any) -> dict[str, Any] | None:
    for middleware in getattr(app, "user_middleware", ()):
        if getattr(middleware, "cls", None) is APIKeyMiddleware:
            return dict(middleware.kwargs)
    return None


def _route_requirements(route: Any) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for target in (getattr(route, "endpoint", None), getattr(route, "app", None)):
        roles = getattr(target, "hardenkit_roles", None)
        if isinstance(roles, tuple):
            found.append(roles)
    pending = list(getattr(getattr(route, "dependant", None), "dependencies", ()))
    while pending:
        dependency = pending.pop()
        if isinstance(dependency.call, RoleRequirement):
            found.append(dependency.call.roles)
        pending.extend(dependency.dependencies)
    return found


def _walk(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    for route in routes:
        path = prefix + getattr(route, "path", "")
        children = getattr(route, "routes", None)
        if children is not None and not hasattr(route, "endpoint"):
            yield from _walk(children, path)
            continue
        methods = getattr(route, "methods", None)
        if methods is None:
            continue  # websocket routes and raw mounts: no method to list
        for method in sorted(m for m in methods if m != "HEAD"):
            yield method, path or "/", route


def permission_matrix(app: Any, *, middleware_options: Mapping[str, Any] | None = None) -> list[MatrixRow]:
    """One row per route and method, in route order."""
    options = dict(middleware_options) if middleware_options is not None else _middleware_options(app) or {}
    rules = RoleRules(
        options.get("rules"),
        public_paths=options.get("public_paths", ()),
        deny_unmatched=options.get("deny_unmatched", False),
    )
    implies = {role: tuple(lower) for role, lower in (options.get("implies") or DEFAULT_IMPLIES).items()}
    rows_in: list[tuple[str, str, tuple[str, ...] | None, list[tuple[str, ...]]]] = []
    known: set[str] = set(implies) | {role for lower in implies.values() for role in lower}
    for method, path, route in _walk(getattr(app, "routes", ())):
        required = rules.required(method, path)
        own = _route_requirements(route)
        rows_in.append((method, path, required, own))
        known.update(role for roles in own for role in roles)
        if required not in (PUBLIC, DENY):
            known.update(required or ())
    rows: list[MatrixRow] = []
    for method, path, required, own in rows_in:
        if required is DENY:
            rows.append(MatrixRow(method, path, "denied", ()))
            continue
        if required is PUBLIC and not own:
            rows.append(MatrixRow(method, path, "public", ()))
            continue
        checks = [r for r in [required, *own] if r]
        if not checks:
            rows.append(MatrixRow(method, path, "any key", tuple(sorted(known))))
            continue
        allowed = tuple(
            sorted(
                role for role in known if all(expand_roles([role], implies) & set(check) for check in checks)
            )
        )
        rows.append(MatrixRow(method, path, "roles", allowed))
    return rows


def render_markdown(rows: Iterable[MatrixRow]) -> str:
    lines = ["| method | path | access | roles |", "| --- | --- | --- | --- |"]
    lines.extend(f"| {r.method} | `{r.path}` | {r.access} | {', '.join(r.roles) or '-'} |" for r in rows)
    return "\n".join(lines)
