"""The registration API: Kit, harden() and the wiring that lets components talk.

A Kit holds middleware registrations and installs them in the canonical order
(outermost first)::

    kit root (lifespan hooks) > headers > health > metrics > access_log > timeout > auth > ratelimit
    > body_limit > app

whatever the order of the ``register`` calls. Components find out about each
other through one :class:`Wiring` object per kit, handed to every
hardenkit-aware component as the ``kit=`` option:

* at install time each component class may *declare* things from its options
  (``hardenkit_declare(options, wiring)``): the paths it answers itself, the
  response headers it adds (exposed through CORS);
* each instance may *provide* runtime values (``wiring.provide(name, value)``)
  that others read lazily, and register start-up and shutdown hooks, which the
  kit's root runs on the ASGI lifespan events.

This module imports only the standard library at import time; starlette is
imported when an app is installed.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .config import EnvParser
from .dotenv import read_env_file
from .lifespan import serve_lifespan

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["SLOTS", "Kit", "Wiring", "harden", "harden_kit"]

logger = logging.getLogger("hardenkit.kit")

#: The named slots, outermost first.
SLOTS: tuple[str, ...] = (
    "headers",
    "health",
    "metrics",
    "access_log",
    "timeout",
    "auth",
    "ratelimit",
    "body_limit",
)

_SLOT_RANK = {name: (index + 1) * 100 for index, name in enumerate(SLOTS)}
_OUTERMOST = 10
_INNERMOST = 900
_ROOT_RANK = 0

# Where well-known middleware goes when it is registered without an explicit place.
# Keyed by qualified name, so that knowing them costs no import.
_KNOWN_PLACES: dict[str, str] = {
    # Inside the header contract (their answers carry the request id) and inside the
    # probes (a kubelet probing the pod's IP over http must not meet TrustedHost's 400
    # or HTTPSRedirect's 307), outside the rate limiter (a 429 still gets CORS headers,
    # so browsers can read it).
    "starlette.middleware.cors.CORSMiddleware": "after:health",
    "starlette.middleware.trustedhost.TrustedHostMiddleware": "after:health",
    "starlette.middleware.httpsredirect.HTTPSRedirectMiddleware": "after:health",
    "starlette.middleware.gzip.GZipMiddleware": "before:ratelimit",
    "starlette.middleware.body_limit.RequestBodyLimitMiddleware": "body_limit",
}

Hook = Callable[[], Awaitable[None] | None]


class Wiring:
    """What the components of one kit tell each other.

    One instance per installed kit. Components receive it as their ``kit=``
    option; standalone components get ``None`` and work alone.
    """

    def __init__(self) -> None:
        self._answered: dict[str, str] = {}
        self._answered_prefixes: dict[str, str] = {}
        self._exposed: list[str] = []
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._provided: dict[str, Any] = {}
        self.stack: tuple[str, ...] = ()

    # -- paths answered by a component itself (probes) ------------------------------
    def answer_paths(self, *paths: str, owner: str, prefix: bool = False) -> None:
        """Declare paths that ``owner`` answers before the app (exempt from limits and logs)."""
        for path in paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigurationError(f"{owner}: answered path {path!r} must start with '/'")
            (self._answered_prefixes if prefix else self._answered)[path] = owner

    @property
    def answered_paths(self) -> frozenset[str]:
        """Exact paths answered by a component (for example ``/livez``)."""
        return frozenset(self._answered)

    @property
    def answered_prefixes(self) -> frozenset[str]:
        return frozenset(self._answered_prefixes)

    def is_answered(self, path: str) -> bool:
        """True when an outer component answers ``path`` itself."""
        if path in self._answered:
            return True
        return any(path.startswith(prefix) for prefix in self._answered_prefixes)

    # -- response headers to expose through CORS -----------------------------------
    def expose_headers(self, *names: str) -> None:
        """Declare response headers that browsers should be allowed to read."""
        known = {name.lower() for name in self._exposed}
        for name in names:
            if name.lower() not in known:
                self._exposed.append(name)
                known.add(name.lower())

    @property
    def exposed_headers(self) -> tuple[str, ...]:
        return tuple(self._exposed)

    # -- lifespan hooks --------------------------------------------------------------
    def on_startup(self, hook: Hook) -> None:
        """Run ``hook`` (sync or async) once the app has started."""
        self._startup.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        """Run ``hook`` (sync or async) when the server asks the app to shut down, before the app's own."""
        self._shutdown.append(hook)

    async def run_startup(self) -> None:
        await _run_hooks(self._startup, "startup")

    async def run_shutdown(self) -> None:
        await _run_hooks(self._shutdown, "shutdown")

    # -- runtime values --------------------------------------------------------------
    def provide(self, name: str, value: Any) -> None:
        """Publish a runtime value (for example ``"ratelimit.storage_state"``)."""
        self._provided[name] = value

    def get(self, name: str, default: Any = None) -> Any:
        return self._provided.get(name, default)

    def __repr__(self) -> str:
        return (
            f"Wiring(answered={sorted(self._answered)!r}, exposed={self._exposed!r}, "
            f"provided={sorted(self._provided)!r})"
        )


