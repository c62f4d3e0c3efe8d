"""MetricsMiddleware: Prometheus metrics by route template, and a safe ``/metrics``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .._core.config import EnvParser, env_bool, env_int, env_list, env_optional, env_str
from .._core.events import (
    HEALTH_CHECK,
    HEALTH_PROBE,
    RATELIMIT_DECISION,
    RATELIMIT_FALLBACK,
    events_of,
)
from .._core.paths import route_path
from ..errors import ConfigurationError
from .access import AccessPolicy
from .labels import UNMATCHED, LabelCap, RouteResolver, RouteTemplates, method_label, status_label

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .._core.kit import Wiring
    from .instruments import Instruments
    from .otel import OtelInstruments
    from .slo import SLO

__all__ = ["MetricsMiddleware"]

logger = logging.getLogger("hardenkit.metrics")

# The status counted for a request whose client went away before its response ended
# (nginx's convention; no server sends it).
CLIENT_CLOSED = 499
# Merging takes milliseconds; a lock held longer belongs to a stuck process.
_SCRAPE_LOCK_TIMEOUT = 5.0


class MetricsMiddleware:
    """Counts every HTTP request by method, route template and final status; serves ``/metrics``.

    Pure ASGI. In a kit it sits just inside the header contract, outside the access
    log, rate limiter and body limit, so their 429 and 413 answers and the app's 500s
    are counted with the status really sent; a client that disconnects first is
    counted as 499. Paths answered by outer components (health probes) are not
    traffic: the probes are counted apart through the kit's events.

    ``metrics_path`` (``/metrics``; None to serve nothing) is answered to clients in
    ``allow`` (default: loopback and private ranges) or bearing ``token``, with
    content negotiation for OpenMetrics; anyone else gets a 403 problem+json.
    ``port`` serves the metrics on a separate port of ``host`` (127.0.0.1) instead.
    ``otel=True`` (or a MeterProvider) also records through OpenTelemetry.
    Under ``uvicorn --workers N`` or gunicorn, multiprocess mode is set up by itself
    (``multiprocess="auto"``): one scrape returns the whole service's counts.
    """

    hardenkit_slot: ClassVar[str] = "metrics"
    hardenkit_env_name: ClassVar[str] = "METRICS"
    hardenkit_env: ClassVar[Mapping[str, EnvParser]] = {
        "metrics_path": env_optional(env_str),
        "allow": env_list,
        "token": env_optional(env_str),
        "trust_forwarded": env_bool,
        "port": env_optional(env_int),
        "host": env_str,
        "max_route_labels": env_int,
        "multiprocess_dir": env_optional(env_str),
    }

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics_path: str | None = "/metrics",
        allow: Iterable[str] | None = None,
        token: str | None = None,
        trust_forwarded: bool = False,
        port: int | None = None,
        host: str = "127.0.0.1",
        buckets: Sequence[float] | None = None,
        slos: Sequence[SLO] = (),
        max_route_labels: int = 250,
        route_template: RouteResolver | None = None,
        multiprocess: bool | Literal["auto"] = "auto",
        multiprocess_dir: str | None = None,
        registry: CollectorRegistry | None = None,
        include_default_registry: bool = True,
        otel: Any = False,
        kit: Wiring | None = None,
    ) -> None:
        self.app = app
        self.metrics_path = _check_path(metrics_path)
        self.access = AccessPolicy(allow=allow, token=token, trust_forwarded=trust_forwarded)
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise ConfigurationError(f"port: expected a TCP port (1-65535) or None, got {port!r}")
        self.port = port
        self.host = host
        if (
            isinstance(max_route_labels, bool)
            or not isinstance(max_route_labels, int)
            or max_route_labels < 1
        ):
            raise ConfigurationError(
                f"max_route_labels: expected a whole number >= 1 (e.g. 250), got {max_route_labels!r}"
            )
        if route_template is not None and not callable(route_template):
            raise ConfigurationError("route_template: expected a callable taking the ASGI scope, or None")
        if multiprocess not in (True, False, "auto"):
            raise ConfigurationError(f"multiprocess: write True, False or 'auto', got {multiprocess!r}")
        if otel is not False and otel is not None and otel is not True and not hasattr(otel, "get_meter"):
            raise ConfigurationError(
                "otel: write True (the global MeterProvider) or an opentelemetry MeterProvider"
            )
        from .slo import slos_from_env

        # SLOs declared in the environment (HARDENKIT_SLO_<NAME>) get exact buckets too.
        declared = list(_check_slos(slos))
        self.slos = tuple(
            declared + [slo for slo in slos_from_env() if slo.name not in {s.name for s in declared}]
        )
        chosen_buckets = _buckets(buckets, self.slos)
        self.routes = RouteTemplates(resolver=route_template)
        self.route_cap = LabelCap(max_route_labels)
        self.kit = kit
        try:
            from . import multiprocess as mp
            from .instruments import Instruments
        except ImportError as exc:  # pragma: no cover - the extra is installed in the test environment
            raise ConfigurationError(
                f"MetricsMiddleware needs prometheus_client ({exc}); install it: pip install 'hardenkit[metrics]'"
            ) from None
        self.multiprocess_dir = mp.prepare(multiprocess, multiprocess_dir)
        self.instruments: Instruments = Instruments(
            buckets=chosen_buckets,
            multiprocess_dir=self.multiprocess_dir,
            registry=registry,
            include_default_registry=include_default_registry,
        )
        self.registry = self.instruments.registry
        self.otel: OtelInstruments | None = None
        if otel is not False and otel is not None:
            try:
                from .otel import OtelInstruments
            except ImportError:  # pragma: no cover - the API is installed in the test environment
                raise ConfigurationError(
                    "otel= needs the OpenTelemetry API; install it: pip install 'hardenkit[otel]'"
                ) from None
            self.otel = OtelInstruments(otel, buckets=chosen_buckets)
        # Children per label tuple: prometheus_client's .labels() validates on every call.
        self._series: dict[tuple[str, str, int], tuple[Any, Any, Any, Any, Any]] = {}
        self._in_flight: dict[str, Any] = {}
        self._port_server: Any = None
        self._port_tried = False
        events = events_of(kit)
        events.listen(RATELIMIT_DECISION, self._on_decision)
        events.listen(RATELIMIT_FALLBACK, self._on_fallback)
        events.listen(HEALTH_PROBE, self._on_probe)
        events.listen(HEALTH_CHECK, self._on_check)
        if kit is not None and port is not None:
            kit.on_startup(self._start_port)
            kit.on_shutdown(self._stop_port)

    # -- kit ------------------------------------------------------------------------
    @classmethod
    def hardenkit_declare(cls, options: Mapping[str, Any], wiring: Wiring) -> None:
        path = _check_path(options.get("metrics_path", "/metrics"))
        if path is not None and options.get("port") is None:
            # Answered here: the rate limiter and the access log leave it alone.
            wiring.answer_paths(path, owner="metrics")

    # -- events from other components ----------------------------------------------------
    def _on_decision(self, fields: dict[str, str]) -> None:
        labels = self.instruments.label
        policy, result = (
            labels("policy", fields.get("policy", "")),
            labels("result", fields.get("result", "")),
        )
        self.instruments.ratelimit.labels(policy, result).inc()
        if self.otel is not None:
            self.otel.event("ratelimit", {"policy": policy, "result": result})

    def _on_fallback(self, fields: dict[str, str]) -> None:
        mode = self.instruments.label("mode", fields.get("mode", ""))
        self.instruments.fallbacks.labels(mode).inc()
        if self.otel is not None:
            self.otel.event("fallbacks", {"mode": mode})

    def _on_probe(self, fields: dict[str, str]) -> None:
        labels = self.instruments.label
        probe, status = labels("probe", fields.get("probe", "")), labels("result", fields.get("status", ""))
        self.instruments.probes.labels(probe, status).inc()
        if self.otel is not None:
            self.otel.event("probes", {"probe": probe, "status": status})

    def _on_check(self, fields: dict[str, str]) -> None:
        labels = self.instruments.label
        check, status = labels("check", fields.get("check", "")), labels("result", fields.get("status", ""))
        self.instruments.checks.labels(check, status).inc()
        if self.otel is not None:
            self.otel.event("checks", {"check": check, "status": status})

    # -- requests ---------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.port is not None and self.kit is None and scope["type"] == "lifespan":
            # Standalone (no kit to run hooks): the port lives as long as the app's lifespan.
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if self.port is not None and not self._port_tried and self.kit is None:
            self._start_port()
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path == self.metrics_path and self.port is None:
            await self._serve(scope, receive, send)
            return
        if self.kit is not None and self.kit.is_answered(path):
            await self.app(scope, receive, send)
            return
        await self._count(scope, receive, send)

    async def _count(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = method_label(scope.get("method", ""))
        root_path: str = scope.get("root_path", "")
        app = scope.get("app")
        in_flight = self._in_flight.get(method)
        if in_flight is None:
            in_flight = self._in_flight[method] = self.instruments.in_flight.labels(method)
        status = 0
        received = 0
        sent = 0
        ended = False
        gone = False
        start = time.perf_counter()

        async def receive_wrapper() -> Message:
            nonlocal received, gone
            message = await receive()
            kind = message["type"]
            if kind == "http.request":
                received += len(message.get("body", b""))
            elif kind == "http.disconnect" and not ended:
                gone = True
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent, ended, gone
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    ended = True
            try:
                await send(message)
            except OSError:
                # The server could not write: the client is gone.
                gone = True
                raise

        otel = self.otel
        in_flight.inc()
        if otel is not None:
            otel.in_flight(method, 1)
        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except Exception:
            final = status if ended else (CLIENT_CLOSED if gone else 500)
            self._record(scope, root_path, app, method, final, start, received, sent)
            raise
        except BaseException:
            # Cancelled: the server gave up on a vanished client.
            self._record(
                scope, root_path, app, method, status if ended else CLIENT_CLOSED, start, received, sent
            )
            raise
        finally:
            in_flight.dec()
            if otel is not None:
                otel.in_flight(method, -1)
        if not ended and (gone or not status):
            status = CLIENT_CLOSED if gone else 500
        self._record(scope, root_path, app, method, status, start, received, sent)

    def _record(
        self,
        scope: Scope,
        root_path: str,
        app: Any,
        method: str,
        status: int,
        start: float,
        received: int,
        sent: int,
    ) -> None:
        now = time.perf_counter()
        if not 100 <= status < 600:
            status = 0  # one "other" series, whatever an app sends
        try:
            route = self.routes.template(scope, root_path, app, routed=status == 404)
            if route != UNMATCHED:
                route = self.route_cap(route)
            key = (method, route, status)
            series = self._series.get(key)
            if series is None:
                series = self._series_for(key)
            series[0].inc()
            series[1].observe(now - start)
            series[2].observe(received)
            series[3].observe(sent)
            if self.otel is not None:
                self.otel.request(series[4], now - start, received, sent)
            if now >= self.instruments.next_process_refresh:
                self.instruments.refresh_process()
        except Exception:
            # Metrics must never break the request they describe.
            logger.exception("could not record the request's metrics")

    def _series_for(self, key: tuple[str, str, int]) -> tuple[Any, Any, Any, Any, Any]:
        method, route, status = key
        code, status_class = status_label(status)
        ins = self.instruments
        series = (
            ins.requests.labels(method, route, code, status_class),
            ins.duration.labels(route),
            ins.request_size.labels(route),
            ins.response_size.labels(route),
            None if self.otel is None else self.otel.attributes(method, route, code),
        )
        self._series[key] = series
        return series

    # -- /metrics ---------------------------------------------------------------------------
    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        from .._core.problem import problem_response

        method = scope.get("method", "")
        if method not in ("GET", "HEAD"):
            response: Any = problem_response(
                405,
                "Method Not Allowed",
                detail="the metrics are read with GET",
                headers={"Allow": "GET, HEAD"},
            )
            await response(scope, receive, send)
            return
        if not self.access.allows(scope):
            self.instruments.scrapes.labels("refused").inc()
            response = problem_response(
                403,
                "Forbidden",
                detail="the metrics are served to allowed addresses or to a bearer of the metrics token",
            )
            await response(scope, receive, send)
            return
        import anyio
        from starlette.responses import Response

        accept = ""
        for name, value in scope.get("headers", ()):
            if name == b"accept":
                accept = value.decode("latin-1")
                break
        self.instruments.scrapes.labels("served").inc()
        # Rendering reads the workers' files in multiprocess mode: off the event loop.
        body, content_type = await anyio.to_thread.run_sync(self.render, accept)
        response = Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
        await response(scope, receive, send)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition for an ``Accept`` header: (body, content type)."""
        from prometheus_client.exposition import choose_encoder

        self.instruments.refresh_process()
        encoder, content_type = choose_encoder(accept)
        if self.multiprocess_dir is None:
            return encoder(self.registry), content_type
        from ..errors import LockTimeout
        from . import multiprocess as mp

        try:
            # Merging dead workers' files and reading them never overlap.
            with mp.scrape_lock(self.multiprocess_dir, timeout=_SCRAPE_LOCK_TIMEOUT):
                mp.clean_dead_workers(self.multiprocess_dir, locked=True)
                return encoder(self.registry), content_type
        except LockTimeout:
            logger.warning("metrics directory lock busy for %ss; reading without it", _SCRAPE_LOCK_TIMEOUT)
            return encoder(self.registry), content_type

    # -- a separate port --------------------------------------------------------------------
    def _start_port(self) -> None:
        self._port_tried = True
        if self.port is None or self._port_server is not None:
            return
        from prometheus_client import start_http_server

        try:
            server, _thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            # Under several workers one binds the port; any of them serves the whole service.
            logger.info("metrics port %s:%s not bound by this process (%s)", self.host, self.port, exc)
            return
        self._port_server = server

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._start_port()
            elif message["type"] == "lifespan.shutdown":
                self._stop_port()
            return message

        return wrapped

    def _stop_port(self) -> None:
        server, self._port_server = self._port_server, None
        if server is not None:
            server.shutdown()
            server.server_close()


