"""Which endpoints to call: from an OpenAPI document, or from the paths given on the command line.

Only safe methods are called unless the user allows others; path parameters get
a value from ``--param name=value``, else from the schema (example, default, the
first enum value), else a sample of the parameter's type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SAFE_METHODS", "Endpoint", "endpoints_from_openapi", "fill_path"]

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_METHODS = ("get", "head", "options", "post", "put", "patch", "delete")
_PARAM = re.compile(r"{([^{}/]+)}")
_MAX_ENDPOINTS = 1000  # a document larger than this is cut: the request budget is smaller anyway


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # filled: ready to request
    template: str  # as documented, for the report


def _sample(schema: Mapping[str, Any] | None) -> str:
    """A value of the schema's type: what a client that knows nothing better would send."""
    schema = schema or {}
    for key in ("example", "default"):
        if key in schema and isinstance(schema[key], (str, int, float)) and not isinstance(schema[key], bool):
            return str(schema[key])
    examples = schema.get("examples")
    if isinstance(examples, list) and examples and isinstance(examples[0], (str, int, float)):
        return str(examples[0])
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return str(enum[0])
    kind = schema.get("type")
    fmt = schema.get("format")
    if kind in ("integer", "number"):
        minimum = schema.get("minimum")
        return str(int(minimum)) if isinstance(minimum, (int, float)) and minimum > 1 else "1"
    if kind == "boolean":
        return "true"
    if fmt == "uuid":
        return "00000000-0000-4000-8000-000000000000"
    if fmt == "date":
        return "2024-01-01"
    if fmt == "date-time":
        return "2024-01-01T00:00:00Z"
    return "1"  # a string parameter: "1" is a plausible id for most services


def fill_path(template: str, values: Mapping[str, str]) -> str:
    return _PARAM.sub(lambda match: values.get(match.group(1).split(":", 1)[0], "1"), template)


def _parameter_values(
    operation: Mapping[str, Any], shared: Iterable[Any], given: Mapping[str, str]
) -> dict[str, str]:
    values: dict[str, str] = {}
    for parameter in [*shared, *(operation.get("parameters") or [])]:
        if not isinstance(parameter, Mapping) or parameter.get("in") != "path":
            continue
        name = str(parameter.get("name", ""))
        if name in given:
            values[name] = given[name]
            continue
        if "example" in parameter and isinstance(parameter["example"], (str, int, float)):
            values[name] = str(parameter["example"])
            continue
        schema = parameter.get("schema")
        values[name] = _sample(schema if isinstance(schema, Mapping) else None)
    for name, value in given.items():
        values.setdefault(name, value)
    return values


def endpoints_from_openapi(
    document: Mapping[str, Any], *, methods: Iterable[str], params: Mapping[str, str]
) -> list[Endpoint]:
    """The operations of an OpenAPI 3 (or Swagger 2) document whose method is allowed."""
    allowed = {method.lower() for method in methods}
    paths = document.get("paths")
    if not isinstance(paths, Mapping):
        return []
    base = ""
    servers = document.get("servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], Mapping):
        url = str(servers[0].get("url", ""))
        if url.startswith("/"):
            base = url.rstrip("/")  # a relative server URL prefixes every path
    elif isinstance(document.get("basePath"), str):
        base = str(document["basePath"]).rstrip("/")
    found: list[Endpoint] = []
    for template, item in paths.items():
        if not isinstance(template, str) or not template.startswith("/") or not isinstance(item, Mapping):
            continue
        shared = item.get("parameters") or []
        for method in _METHODS:
            operation = item.get(method)
            if method not in allowed or not isinstance(operation, Mapping):
                continue
            values = _parameter_values(operation, shared if isinstance(shared, list) else [], params)
            found.append(Endpoint(method.upper(), base + fill_path(template, values), base + template))
            if len(found) >= _MAX_ENDPOINTS:
                return found
    return found