async def _run_hooks(hooks: Iterable[Hook], phase: str) -> None:
    for hook in list(hooks):
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception:  # noqa: PERF203
            # One failing hook must not stop the others, nor the server's shutdown.
            logger.exception("hardenkit %s hook %r failed", phase, hook)


class _KitRoot:
    """Outermost layer of an installed kit: runs the wiring's lifespan hooks.

    HTTP and websocket scopes go straight through. The lifespan scope goes to
    the app first; when the app does not support lifespan (Django's ASGI
    handler raises on it), the root answers the protocol itself, so the hooks
    (signal handling and draining included) run for every app.
    """

    def __init__(self, app: ASGIApp, *, wiring: Wiring, kit: Kit | None = None) -> None:
        self.app = app
        self.wiring = wiring
        self.kit = kit  # what `hardenkit config` shows

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await serve_lifespan(
            self.app, scope, receive, send, startup=self.wiring.run_startup, shutdown=self.wiring.run_shutdown
        )


@dataclass
class _Entry:
    cls: type[Any]
    args: tuple[Any, ...]
    options: dict[str, Any]
    place: str
    seq: int
    env_applied: dict[str, str] = field(default_factory=dict)
    # harden()'s own defaults: under the environment, over the class's defaults.
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return _qualname(self.cls)