def _check_path(path: object) -> str | None:
    if path is None:
        return None
    if not isinstance(path, str) or not path.startswith("/") or any(ch in path for ch in "?# "):
        raise ConfigurationError(
            f"metrics_path: expected a path starting with '/' (no query), or None, got {path!r}; "
            "write for example metrics_path='/metrics'"
        )
    return path


def _check_slos(slos: Sequence[SLO]) -> Iterable[SLO]:
    from .slo import SLO

    if isinstance(slos, SLO):
        return (slos,)
    for slo in slos:
        if not isinstance(slo, SLO):
            raise ConfigurationError(f"slos: expected hardenkit.SLO objects, got {slo!r}")
    return slos


def _buckets(buckets: Sequence[float] | None, slos: Sequence[SLO]) -> tuple[float, ...]:
    from .instruments import DEFAULT_BUCKETS

    chosen: list[float] = list(DEFAULT_BUCKETS if buckets is None else buckets)
    for value in chosen:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value:
            raise ConfigurationError(f"buckets: expected upper bounds in seconds > 0, got {value!r}")
    # Each SLO's latency threshold is a bucket bound, so "faster than 100 ms" is counted exactly.
    chosen += [slo.latency_seconds for slo in slos if slo.latency_seconds is not None]
    return tuple(sorted(set(chosen)))
