"""The runner: discover endpoints, make the requests (bounded concurrency, a total budget), judge them.

HTTP goes through httpx only (imported when a check runs, so ``import hardenkit``
and ``hardenkit --version`` never load it). Every request counts against
``max_requests``; the fixed probes go first, the discovered endpoints next, a
``--burst`` last (its requests reserved up front).
"""

from __future__ import annotations

import json
import secrets
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio

from .._version import __version__
from .discovery import Endpoint, endpoints_from_openapi, fill_path
from .model import Observation, Report
from .rules import evaluate
from .tls import TlsInfo, probe_tls

if TYPE_CHECKING:
    import httpx

__all__ = ["CheckError", "CheckOptions", "audit", "run"]

# Bytes of a body kept for the checks (the rest is read and dropped): only error and probe
# bodies are judged, and the OpenAPI document read, so a run's memory stays small whatever
# the budget and the size of the answers.
_BODY_LIMIT = 65_536
_OPENAPI_LIMIT = 8 * 1024 * 1024
MAX_BURST = 1000
DEFAULT_PROBES = ("/livez", "/readyz", "/healthz")


class CheckError(Exception):
    """The check could not run: the service is unreachable, the options are unusable (exit status 2)."""


@dataclass
class CheckOptions:
    url: str
    paths: Sequence[str] = ()
    openapi: str | None = None  # a URL (absolute or relative to url) or a local file
    discover: bool = True  # look for /openapi.json when no --openapi is given
    params: Mapping[str, str] = field(default_factory=dict)
    methods: Sequence[str] = ("GET",)
    concurrency: int = 4
    max_requests: int = 200
    timeout: float = 10.0
    preset: str = "api"
    min_grade: str = "A"
    probes: Sequence[str] = DEFAULT_PROBES
    burst: int | None = None
    burst_path: str | None = None
    insecure: bool = False
    cacert: str | None = None
    min_cert_days: int = 14
    skip: frozenset[str] = frozenset()
    request_id_header: str = "X-Request-ID"
    latency_header: str | None = "X-Latency-MS"
    strict: bool = False  # a failed warning-level check fails the run too

    def validate(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CheckError(f"{self.url!r} is not an http(s) URL; write e.g. http://127.0.0.1:8000")
        if not 1 <= self.concurrency <= 64:
            raise CheckError("--concurrency must be between 1 and 64")
        if not 20 <= self.max_requests <= 10_000:
            raise CheckError("--max-requests must be between 20 and 10000 (the fixed probes take about 12)")
        if self.burst is not None and not 1 <= self.burst <= MAX_BURST:
            raise CheckError(f"--burst must be between 1 and {MAX_BURST}")
        if self.burst is not None and self.burst + 20 > self.max_requests:
            raise CheckError(f"--burst {self.burst} leaves too little of --max-requests {self.max_requests}")
        for path in [*self.paths, *self.probes, *([self.burst_path] if self.burst_path else [])]:
            if not path.startswith("/"):
                raise CheckError(f"path {path!r} must start with '/'")
        if self.timeout <= 0:
            raise CheckError("--timeout must be a positive number of seconds")


class _BudgetSpent(Exception):
    pass


class _Session:
    def __init__(self, client: httpx.AsyncClient, options: CheckOptions) -> None:
        self.client = client
        self.options = options
        self.spent = 0
        self.budget = options.max_requests - (options.burst or 0)
        self.token = secrets.token_hex(4)
        self.counter = 0
        self.observations: list[Observation] = []
        self.notes: list[str] = []

    def next_id(self) -> str:
        self.counter += 1
        return f"hk-check-{self.token}-{self.counter}"

    async def request(
        self,
        label: str,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        send_id: str | None | bool = True,
        reserved: bool = False,
    ) -> Observation:
        """One request; ``send_id=True`` sends a fresh valid id, a string sends that, False none."""
        if not reserved:
            if self.spent >= self.budget:
                raise _BudgetSpent
            self.spent += 1
        sent = self.next_id() if send_id is True else (send_id or None)
        all_headers = dict(headers or {})
        if sent is not None:
            all_headers[self.options.request_id_header] = sent
        import httpx

        start = perf_counter()
        try:
            async with self.client.stream(method, path, headers=all_headers) as response:
                elapsed = (perf_counter() - start) * 1000
                body = bytearray()
                if label == "openapi":
                    keep = _OPENAPI_LIMIT
                elif response.status_code >= 400 or label == "probe":
                    keep = _BODY_LIMIT
                else:
                    keep = 0
                async for chunk in response.aiter_bytes():  # decoded: a gzipped problem+json is still JSON
                    if len(body) < keep:
                        body += chunk[: keep - len(body)]
        except httpx.TransportError as exc:
            raise CheckError(f"{method} {self.client.base_url.join(path)}: {_describe(exc)}") from None
        observation = Observation(
            label=label,
            method=method,
            path=path,
            status=response.status_code,
            headers=[(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in response.headers.raw],
            body=bytes(body),
            elapsed_ms=elapsed,
            sent_id=sent,
        )
        self.observations.append(observation)
        return observation


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


async def _openapi(session: _Session) -> dict[str, Any] | None:
    """The service's OpenAPI document: --openapi (URL or file), else /openapi.json when there is one."""
    options = session.options
    source = options.openapi
    # A URL, or a path on the service ("/v1/openapi.json"), unless a local file has that name.
    is_file = source is not None and (
        not source.startswith(("http://", "https://", "/")) or await anyio.Path(source).is_file()
    )
    if source is not None and is_file:
        try:
            text = await anyio.Path(source).read_text(encoding="utf-8")
            document = json.loads(text)
        except (OSError, ValueError) as exc:
            raise CheckError(f"--openapi {source}: cannot read a JSON OpenAPI document ({exc})") from None
        return document if isinstance(document, dict) else None
    if source is None and not options.discover:
        return None
    observation = await session.request("openapi", "GET", source or "/openapi.json", send_id=True)
    if observation.status != 200:
        if source is not None:
            raise CheckError(f"--openapi {source}: the service answered {observation.status}")
        return None
    try:
        document = json.loads(observation.body)
    except ValueError:
        if source is not None:
            raise CheckError(f"--openapi {source}: not a JSON document") from None
        return None
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        return None
    return document


async def _discover(session: _Session) -> list[Endpoint]:
    options = session.options
    document = await _openapi(session)
    methods = [m.upper() for m in options.methods]
    endpoints: list[Endpoint] = []
    if document is not None:
        endpoints = endpoints_from_openapi(document, methods=methods, params=options.params)
        session.notes.append(f"{len(endpoints)} operation(s) from the OpenAPI document")
    for path in options.paths:
        filled = fill_path(path, options.params)
        endpoints += [Endpoint(method, filled, path) for method in methods]
    if not endpoints:
        endpoints = [Endpoint("GET", "/", "/")]
        session.notes.append("no OpenAPI document and no --path: checked / only")
    # One call per (method, path), in the order found.
    return list({(e.method, e.path): e for e in endpoints}.values())


async def _fixed_probes(session: _Session, first: Endpoint) -> None:
    """The requests every check needs whatever the endpoints: errors, ids, probes, CORS."""
    options = session.options
    missing = f"/__hardenkit_check_{session.token}__"
    await session.request("not-found", "GET", missing, send_id=False)
    await session.request("not-found", "GET", missing + "/again", send_id=False)
    # TRACE is a safe method (RFC 9110) that almost no route allows: the 405 answer.
    await session.request("method", "TRACE", first.path, send_id=True)
    await session.request("invalid-id", "GET", first.path, send_id="not a valid id <script>")
    await session.request("invalid-id", "GET", first.path, send_id="x" * 300)
    await session.request("no-id", "GET", first.path, send_id=False)
    for path in options.probes:
        await session.request("probe", "GET", path, send_id=True)
    origin = {"Origin": "https://hardenkit-check.invalid"}
    await session.request("cors", "GET", first.path, headers=origin)
    await session.request(
        "cors",
        "OPTIONS",
        first.path,
        headers={
            **origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-request-id",
        },
    )


async def _call_endpoints(session: _Session, endpoints: Sequence[Endpoint]) -> None:
    limiter = anyio.CapacityLimiter(session.options.concurrency)
    called = 0

    async def call(endpoint: Endpoint) -> None:
        nonlocal called
        async with limiter:
            try:
                await session.request("endpoint", endpoint.method, endpoint.path)
            except _BudgetSpent:
                return
            called += 1

    async with anyio.create_task_group() as group:
        for endpoint in endpoints:
            group.start_soon(call, endpoint)
    if called < len(endpoints):
        session.notes.append(
            f"request budget spent: {len(endpoints) - called} of {len(endpoints)} endpoint(s) not called "
            "(raise --max-requests)"
        )


async def _burst(session: _Session, path: str, count: int) -> None:
    limiter = anyio.CapacityLimiter(max(session.options.concurrency, 8))

    async def one() -> None:
        async with limiter:
            await session.request("burst", "GET", path, reserved=True)

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)


def _verify(options: CheckOptions) -> ssl.SSLContext | bool:
    if options.insecure:
        return False
    try:
        return ssl.create_default_context(cafile=options.cacert)
    except (OSError, ssl.SSLError) as exc:
        raise CheckError(f"--cacert {options.cacert}: {exc}") from None


async def audit(options: CheckOptions, *, app: Any = None) -> Report:
    """Run every check against ``options.url``; raises :class:`CheckError` when it cannot.

    With ``app`` (an ASGI application) the requests go to it in-process through
    httpx's ASGI transport instead of the network: the same checks in a test
    suite, without a server (no TLS to probe then).
    """
    import httpx

    options.validate()
    verify = _verify(options)
    parts = urlsplit(options.url)
    base = options.url.rstrip("/")
    async with httpx.AsyncClient(
        base_url=base,
        verify=verify,
        timeout=options.timeout,
        follow_redirects=False,
        headers={"User-Agent": f"hardenkit-check/{__version__}"},
        limits=httpx.Limits(max_connections=max(options.concurrency, 8)),
        transport=None if app is None else httpx.ASGITransport(app=app),
    ) as client:
        session = _Session(client, options)
        endpoints = await _discover(session)
        try:
            await _fixed_probes(session, endpoints[0])
        except _BudgetSpent:  # many --probe paths and a small --max-requests
            session.notes.append("request budget spent before the fixed probes ended (raise --max-requests)")
        await _call_endpoints(session, endpoints)
        if options.burst:
            await _burst(session, options.burst_path or endpoints[0].path, options.burst)
    tls: TlsInfo | None = None
    if app is None and parts.scheme == "https" and not {"tls-version", "tls-certificate"} <= options.skip:
        tls = await anyio.to_thread.run_sync(
            lambda: probe_tls(
                parts.hostname or "",
                parts.port or 443,
                cafile=options.cacert,
                insecure=options.insecure,
                timeout=options.timeout,
            )
        )
    results = evaluate(session.observations, options=options, tls=tls)
    return Report(
        target=options.url,
        results=[r for r in results if r.id not in options.skip],
        requests=len(session.observations),
        endpoints=[f"{e.method} {e.path}" for e in endpoints],
        notes=session.notes,
        strict=options.strict,
    )


def run(options: CheckOptions, *, app: Any = None) -> Report:
    """:func:`audit` from synchronous code."""
    return anyio.run(lambda: audit(options, app=app))