def _qualname(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _short(cls: type[Any]) -> str:
    return cls.__qualname__


def _normalise_place(place: str, *, what: str) -> str:
    if place in ("outermost", "innermost") or place in SLOTS:
        return place
    side, _, anchor = place.partition(":")
    if side in ("before", "after") and anchor in SLOTS:
        return place
    choices = ", ".join([*SLOTS, "outermost", "innermost"])
    raise ConfigurationError(
        f"{what}: place {place!r} is not known; write a slot name ({', '.join(SLOTS)}), "
        f"'before:<slot>', 'after:<slot>', 'outermost' or 'innermost' (any of: {choices})"
    )


def _rank(place: str) -> int:
    if place == "outermost":
        return _OUTERMOST
    if place == "innermost":
        return _INNERMOST
    if place in _SLOT_RANK:
        return _SLOT_RANK[place]
    side, _, anchor = place.partition(":")
    return _SLOT_RANK[anchor] + (-50 if side == "before" else 50)


def before(slot: str) -> str:
    """Place a middleware just outside ``slot`` (``kit.register_at(before("ratelimit"), Cls)``)."""
    return _normalise_place(f"before:{slot}", what="before()")


def after(slot: str) -> str:
    """Place a middleware just inside ``slot``."""
    return _normalise_place(f"after:{slot}", what="after()")


class Kit:
    """Registers middleware and installs it in the canonical order.

    >>> kit = Kit().register(HeaderContractMiddleware)   # doctest: +SKIP
    >>> kit.install(app)                                   # doctest: +SKIP
    """

    def __init__(self, *, environ: Mapping[str, str] | None = None) -> None:
        self._entries: dict[type[Any], _Entry] = {}
        self._seq = 0
        # None: the environment is not read (explicit configuration only).
        self._environ: Mapping[str, str] | None = environ
        # Variables read from an env file -> "path, line N", for error messages.
        self._env_where: dict[str, str] = {}

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, env_file: str | os.PathLike[str] | None = None
    ) -> Kit:
        """A kit whose registered components also read ``HARDENKIT_<COMPONENT>_<OPTION>``.

        Variables are read when the kit is installed (or described); explicit
        options given to ``register`` win over them. ``env_file`` (for example
        ``".env"``) adds the ``HARDENKIT_*`` lines of that file, under the
        environment: a variable set in both takes the environment's value. A
        missing file is skipped; a bad line or value is reported with the file
        and line.
        """
        variables = dict(os.environ if environ is None else environ)
        where: dict[str, str] = {}
        if env_file is not None:
            for name, item in read_env_file(env_file).items():
                if name not in variables:
                    variables[name] = item.value
                    where[name] = item.where
        kit = cls(environ=variables)
        kit._env_where = where
        return kit

    @property
    def environ(self) -> dict[str, str]:
        """The ``HARDENKIT_*`` variables this kit reads (environment and env file), with where each
        came from: ``"environment"`` or ``"<file>, line <n>"``."""
        if self._environ is None:
            return {}
        return {
            name: self._env_where.get(name, "environment")
            for name in sorted(self._environ)
            if name.startswith("HARDENKIT_")
        }

    # -- registration ---------------------------------------------------------------
    def register(self, middleware_class: type[Any], *args: Any, **options: Any) -> Kit:
        """Register ``middleware_class`` with exactly what ``app.add_middleware`` takes.

        hardenkit components go to their slot; well-known starlette middleware to
        its usual place; anything else just outside the app. ``before="<slot>"`` or
        ``after="<slot>"`` place it explicitly (unless the class itself takes an
        option of that name: then use :meth:`register_at`). Registering the same
        class again replaces its options. Returns the kit.
        """
        place = None
        for side in ("before", "after"):
            if side in options and not _takes_option(middleware_class, side):
                if place is not None:
                    raise ConfigurationError(f"{_short(middleware_class)}: give before= or after=, not both")
                anchor = options.pop(side)
                place = _normalise_place(f"{side}:{anchor}", what=_short(middleware_class))
        return self._add(middleware_class, args, options, place=place)

    def register_at(self, place: str, middleware_class: type[Any], *args: Any, **options: Any) -> Kit:
        """Register a middleware at an explicit place: a slot name, ``"before:<slot>"``,
        ``"after:<slot>"``, ``"outermost"`` or ``"innermost"`` (see :func:`before`/:func:`after`)."""
        return self._add(middleware_class, args, options, place=place)

    def unregister(self, middleware_class: type[Any]) -> Kit:
        """Remove a registration (no error if it was not registered)."""
        self._entries.pop(middleware_class, None)
        return self

    def _add(
        self, cls: type[Any], args: tuple[Any, ...], options: dict[str, Any], *, place: str | None
    ) -> Kit:
        if not callable(cls):
            raise ConfigurationError(
                f"Kit.register: expected a middleware class, got {cls!r}; "
                "write kit.register(SomeMiddleware, option=value)"
            )
        if "kit" in options and _is_component(cls):
            raise ConfigurationError(f"{_short(cls)}: 'kit' is set by the kit itself; remove it")
        if place is None:
            place = _default_place(cls)
        place = _normalise_place(place, what=_short(cls))
        if place in SLOTS:
            for other in self._entries.values():
                if other.cls is not cls and other.place == place:
                    raise ConfigurationError(
                        f"{_short(cls)}: slot {place!r} already holds {_short(other.cls)}; "
                        f"unregister it first or use register_at('after:{place}', ...)"
                    )
        previous = self._entries.get(cls)
        seq = previous.seq if previous is not None else self._next_seq()
        self._entries[cls] = _Entry(cls=cls, args=tuple(args), options=dict(options), place=place, seq=seq)
        return self

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def __contains__(self, middleware_class: object) -> bool:
        return middleware_class in self._entries

    def options(self, middleware_class: type[Any]) -> dict[str, Any]:
        """The explicit options registered for ``middleware_class`` (a copy)."""
        try:
            return dict(self._entries[middleware_class].options)
        except KeyError:
            raise KeyError(f"{_short(middleware_class)} is not registered") from None

    # -- resolution -----------------------------------------------------------------
    def _ordered(self) -> list[_Entry]:
        return sorted(self._entries.values(), key=lambda e: (_rank(e.place), e.seq))

    def _resolve(self) -> tuple[Wiring, list[tuple[type[Any], tuple[Any, ...], dict[str, Any]]]]:
        """Final (class, args, options) list, outermost first, and the wiring they share."""
        wiring = Wiring()
        resolved: list[tuple[_Entry, dict[str, Any]]] = []
        for entry in self._ordered():
            from_env = self._env_options(entry)
            options = {**entry.defaults, **from_env, **entry.options}
            if any(name not in entry.options for name in from_env):
                _check_env_options(entry, options, from_env)
            resolved.append((entry, options))
        # Declarations first (outermost first), so that every instance sees all of them.
        for entry, options in resolved:
            declare = getattr(entry.cls, "hardenkit_declare", None)
            if declare is not None:
                declare(options, wiring)
        final: list[tuple[type[Any], tuple[Any, ...], dict[str, Any]]] = []
        for entry, options in resolved:
            if _is_component(entry.cls):
                options = {**options, "kit": wiring}
            elif entry.name == "starlette.middleware.cors.CORSMiddleware" and wiring.exposed_headers:
                options = dict(options)
                exposed = list(options.get("expose_headers", ()))
                known = {name.lower() for name in exposed}
                exposed += [name for name in wiring.exposed_headers if name.lower() not in known]
                options["expose_headers"] = exposed
            final.append((entry.cls, entry.args, options))
        wiring.stack = tuple(_short(cls) for cls, _, _ in final)
        return wiring, final

    def _env_options(self, entry: _Entry) -> dict[str, Any]:
        """Options read from HARDENKIT_<COMPONENT>_<OPTION>; remembers which variable gave which."""
        if self._environ is None:
            return {}
        component = getattr(entry.cls, "hardenkit_env_name", None)
        table: Mapping[str, EnvParser] = getattr(entry.cls, "hardenkit_env", {}) or {}
        if not component:
            return {}
        prefix = f"HARDENKIT_{component}_"
        by_env = {f"{prefix}{option.upper()}": option for option in table}
        values: dict[str, Any] = {}
        for variable, text in self._environ.items():
            if not variable.startswith(prefix):
                continue
            option = by_env.get(variable)
            where = self._env_where.get(variable)
            at = f"{where}: " if where else ""
            if option is None:
                known = ", ".join(sorted(by_env)) or "none"
                raise ConfigurationError(
                    f"{at}{variable}: {_short(entry.cls)} has no option of that name; known variables: {known}"
                )
            try:
                values[option] = table[option](text)
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"{at}{variable}={text!r}: {exc}") from None
            entry.env_applied[option] = f"{variable}={text!r}" + (f" ({where})" if where else "")
        return values

    # -- installation ---------------------------------------------------------------
    def install(self, app: Any) -> Any:
        """Add every registered middleware to a Starlette/FastAPI ``app``; returns the app.

        Must be called before the app starts (Starlette refuses new middleware
        once it has started serving).
        """
        if not hasattr(app, "add_middleware") or not hasattr(app, "user_middleware"):
            raise ConfigurationError(
                f"Kit.install expects a Starlette or FastAPI app, got {type(app).__name__}; "
                "use kit.wrap(app) for any other ASGI app"
            )
        wiring, final = self._resolve()
        # add_middleware inserts at the front, so add innermost first.
        for cls, args, options in reversed(final):
            app.add_middleware(cls, *args, **options)
        app.add_middleware(_KitRoot, wiring=wiring, kit=self)
        return app

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """Wrap any ASGI 3 app (Litestar, Quart, Django...) and return the wrapped app."""
        if not callable(app):
            raise ConfigurationError(f"Kit.wrap expects an ASGI application, got {app!r}")
        wiring, final = self._resolve()
        wrapped = app
        for cls, args, options in reversed(final):
            wrapped = cls(wrapped, *args, **options)
        return _KitRoot(wrapped, wiring=wiring, kit=self)

    # -- introspection --------------------------------------------------------------
    def describe(self) -> str:
        """The final stack, outermost first, one line per layer."""
        lines = ["hardenkit stack (outermost first):", "  kit root (lifespan hooks)"]
        for entry in self._ordered():
            options = {**entry.defaults, **self._env_options(entry), **entry.options}
            shown = ", ".join(f"{key}={_short_repr(value)}" for key, value in options.items())
            label = entry.place if entry.place in SLOTS else f"{entry.place}"
            lines.append(f"  {label:<18} {_short(entry.cls)}({shown})")
        lines.append("  app")
        return "\n".join(lines)

    def effective_options(self) -> list[tuple[str, str, dict[str, tuple[Any, str]]]]:
        """Per layer, outermost first: (place, class name, {option: (value, source)}).

        ``source`` is ``"default"`` (the class's own default), ``"explicit"`` (given
        to ``register``) or the variable that set it (``"HARDENKIT_X (environment)"``,
        ``"HARDENKIT_X (.env, line 3)"``). Values are shown as given: redact before printing.
        """
        layers: list[tuple[str, str, dict[str, tuple[Any, str]]]] = []
        for entry in self._ordered():
            from_env = self._env_options(entry)
            shown: dict[str, tuple[Any, str]] = {
                name: (default, "default") for name, default in _defaults(entry.cls).items()
            }
            shown.update({name: (value, "harden() default") for name, value in entry.defaults.items()})
            prefix = f"HARDENKIT_{getattr(entry.cls, 'hardenkit_env_name', '')}_"
            for name, value in from_env.items():
                variable = f"{prefix}{name.upper()}"
                shown[name] = (value, f"{variable} ({self._env_where.get(variable, 'environment')})")
            for name, value in entry.options.items():
                shown[name] = (value, "explicit")
            layers.append((entry.place, _short(entry.cls), shown))
        return layers

    def __repr__(self) -> str:
        layers = " > ".join(_short(entry.cls) for entry in self._ordered())
        return f"<Kit {layers or '(empty)'} > app>"


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover - never called
    raise RuntimeError("placeholder app used to validate options")


