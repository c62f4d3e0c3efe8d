"""Test helpers for users' own test suites.

    from hardenkit.testing import assert_header_contract

    def test_every_response_carries_the_contract():
        assert_header_contract(app, path_params={"item_id": "1"})

``assert_header_contract`` calls every route of a Starlette/FastAPI app that it
can call (mounted sub-apps included, path parameters from ``path_params``), plus
one path that does not exist, and fails with one message listing every violation.
It runs on starlette's TestClient: ``pip install "hardenkit[testing]"`` brings the
HTTP client that needs (httpx2, or httpx before starlette 1.0).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ContractReport", "assert_header_contract", "iter_routes"]

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-zA-Z_]+)?}")
_VALID_ID = re.compile(r"[\x21-\x7e]{1,1024}")
_DEFAULT_REQUIRED = ("X-Content-Type-Options",)


@dataclass
class ContractReport:
    """What ``assert_header_contract`` did: the calls it made and the routes it could not call."""

    checked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


def iter_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, frozenset[str]]]:
    """Yield (path template, methods) for every HTTP route, descending into mounts."""
    for route in routes:
        path = getattr(route, "path", None)
        if path is None:
            continue
        sub_routes = getattr(route, "routes", None)
        if type(route).__name__ == "WebSocketRoute":
            continue
        if sub_routes is not None and not hasattr(route, "endpoint"):
            # A Mount (or Host) of a router: descend. A Mount of a plain ASGI app has no routes.
            if sub_routes:
                yield from iter_routes(sub_routes, prefix + path)
            else:
                yield (prefix + path or "/", frozenset({"GET"}))
            continue
        methods = getattr(route, "methods", None) or {"GET"}
        yield prefix + path, frozenset(methods)


def _fill(template: str, params: Mapping[str, str]) -> str | None:
    missing = [name for name in _PARAM.findall(template) if name not in params]
    if missing:
        return None
    return _PARAM.sub(lambda match: str(params[match.group(1)]), template)


def assert_header_contract(
    app: Any,
    *,
    path_params: Mapping[str, str] | None = None,
    request_id_header: str = "X-Request-ID",
    latency_header: str | None = "X-Latency-MS",
    required_headers: Iterable[str] = _DEFAULT_REQUIRED,
    skip_paths: Iterable[str] = (),
    not_found_path: str = "/__hardenkit_contract_check_404__",
    lifespan: bool = True,
    base_url: str = "http://testserver",
) -> ContractReport:
    """Call every route of ``app`` and fail with one message listing every violation.

    Checked on each response: exactly one request id header, echoing the id that
    was sent; a fresh, printable id when none was sent (on the 404 probe); exactly
    one integer latency header (unless ``latency_header=None``); every header in
    ``required_headers``. Routes whose path parameters have no sample in
    ``path_params`` are skipped and listed in the returned report (and in the
    failure message). Returns the report when everything holds.
    """
    try:
        from starlette.testclient import TestClient
    except (ImportError, RuntimeError) as exc:  # starlette raises RuntimeError when no client is installed
        raise ImportError(
            "hardenkit.testing needs starlette's TestClient and the HTTP client it runs on "
            "(httpx2, or httpx before starlette 1.0): pip install 'hardenkit[testing]'"
        ) from exc

    params = dict(path_params or {})
    skip = set(skip_paths)
    required = [name.lower() for name in required_headers]
    rid_name = request_id_header.lower()
    latency_name = latency_header.lower() if latency_header else None
    report = ContractReport()
    routes = getattr(app, "routes", None)
    if routes is None:
        router = getattr(app, "router", None)
        routes = getattr(router, "routes", [])

    def check(label: str, response: Any, sent_id: str | None) -> None:
        problems: list[str] = []
        ids = response.headers.get_list(rid_name)
        if len(ids) != 1:
            problems.append(f"{len(ids)} {request_id_header} headers (want exactly 1)")
        elif sent_id is not None and ids[0] != sent_id:
            problems.append(f"{request_id_header} is {ids[0]!r}, not the {sent_id!r} that was sent")
        elif not _VALID_ID.fullmatch(ids[0]):
            problems.append(f"{request_id_header} {ids[0]!r} is not a printable single-token id")
        if latency_name is not None:
            values = response.headers.get_list(latency_name)
            if len(values) != 1 or not values[0].isdigit():
                problems.append(f"{latency_header} is {values!r} (want one integer)")
        problems += [f"missing {name}" for name in required if name not in response.headers]
        report.checked.append(f"{label} -> {response.status_code}")
        report.violations += [f"{label} -> {response.status_code}: {problem}" for problem in problems]

    client = TestClient(app, base_url=base_url, raise_server_exceptions=False)
    with client if lifespan else _nullcontext(client):
        counter = 0
        for template, methods in iter_routes(routes):
            if template in skip:
                continue
            path = _fill(template, params)
            if path is None:
                report.skipped.append(f"{template} (no sample for its path parameters in path_params)")
                continue
            for method in sorted(methods):
                counter += 1
                sent = f"hk-contract-{counter}"
                response = client.request(method, path, headers={request_id_header: sent})
                check(f"{method} {path}", response, sent)
        response = client.get(not_found_path)
        check(f"GET {not_found_path}", response, None)

    if report.violations:
        lines = [f"header contract violated on {len(report.violations)} check(s):"]
        lines += [f"  - {violation}" for violation in report.violations]
        if report.skipped:
            lines.append("routes not called:")
            lines += [f"  - {skipped}" for skipped in report.skipped]
        raise AssertionError("\n".join(lines))
    return report


class _nullcontext:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __enter__(self) -> Any:
        return self.value

    def __exit__(self, *exc: object) -> None:
        return None
