"""RateLimitMiddleware: limits-backed rate limiting with IETF headers, from one process to a fleet.

A request goes through, in order: exempt paths (and paths an outer component
answers, such as health probes), the rules (first match wins, else the default
policy), the client key (``None`` exempts), the ``allow`` list, per-key
overrides, then one check-and-count in the storage. A refused request gets a 429
``application/problem+json`` answer; an admitted one gets the rate-limit headers
on its response, once, whatever the response type.

Per-endpoint limits use :func:`rate_limit`, which finds the middleware of the
current request through a context variable, so endpoints need no ``request``
parameter.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .._core.config import EnvParser, env_choice, env_float, env_int, env_list, env_optional, env_str
from .._core.events import RATELIMIT_DECISION, RATELIMIT_FALLBACK, events_of
from .._core.paths import route_path
from .._core.problem import problem_response
from ..errors import ConfigurationError
from .clients import mask_uri, scheme_of
from .engine import STRATEGY_NAMES, Decision, Stat
from .fallback import Decider
from .keys import ClientAddress, header_value, in_networks, parse_networks, safe_key
from .memory import DEFAULT_MAX_KEYS, LocalEngine
from .storage import NetworkEngines, StorageGuard

if TYPE_CHECKING:
    from limits import RateLimitItem
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .._core.kit import Wiring

    LimitSpec = str | RateLimitItem | Sequence[str | RateLimitItem]

    KeyFunc = Callable[[Scope], str | None | Awaitable[str | None]]
    CostFunc = Callable[[Scope], int | Awaitable[int]]
    BreachResult = Response | None | Awaitable[Response | None]
    BreachHook = (
        Callable[[Scope, "RateLimitBreach"], BreachResult] | Callable[["RateLimitBreach"], BreachResult]
    )

from .dependency import _CURRENT, _RequestState
from .policy import (
    _ERROR_MODES,
    _HEADER_MODES,
    _IETF_HEADERS,
    _POLICY_NAME,
    _PROXY_HEADERS,
    _X_HEADERS,
    QUOTA_EXCEEDED,
    QUOTA_EXCEEDED_TITLE,
    RateLimitBreach,
    RateLimitExceeded,
    _compile_rule,
    _install_hint,
    _is_response,
    _looks_like_network,
    _make_policy,
    _parse_limits,
    _path_matcher,
    _Policy,
    _Rule,
    _takes_one_argument,
    parse_overrides,
)
from .schema import document_served

__all__ = ["RateLimitMiddleware"]

logger = logging.getLogger("hardenkit.ratelimit")


class RateLimitMiddleware:
    """Rate limiting as pure ASGI middleware, on ``limits`` storages and strategies.

    See docs/ratelimit.md for every option; all are keyword-only with safe defaults.
    """

    hardenkit_slot: ClassVar[str] = "ratelimit"
    hardenkit_env_name: ClassVar[str] = "RATELIMIT"
    hardenkit_env: ClassVar[Mapping[str, EnvParser]] = {
        "default": env_optional(env_str),
        "storage": env_str,
        "strategy": env_choice(*STRATEGY_NAMES),
        "on_storage_error": env_choice(*_ERROR_MODES),
        "headers": env_optional(env_choice(*_HEADER_MODES)),
        "key": env_str,
        "trusted_proxies": env_list,
        "proxy_header": env_choice(*_PROXY_HEADERS),
        "exempt_paths": env_list,
        "allow": env_list,
        "storage_timeout": env_float,
        "max_keys": env_int,
        "per_address": env_optional(env_str),
    }

    def __init__(
        self,
        app: ASGIApp,
        *,
        default: LimitSpec | None = "100/minute",
        policies: Mapping[str, LimitSpec] | None = None,
        rules: Sequence[tuple[str, str | None]] | Mapping[str, str | None] | None = None,
        key: str | KeyFunc = "ip",
        trusted_proxies: Sequence[str] | str | None = None,
        proxy_header: str = "auto",
        ipv6_prefix: int = 64,
        storage: str = "memory://",
        storage_options: Mapping[str, Any] | None = None,
        strategy: str = "sliding-window",
        on_storage_error: str = "memory",
        storage_timeout: float = 0.5,
        key_prefix: str = "hardenkit",
        max_keys: int = DEFAULT_MAX_KEYS,
        per_address: LimitSpec | None = None,
        exempt_paths: Sequence[str] | None = None,
        allow: Sequence[str] | None = None,
        overrides: Mapping[str, LimitSpec | Mapping[str, LimitSpec | None] | None] | None = None,
        cost: int | CostFunc = 1,
        count_when: Callable[[int], bool] | None = None,
        headers: str | None = "both",
        on_breach: BreachHook | None = None,
        kit: Wiring | None = None,
    ) -> None:
        self.app = app
        self.kit = kit
        self._events = events_of(kit)

        # -- policies ---------------------------------------------------------------
        self.policies: dict[str, _Policy] = {}
        for name, spec in (policies or {}).items():
            if not isinstance(name, str) or not _POLICY_NAME.match(name):
                raise ConfigurationError(
                    f"policies: policy name {name!r} must be letters, digits, '_', '.' or '-' "
                    "(for example 'ai' or 'webhook')"
                )
            if name == "default":
                raise ConfigurationError(
                    "policies: 'default' is the default= option; set default=... instead"
                )
            self.policies[name] = _make_policy(name, name, _parse_limits(spec, option=f"policies[{name!r}]"))
        self.default_policy: _Policy | None = None
        if default is not None:
            self.default_policy = _make_policy("default", "default", _parse_limits(default, option="default"))

        # -- rules ------------------------------------------------------------------
        rule_items: Sequence[tuple[object, object]]
        if rules is None:
            rule_items = ()
        elif isinstance(rules, Mapping):
            rule_items = list(rules.items())
        elif isinstance(rules, (list, tuple)):
            rule_items = rules
        else:
            raise ConfigurationError(
                "rules: write a list of (pattern, policy) pairs, e.g. [('POST /ai/*', 'ai'), ('/health', None)]"
            )
        self.rules: list[_Rule] = []
        for index, pair in enumerate(rule_items):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ConfigurationError(
                    f"rules[{index}]: expected a (pattern, policy) pair such as ('POST /ai/*', 'ai'), got {pair!r}"
                )
            pattern, target = pair
            methods, exact, regex = _compile_rule(pattern, option=f"rules[{index}]")
            self.rules.append(_Rule(str(pattern), methods, exact, regex, self._rule_target(index, target)))
        self._exempt_exact: frozenset[str] = frozenset()
        exempt_regexes: list[re.Pattern[str]] = []
        exact_paths: set[str] = set()
        for path in exempt_paths or ():
            if not isinstance(path, str):
                raise ConfigurationError(f"exempt_paths: expected path strings, got {path!r}")
            exact, regex = _path_matcher(path, option="exempt_paths")
            if exact is not None:
                exact_paths.add(exact)
            elif regex is not None:
                exempt_regexes.append(regex)
        self._exempt_exact = frozenset(exact_paths)
        self._exempt_regexes = tuple(exempt_regexes)

        # -- keys -------------------------------------------------------------------
        if isinstance(ipv6_prefix, bool) or not isinstance(ipv6_prefix, int) or not 1 <= ipv6_prefix <= 128:
            raise ConfigurationError(
                f"ipv6_prefix: expected a prefix length 1..128 (default 64), got {ipv6_prefix!r}"
            )
        if proxy_header not in _PROXY_HEADERS:
            raise ConfigurationError(
                f"proxy_header: expected 'x-forwarded-for' or 'forwarded' (the header your proxy sets), "
                f"or 'auto' (the default: X-Forwarded-For when present, else Forwarded), got {proxy_header!r}"
            )
        self.client_address = ClientAddress(
            trusted_proxies=parse_networks(trusted_proxies, option="trusted_proxies"),
            proxy_header=proxy_header,
            ipv6_prefix=ipv6_prefix,
        )
        self._key_header: bytes | None = None
        self._key_func: KeyFunc | None = None
        if callable(key):
            self._key_func = key
        elif key == "ip":
            pass
        elif isinstance(key, str) and key.lower().startswith("header:") and key[7:].strip():
            from .._core.config import check_header_name

            self._key_header = check_header_name(key[7:].strip(), option="key").encode("latin-1")
        else:
            raise ConfigurationError(
                f"key: expected 'ip', 'header:<Name>' (e.g. 'header:X-API-Key') or a function "
                f"(scope) -> str | None, got {key!r}"
            )
        allow_networks: list[str] = []
        allow_keys: set[str] = set()
        for entry in allow or ():
            if not isinstance(entry, str) or not entry.strip():
                raise ConfigurationError(f"allow: expected CIDRs or keys as strings, got {entry!r}")
            if _looks_like_network(entry):
                allow_networks.append(entry)
            else:
                # Keys are compared in their stored form (long or unusual keys as a digest).
                allow_keys.add(safe_key(entry.strip()))
        self._allow_networks = parse_networks(allow_networks, option="allow")
        self._allow_keys = frozenset(allow_keys)
        self._overrides = parse_overrides(overrides, self.policies)

        self._address_policy = (
            None
            if per_address is None
            else _make_policy("per-address", "per-address", _parse_limits(per_address, option="per_address"))
        )

        # -- cost, count_when, headers, breach -----------------------------------------
        if isinstance(cost, bool) or not (callable(cost) or (isinstance(cost, int) and cost >= 0)):
            raise ConfigurationError(
                f"cost: expected a whole number >= 0 or a function (scope) -> int, got {cost!r}"
            )
        self._cost = cost
        if count_when is not None and not callable(count_when):
            raise ConfigurationError(
                f"count_when: expected a function (status: int) -> bool, e.g. lambda status: status >= 400, "
                f"got {count_when!r}"
            )
        self._count_when = count_when
        if headers is not None and headers not in _HEADER_MODES:
            raise ConfigurationError(
                f"headers: expected one of 'both', 'ietf', 'x-ratelimit' or None, got {headers!r}"
            )
        self._ietf = headers in ("both", "ietf")
        self._xrl = headers in ("both", "x-ratelimit")
        names = [*(_IETF_HEADERS if self._ietf else ()), *(_X_HEADERS if self._xrl else ())]
        self._drop_headers = frozenset(name.lower().encode("latin-1") for name in names)
        if on_breach is not None and not callable(on_breach):
            raise ConfigurationError(
                f"on_breach: expected a function (scope, breach) -> Response | None, got {on_breach!r}"
            )
        self._on_breach = on_breach
        # A hook written as (breach) -> ... (an alert that needs no scope) is accepted too.
        self._breach_only = on_breach is not None and _takes_one_argument(on_breach)

        # -- storage ----------------------------------------------------------------
        if strategy not in STRATEGY_NAMES:
            raise ConfigurationError(
                f"strategy: expected 'sliding-window', 'fixed-window' or 'moving-window', got {strategy!r}"
            )
        if on_storage_error not in _ERROR_MODES:
            raise ConfigurationError(
                f"on_storage_error: expected 'allow', 'deny' or 'memory', got {on_storage_error!r}"
            )
        if (
            isinstance(storage_timeout, bool)
            or not isinstance(storage_timeout, (int, float))
            or not (0 < storage_timeout <= 60)
        ):
            raise ConfigurationError(f"storage_timeout: expected seconds in (0, 60], got {storage_timeout!r}")
        if not isinstance(key_prefix, str) or not _POLICY_NAME.match(key_prefix):
            raise ConfigurationError(
                f"key_prefix: expected a short name like 'hardenkit', got {key_prefix!r}"
            )
        self.strategy = strategy
        self.on_storage_error = on_storage_error
        self.storage_uri = storage
        self._storage_timeout = float(storage_timeout)
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ConfigurationError(
                f"max_keys: expected a whole number >= 1 (default {DEFAULT_MAX_KEYS}), got {max_keys!r}"
            )
        self._documented = False  # document_rate_limits() ran for the app served
        self._network: NetworkEngines | None = None
        if not isinstance(storage, str) or "://" not in storage:
            raise ConfigurationError(
                f"storage: expected a storage URI such as 'memory://' or 'redis://host:6379/0', got {storage!r}"
            )
        scheme = scheme_of(storage)
        if scheme.startswith("async+"):
            raise ConfigurationError(
                f"storage: write {storage[len('async+') :]!r}; hardenkit picks limits' async storage itself"
            )
        self.guard = StorageGuard(storage=mask_uri(storage), mode=on_storage_error)
        if scheme == "memory":
            self._decider = Decider(
                guard=self.guard,
                mode=on_storage_error,
                timeout=self._storage_timeout,
                memory=LocalEngine(strategy, max_keys=max_keys),
            )
        else:
            from limits.errors import ConfigurationError as LimitsConfigurationError

            try:
                self._network = NetworkEngines(
                    storage, strategy, dict(storage_options or {}), key_prefix, float(storage_timeout)
                )
            except (LimitsConfigurationError, ValueError, ImportError, NotImplementedError) as exc:
                raise ConfigurationError(
                    f"storage {mask_uri(storage)!r} cannot be used: {exc}; check the URI scheme "
                    "(memory://, redis://, rediss://, redis+cluster://, redis+sentinel://, valkey://, "
                    f"memcached://) and that its client library is installed ({_install_hint(scheme)})"
                ) from None
            self._decider = Decider(
                guard=self.guard,
                mode=on_storage_error,
                timeout=self._storage_timeout,
                network=self._network,
                local=LocalEngine(strategy, max_keys=max_keys),
                on_degraded=self._fallback_event,
            )

        if kit is not None:
            kit.provide("ratelimit.storage_state", self.guard.state)

    # -- install-time declarations --------------------------------------------------------
    @classmethod
    def hardenkit_declare(cls, options: Mapping[str, Any], wiring: Wiring) -> None:
        mode = options.get("headers", "both")
        names: list[str] = []
        if mode in ("both", "ietf"):
            names += _IETF_HEADERS
        if mode in ("both", "x-ratelimit"):
            names += _X_HEADERS
        wiring.expose_headers(*names, "Retry-After")

    # -- option helpers ---------------------------------------------------------------
    def _rule_target(self, index: int, target: object) -> _Policy | None:
        if target is None:
            return None
        if isinstance(target, str) and target in self.policies:
            return self.policies[target]
        if target == "default":
            return self.default_policy
        try:
            items = _parse_limits(target, option=f"rules[{index}]")
        except ConfigurationError:
            known = ", ".join(sorted(self.policies)) or "none defined"
            raise ConfigurationError(
                f"rules[{index}]: {target!r} is neither a policy name (known: {known}, 'default') "
                "nor a limit string like '10/minute'; use None to exempt"
            ) from None
        name = f"rule-{index + 1}"
        return _make_policy(name, name, items)

    # -- the request path -------------------------------------------------------------
    def _is_exempt_path(self, path: str) -> bool:
        if path in self._exempt_exact:
            return True
        if self._exempt_regexes and any(regex.fullmatch(path) for regex in self._exempt_regexes):
            return True
        return self.kit is not None and self.kit.is_answered(path)

    def _policy_for(self, kind: str, method: str, path: str) -> tuple[bool, _Policy | None]:
        """(matched a rule, the policy); the default applies to HTTP requests only."""
        for rule in self.rules:
            if rule.matches(kind, method, path):
                return True, rule.policy
        return False, self.default_policy if kind == "http" else None

    async def _client_key(self, state: _RequestState) -> str | None:
        if state.key_known:
            return state.key
        scope = state.scope
        value: str | None
        if self._key_func is not None:
            try:
                result = self._key_func(scope)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                # A broken key function must neither exempt the request nor answer 500.
                logger.exception("rate limit key function raised; limiting the request by its address")
                value = "ip:" + self.client_address.key(scope)
            else:
                # A key function returning something else than str is tolerated (str() of it).
                value = safe_key(str(result)) if result else None
        elif self._key_header is not None:
            found = header_value(scope, self._key_header)
            # A missing key header must not mean "unlimited": fall back to the address.
            value = "k:" + safe_key(found) if found is not None else "ip:" + self.client_address.key(scope)
        else:
            value = self.client_address.key(scope)
        state.key = value
        state.key_known = True
        return value

    def _is_address_key(self, key: str) -> bool:
        return self._key_func is None and (self._key_header is None or key.startswith("ip:"))

    def _user_key(self, key: str) -> str:
        """The key as users write it in ``allow``/``overrides`` (without the storage prefix)."""
        if self._key_header is not None and key.startswith("k:"):
            return key[2:]
        return key

    def _allowed(self, scope: Scope, key: str) -> bool:
        if self._allow_keys and self._user_key(key) in self._allow_keys:
            return True
        if self._allow_networks:
            address = self.client_address.address(scope)
            if address is not None and in_networks(address, self._allow_networks):
                return True
        return False

    def _override(self, key: str, policy: _Policy) -> tuple[bool, _Policy | None]:
        per_policy = self._overrides.get(self._user_key(key))
        if per_policy is None:
            return False, policy
        if "*" in per_policy:
            return True, None
        if policy.name not in per_policy:
            return False, policy
        return True, per_policy[policy.name]

    async def _cost_of(self, scope: Scope) -> int:
        cost = self._cost
        if isinstance(cost, int):
            return cost
        try:
            value = cost(scope)
            if inspect.isawaitable(value):
                value = await value
        except Exception:
            logger.exception("rate limit cost function raised; counting 1 instead")
            return 1
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            logger.error("rate limit cost function returned %r; counting 1 instead", value)
            return 1
        return value

    async def decide(self, policy: _Policy, key: str, cost: int, *, peek: bool = False) -> Decision | None:
        """Check (and unless ``peek``, count) one request; None means "refuse: storage down"."""
        return await self._decider.decide(policy.windows, policy.namespace, key, cost, peek)

    def _decision_event(self, policy: _Policy, decision: Decision | None) -> None:
        result = "unavailable" if decision is None else "allowed" if decision.allowed else "limited"
        self._events.emit(RATELIMIT_DECISION, policy=policy.name, result=result)

    def _fallback_event(self, mode: str) -> None:
        self._events.emit(RATELIMIT_FALLBACK, mode=mode)

    async def aclose(self) -> None:
        """Close this event loop's storage connections; runs on the lifespan shutdown event."""
        if self._network is not None:
            await self._network.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan" and self._network is not None:
                await self.app(scope, self._closing_receive(receive), send)
                return
            await self.app(scope, receive, send)
            return
        if not self._documented:
            self._documented = True  # once: the routes are the app's, not the request's
            document_served(scope.get("app"), self.app)
        state = _RequestState(self, scope)
        token = _CURRENT.set(state)
        try:
            await self._handle(kind, state, scope, receive, send)
        finally:
            _CURRENT.reset(token)

    def _closing_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup" and self._network is not None:
                try:
                    # Connect (a cluster's slot table, the script) before the first request.
                    await self._network.startup()
                except Exception as exc:
                    logger.warning("rate-limit storage not ready at startup (%s); connecting lazily", exc)
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.aclose()
                except Exception:
                    logger.warning("closing the rate-limit storage connections failed", exc_info=True)
            return message

        return wrapped

    async def _handle(
        self, kind: str, state: _RequestState, scope: Scope, receive: Receive, send: Send
    ) -> None:
        # Rules match the path the app routes on (without a root_path prefix).
        path = route_path(scope)
        policy: _Policy | None = None
        key: str | None = None
        if not self._is_exempt_path(path):
            _, policy = self._policy_for(kind, scope.get("method", ""), path)
            if policy is not None:
                key = await self._client_key(state)
                if key is None or self._allowed(scope, key):
                    policy = None
                elif self._overrides:
                    _, policy = self._override(key, policy)
        count_after: tuple[_Policy, str, int] | None = None
        if policy is not None and key is not None:
            cost = await self._cost_of(scope)
            peek = self._count_when is not None and kind == "http"
            if self._address_policy is not None and not self._is_address_key(key):
                # Every keyed request also counts against its address: fresh (guessed or
                # unknown) keys from one place are throttled like one client.
                address_key = "ip:" + self.client_address.key(scope)
                by_address = await self.decide(self._address_policy, address_key, cost)
                if by_address is None or not by_address.allowed:
                    policy = self._address_policy
                    self._decision_event(policy, by_address)
                    await self._refuse(scope, receive, send, policy, address_key, by_address, state)
                    return
                if by_address.stats:
                    state.decisions.append((self._address_policy, by_address))
            decision = await self.decide(policy, key, cost, peek=peek)
            self._decision_event(policy, decision)
            if decision is None or not decision.allowed:
                await self._refuse(scope, receive, send, policy, key, decision, state)
                return
            if decision.stats:
                state.decisions.append((policy, decision))
            if peek:
                count_after = (policy, key, cost)
        if kind == "websocket":
            await self._run_websocket(scope, receive, send)
            return
        await self._run_http(scope, receive, send, state, count_after)

    async def _run_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except RateLimitExceeded as exc:
            # A handshake refused by a rate_limit() check inside the endpoint (before accept).
            await self._endpoint_refusal(scope, receive, send, exc, [])

    async def _run_http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        state: _RequestState,
        count_after: tuple[_Policy, str, int] | None,
    ) -> None:
        started = False
        replaced = False  # the framework's 500 for a refused check, replaced by the 429

        async def send_wrapper(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return
            if message["type"] == "http.response.start" and not started:
                if state.refused is not None and int(message.get("status", 500)) >= 500:
                    # Litestar, Quart, Django (and FastAPI under Kit.wrap) turn the
                    # exception into their own 500 instead of letting it escape.
                    replaced = True
                    return
                started = True
                if count_after is not None and self._count_when is not None:
                    await self._count_response(message, state, count_after)
                if state.decisions:
                    message["headers"] = self._merge_headers(message.get("headers", ()), state.decisions)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except RateLimitExceeded as exc:
            if started:
                raise
            await self._endpoint_refusal(scope, receive, send, exc, state.decisions)
        except Exception:
            if replaced and state.refused is not None:
                await self._endpoint_refusal(scope, receive, send, state.refused, state.decisions)
                return
            # The app crashed before answering: an outer component sends a 500, which
            # count_when must see like any other status.
            if not started and count_after is not None and self._count_when is not None:
                await self._count_response({"status": 500}, state, count_after)
            raise
        else:
            if replaced and state.refused is not None:
                await self._endpoint_refusal(scope, receive, send, state.refused, state.decisions)

    async def _endpoint_refusal(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        exc: RateLimitExceeded,
        earlier: Sequence[tuple[_Policy, Decision]],
    ) -> None:
        if exc.decision is None:
            await self._storage_down(scope, receive, send)
            return
        earlier = [(p, d) for p, d in earlier if d is not exc.decision]
        await self._send_refusal(scope, receive, send, exc.policy, exc.breach, exc.decision, earlier)

    async def _count_response(
        self, message: Message, state: _RequestState, count_after: tuple[_Policy, str, int]
    ) -> None:
        policy, key, cost = count_after
        assert self._count_when is not None
        try:
            counted = bool(self._count_when(int(message["status"])))
        except Exception:
            logger.exception("rate limit count_when raised; counting the request")
            counted = True
        if not counted:
            return
        decision = await self.decide(policy, key, cost)
        if decision is not None and decision.stats:
            # The counted numbers replace the ones seen before the app ran.
            state.decisions = [(p, d) for p, d in state.decisions if p is not policy]
            state.decisions.append((policy, decision))

    # -- headers ----------------------------------------------------------------------
    def _header_pairs(self, decisions: Sequence[tuple[_Policy, Decision]]) -> list[tuple[bytes, bytes]]:
        pairs: list[tuple[bytes, bytes]] = []
        if len(decisions) == 1:
            policy, decision = decisions[0]
            stats: Sequence[Stat] = decision.stats
            policy_value = policy.policy_header_bytes
        else:
            stats = [stat for _, decision in decisions for stat in decision.stats]
            policy_value = b", ".join(policy.policy_header_bytes for policy, _ in decisions)
        if not stats:
            return pairs
        if self._ietf:
            limit_value = ", ".join(
                f"{stat.window.ietf_prefix}{stat.remaining};t={math.ceil(stat.reset_in)}" for stat in stats
            )
            pairs.append((b"ratelimit-policy", policy_value))
            pairs.append((b"ratelimit", limit_value.encode("latin-1")))
        if self._xrl:
            # The most restrictive limit speaks for all (the one that will refuse first).
            tightest = stats[0] if len(stats) == 1 else min(stats, key=lambda s: (s.remaining, -s.reset_in))
            pairs.append((b"x-ratelimit-limit", tightest.window.x_limit))
            pairs.append((b"x-ratelimit-remaining", str(tightest.remaining).encode("latin-1")))
            reset_at = math.ceil(time.time() + tightest.reset_in)
            pairs.append((b"x-ratelimit-reset", str(reset_at).encode("latin-1")))
        return pairs

    def _merge_headers(
        self, existing: Iterable[tuple[bytes, bytes]], decisions: Sequence[tuple[_Policy, Decision]]
    ) -> list[tuple[bytes, bytes]]:
        drop = self._drop_headers
        # Replace, never duplicate: an inner component may have set the same names.
        merged = [(name, value) for name, value in existing if name.lower() not in drop]
        merged.extend(self._header_pairs(decisions))
        return merged

    # -- refusals ---------------------------------------------------------------------
    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        policy: _Policy,
        key: str,
        decision: Decision | None,
        state: _RequestState,
    ) -> None:
        if decision is None:
            await self._storage_down(scope, receive, send)
            return
        violated = tuple(stat.window.name for stat in decision.stats if stat.violated) or (policy.name,)
        breach = RateLimitBreach(
            key=self._user_key(key),
            policy=policy.name,
            violated=violated,
            retry_after=decision.retry_after,
            method=scope.get("method", "WEBSOCKET" if scope["type"] == "websocket" else ""),
            path=scope.get("path", "/"),
        )
        await self._send_refusal(scope, receive, send, policy, breach, decision, state.decisions)

    async def _send_refusal(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        policy: _Policy,
        breach: RateLimitBreach,
        decision: Decision,
        earlier: Sequence[tuple[_Policy, Decision]],
    ) -> None:
        response: Response | None = None
        if self._on_breach is not None:
            try:
                hook: Callable[..., Any] = self._on_breach
                result = hook(breach) if self._breach_only else hook(scope, breach)
                if inspect.isawaitable(result):
                    result = await result
                if result is not None and not _is_response(result):
                    logger.error(
                        "rate limit on_breach returned %s, not a Response or None; sending the standard 429",
                        type(result).__name__,
                    )
                    result = None
                response = result
                if response is not None:
                    self._complete_custom(response, policy, breach, decision, earlier)
            except Exception:
                # The user's hook must not turn a 429 into a 500.
                logger.exception("rate limit on_breach hook raised; sending the standard 429")
                response = None
        if response is None:
            headers = {"Retry-After": str(breach.retry_after)}
            for name, value in self._header_pairs([*earlier, (policy, decision)]):
                headers[name.decode("latin-1")] = value.decode("latin-1")
            names = ", ".join(repr(name) for name in breach.violated)
            response = problem_response(
                429,
                QUOTA_EXCEEDED_TITLE,
                type=QUOTA_EXCEEDED,
                detail=f"Rate limit exceeded ({names}); retry in {breach.retry_after} seconds.",
                extra={"violated-policies": list(breach.violated), "retry-after": breach.retry_after},
                headers=headers,
            )
        await self._answer(scope, receive, send, response)

    def _complete_custom(
        self,
        response: Response,
        policy: _Policy,
        breach: RateLimitBreach,
        decision: Decision,
        earlier: Sequence[tuple[_Policy, Decision]],
    ) -> None:
        """Give an on_breach answer the Retry-After and rate-limit headers it left out."""
        headers = getattr(response, "headers", None)
        status = getattr(response, "status_code", None)
        if headers is None or not hasattr(headers, "append"):
            return  # not a starlette Response: sent as it is
        if status == 429 and "retry-after" not in headers:
            headers.append("Retry-After", str(breach.retry_after))
        for name, value in self._header_pairs([*earlier, (policy, decision)]):
            text = name.decode("latin-1")
            if text not in headers:
                headers.append(text, value.decode("latin-1"))

    async def _storage_down(self, scope: Scope, receive: Receive, send: Send) -> None:
        retry = max(1, math.ceil(self.guard.retry_in()))
        response = problem_response(
            503,
            "Rate limit storage unavailable",
            detail=f"The rate-limit storage cannot be reached; retry in {retry} seconds.",
            headers={"Retry-After": str(retry)},
        )
        await self._answer(scope, receive, send, response)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
            from starlette.websockets import WebSocketClose

            # No denial-response extension: close the handshake (1008 policy violation).
            await WebSocketClose(code=1008, reason="rate limit exceeded")(scope, receive, send)
            return
        await response(scope, receive, send)