def _check_env_options(entry: _Entry, options: dict[str, Any], from_env: Mapping[str, Any]) -> None:
    """Build the component once, aside, so that an option read from a variable and
    refused by the component names the variable (Starlette builds its middleware
    only at the first request, too late for a clear message)."""
    kwargs = {**options, "kit": Wiring()} if _is_component(entry.cls) else options
    try:
        entry.cls(_no_app, *entry.args, **kwargs)
    except ConfigurationError as exc:
        used = [entry.env_applied[name] for name in from_env if name not in entry.options]
        raise ConfigurationError(f"{exc} (set by {', '.join(used)})") from None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _takes_option(cls: type[Any], name: str) -> bool:
    """Whether ``cls(app, ...)`` declares a parameter called ``name`` (or takes ``**kwargs``)."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _defaults(cls: type[Any]) -> dict[str, Any]:
    """The keyword options ``cls(app, ...)`` declares with a default (``kit`` left out)."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}
    return {
        name: parameter.default
        for name, parameter in list(parameters.items())[1:]
        if parameter.default is not inspect.Parameter.empty and name != "kit"
    }


def _is_component(cls: type[Any]) -> bool:
    return hasattr(cls, "hardenkit_slot")


def _default_place(cls: type[Any]) -> str:
    slot = getattr(cls, "hardenkit_slot", None)
    if isinstance(slot, str):
        return slot
    return _KNOWN_PLACES.get(_qualname(cls), "innermost")


# -- harden() ------------------------------------------------------------------------

#: The recommended set, outermost first: (keyword, "module:Class", default options).
#: Each component adds its own line here.
DEFAULT_SET: list[tuple[str, str, dict[str, Any]]] = [
    ("health", "hardenkit.health:HealthProbeMiddleware", {}),
    ("headers", "hardenkit.headers:HeaderContractMiddleware", {}),
    # Only when prometheus_client is installed (see _REQUIRES).
    ("metrics", "hardenkit.metrics:MetricsMiddleware", {}),
    ("access_log", "hardenkit.logs:AccessLogMiddleware", {}),
    # 30 s to start answering, 30 s for the body: a slow dependency or client cannot hold a worker.
    ("timeout", "hardenkit.timeouts:TimeoutMiddleware", {}),
    ("ratelimit", "hardenkit.ratelimit:RateLimitMiddleware", {"default": "100/minute"}),
    # Starlette's own RequestBodyLimitMiddleware (starlette 1.x), or hardenkit's equivalent on
    # older releases; 1 MiB, nginx's default client_max_body_size. Raise it for uploads.
    ("body_limit", "hardenkit._core.body_limit:body_limit_class()", {"max_body_size": 1_048_576}),
]


#: Components of the default set that need an optional package: keyword -> (module, extra).
#: harden() leaves them out when the package is missing, unless asked for by keyword.
_REQUIRES: dict[str, tuple[str, str]] = {"metrics": ("prometheus_client", "metrics")}


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


#: What harden() uses instead for an app it wraps: starlette's RequestBodyLimitMiddleware
#: raises its 413 inside the app's receive, which only Starlette's own stack turns into an
#: answer (Quart and Django let it escape); hardenkit's answers a declared length up front.
_WRAPPED_TARGETS: dict[str, str] = {"body_limit": "hardenkit._core.body_limit:BodyLimitMiddleware"}


def _load(target: str) -> type[Any]:
    """The class a ``"module:Class"`` target names; ``"module:function()"`` names the class it returns."""
    import importlib

    module_name, _, attr = target.partition(":")
    call = attr.endswith("()")
    found = getattr(importlib.import_module(module_name), attr.removesuffix("()"))
    cls: type[Any] = found() if call else found
    return cls


def harden(
    app: Any,
    *,
    env: bool = True,
    env_file: str | os.PathLike[str] | None = None,
    log_file: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    **overrides: Mapping[str, Any] | bool | None,
) -> Any:
    """Install hardenkit's recommended set on a Starlette/FastAPI app (or wrap any ASGI app).

    Each component can be tuned or left out by keyword: ``harden(app,
    headers={"security_headers": "web"})``; ``False`` or ``None`` leaves it out.
    With ``env=True`` (the default) ``HARDENKIT_<COMPONENT>_<OPTION>`` variables
    are read too; ``env_file=".env"`` adds that file's ``HARDENKIT_*`` lines under
    them (see :meth:`Kit.from_env`); keyword options win. ``log_file="logs/api.log"``
    (or a dict of ``LogFileHandler`` options with ``file``) also writes every record,
    redacted, to a log file shared safely by the server's workers; readiness warns
    while it cannot be written. Returns what ``install`` or ``wrap`` returns.
    """
    if log_file is not None:
        overrides = _with_log_file(log_file, overrides)
    installable = hasattr(app, "add_middleware") and hasattr(app, "user_middleware")
    kit = harden_kit(env=env, env_file=env_file, starlette=installable, **overrides)
    if installable:
        return kit.install(app)
    return kit.wrap(app)


def _with_log_file(
    log_file: str | os.PathLike[str] | Mapping[str, Any], overrides: dict[str, Any]
) -> dict[str, Any]:
    """Every record (the access log's included) also goes to a shared, rotated file; the probes'
    readiness warns while it cannot be written. atexit and logging.shutdown flush it at a clean stop."""
    file_options = dict(log_file) if isinstance(log_file, Mapping) else {"file": log_file}
    if "file" not in file_options:
        raise ConfigurationError("harden(): log_file= takes a path, or a dict of options with a 'file' key")
    make_file_handler = _load("hardenkit.logs.files:file_handler_from_options")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_hardenkit_log_file", False)]:
        root.removeHandler(old)
        old.close()
    file_handler = make_file_handler(file_options.pop("file"), redact=True, **file_options)
    file_handler._hardenkit_log_file = True
    root.addHandler(file_handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    overrides = dict(overrides)
    health = overrides.get("health", True)
    if health is not False and health is not None:
        health = {} if health is True else dict(health)
        health["checks"] = [*health.get("checks", ()), file_handler.check()]
        overrides["health"] = health
    return overrides


def harden_kit(
    *,
    env: bool = True,
    env_file: str | os.PathLike[str] | None = None,
    starlette: bool = True,
    **overrides: Mapping[str, Any] | bool | None,
) -> Kit:
    """The Kit that :func:`harden` installs, not yet installed (``hardenkit config`` shows it).

    ``starlette=False``: for an app that is wrapped (Litestar, Quart, Django...), where
    layers written for Starlette's own stack give way to their framework-neutral twins.
    """
    known = {name for name, _, _ in DEFAULT_SET}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigurationError(
            f"harden(): unknown component(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    if env:
        kit = Kit.from_env(env_file=env_file)
    elif env_file is not None:
        kit = Kit.from_env({}, env_file=env_file)  # the file only, not the process environment
    else:
        kit = Kit()
    for name, target, defaults in DEFAULT_SET:
        override = overrides.get(name, True)
        if override is False or override is None:
            continue
        if name in _REQUIRES and not _installed(_REQUIRES[name][0]):
            if name not in overrides:
                continue
            module, extra = _REQUIRES[name]
            raise ConfigurationError(
                f"harden(): {name}= needs {module}; install it with: pip install 'hardenkit[{extra}]'"
            )
        if override is True:
            override = {}
        if not isinstance(override, Mapping):
            raise ConfigurationError(
                f"harden(): {name}= takes a dict of options, True, or False, got {override!r}"
            )
        if not starlette:
            target = _WRAPPED_TARGETS.get(name, target)
        cls = _load(target)
        kit.register(cls, **override)
        # harden()'s defaults yield to HARDENKIT_* variables (HARDENKIT_RATELIMIT_DEFAULT works).
        kit._entries[cls].defaults = dict(defaults)
    return kit
