"""Whatever a check returns or raises, the probe answers valid ``application/health+json``.

NaN and infinities are not JSON; a list as ``status``, a cyclic ``observedValue``
or one whose ``str()`` raises used to make the probe answer 500. A malformed
result is now a ``fail`` with a generic output, and non-finite numbers are
written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from hardenkit.health import HEALTH_JSON, Check, HealthProbeMiddleware
from support import AsgiResponse, asgi_request

STATUSES = ("pass", "warn", "fail")


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"not JSON: {name}")


def strict_json(body: bytes) -> Any:
    """Parse as RFC 8259 JSON: NaN, Infinity and -Infinity are refused."""
    return json.loads(body, parse_constant=_no_constant)


def assert_valid_health_answer(response: AsgiResponse) -> dict[str, Any]:
    assert response.status in (200, 503)
    assert response.headers["content-type"] == HEALTH_JSON
    document = strict_json(response.body)
    assert isinstance(document, dict)
    assert document["status"] in STATUSES
    for entries in document.get("checks", {}).values():
        for entry in entries:
            assert entry["status"] in STATUSES
            assert isinstance(entry.get("output", ""), str)
    return document


async def health_of(fn: Callable[[], Any], **options: Any) -> tuple[AsgiResponse, dict[str, Any]]:
    mw = HealthProbeMiddleware(Starlette(), checks=[Check("x", fn)], **options)
    response = await asgi_request(mw, "/healthz")
    document = assert_valid_health_answer(response)
    ready = await asgi_request(mw, "/readyz")
    assert_valid_health_answer(ready)
    assert ready.status == response.status
    (entry,) = document["checks"]["x"]
    return response, entry


# -- odd values ---------------------------------------------------------------------------------


class RaisingStr:
    def __str__(self) -> str:
        raise RuntimeError("str() refused")

    __repr__ = __str__


class LiesAboutPass(str):
    """A str subclass equal to "pass" whose own value is not a status."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return hash("pass")


class BrokenMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("no items")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("no keys")

    def __len__(self) -> int:
        return 1


def cyclic_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def cyclic_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["self"] = {"parent": value}
    return value


def deeply_nested(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


class FloatNaN(float):
    pass


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("observed", "written"),
    [
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (FloatNaN("nan"), "NaN"),
        ([1.5, math.nan, {"p99": math.inf}], [1.5, "NaN", {"p99": "Infinity"}]),
    ],
    ids=["nan", "inf", "-inf", "float-subclass", "nested"],
)
async def test_non_finite_observed_values_are_written_as_valid_json(observed: Any, written: Any) -> None:
    response, entry = await health_of(lambda: {"status": "pass", "observedValue": observed})
    assert response.status == 200
    assert entry["status"] == "pass"
    assert entry["observedValue"] == written


MALFORMED: dict[str, Callable[[], Any]] = {
    "list-status": lambda: {"status": ["pass"]},
    "dict-status": lambda: {"status": {"pass": 1}},
    "lying-str-status": lambda: {"status": LiesAboutPass("bogus")},
    "cyclic-list": lambda: {"status": "pass", "observedValue": cyclic_list()},
    "cyclic-dict": lambda: {"status": "warn", "observedValue": cyclic_dict()},
    "str-raises": lambda: {"status": "pass", "observedValue": RaisingStr()},
    "nested-str-raises": lambda: {"status": "pass", "observedValue": [{"k": RaisingStr()}]},
    "key-str-raises": lambda: {"status": "pass", "observedValue": {RaisingStr(): 1}},
    "unit-str-raises": lambda: {"status": "pass", "observedUnit": RaisingStr()},
    "too-deep": lambda: {"status": "pass", "observedValue": deeply_nested(10_000)},
    "broken-mapping": lambda: BrokenMapping(),
    "broken-mapping-value": lambda: {"status": "pass", "observedValue": BrokenMapping()},
}


@pytest.mark.anyio
@pytest.mark.parametrize("expose_details", [False, True])
@pytest.mark.parametrize("make", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_a_malformed_result_is_a_generic_fail_not_a_500(
    make: Callable[[], Any], expose_details: bool
) -> None:
    response, entry = await health_of(make, expose_details=expose_details)
    assert response.status == 503
    assert entry["status"] == "fail"
    assert entry["output"].startswith("invalid check result")
    if not expose_details:
        assert entry["output"] == "invalid check result" or entry["output"].startswith(
            "invalid check result;"
        )
    assert "observedValue" not in entry


@pytest.mark.anyio
async def test_an_output_whose_str_raises_is_a_fail_when_details_are_shown() -> None:
    response, entry = await health_of(lambda: {"status": "pass", "output": RaisingStr()}, expose_details=True)
    assert (response.status, entry["status"]) == (503, "fail")
    # Without expose_details the output is never read, so it cannot break anything.
    response, entry = await health_of(lambda: {"status": "pass", "output": RaisingStr()})
    assert (response.status, entry["status"]) == (200, "pass")


@pytest.mark.anyio
async def test_an_integer_too_long_to_write_is_a_fail_not_a_500() -> None:
    if not hasattr(sys, "get_int_max_str_digits"):  # pragma: no cover - Pythons without the limit write it
        pytest.skip("this Python writes integers of any length")
    huge = 10 ** (sys.get_int_max_str_digits() + 10) if sys.get_int_max_str_digits() else 0
    if not huge:  # pragma: no cover - the limit is turned off here
        pytest.skip("the int/str digit limit is off")
    response, entry = await health_of(lambda: {"status": "pass", "observedValue": huge})
    assert (response.status, entry["status"]) == (503, "fail")


class UnprintableError(RuntimeError):
    def __str__(self) -> str:
        raise ValueError("no message for you")


@pytest.mark.anyio
@pytest.mark.parametrize("is_async", [False, True])
async def test_an_exception_whose_str_raises_is_a_fail_even_with_details(is_async: bool) -> None:
    def sync_check() -> bool:
        raise UnprintableError()

    async def async_check() -> bool:
        raise UnprintableError()

    response, entry = await health_of(async_check if is_async else sync_check, expose_details=True)
    assert (response.status, entry["status"]) == (503, "fail")
    assert entry["output"].startswith("check failed: UnprintableError")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.parametrize("is_async", [False, True])
async def test_a_check_calling_sys_exit_is_a_fail(is_async: bool) -> None:
    def sync_check() -> bool:
        sys.exit(3)

    async def async_check() -> bool:
        sys.exit(3)

    response, entry = await health_of(async_check if is_async else sync_check)
    assert (response.status, entry["status"], entry["output"]) == (503, "fail", "check failed")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 cannot tell a stray CancelledError apart")
async def test_a_cancelled_error_the_check_raises_itself_is_a_fail() -> None:
    async def check() -> bool:
        raise asyncio.CancelledError()  # not a cancellation: nobody cancelled the probe

    response, entry = await health_of(check)
    assert (response.status, entry["status"]) == (503, "fail")


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_a_real_cancellation_of_the_probe_still_propagates() -> None:
    started = anyio.Event()

    async def check() -> bool:
        started.set()
        await anyio.sleep(30)
        return True  # pragma: no cover

    mw = HealthProbeMiddleware(Starlette(), checks=[Check("x", check, timeout=60)])
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(asgi_request, mw, "/healthz")
            await started.wait()
            group.cancel_scope.cancel()
    # The interrupted run left a fail behind, not a stuck run; the next probe answers.
    response = await asgi_request(mw, "/healthz")
    assert_valid_health_answer(response)


# -- property: nothing a check returns or raises breaks the answer ----------------------------------

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(max_size=8),
    st.builds(RaisingStr),
    st.builds(FloatNaN, st.floats()),
    st.sampled_from([object(), RaisingStr, math.pi, 2**70, -(2**70)]),
)
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(
            st.one_of(st.text(max_size=5), st.integers(), st.builds(RaisingStr)), children, max_size=4
        ),
        st.builds(cyclic_list),
        st.builds(cyclic_dict),
        st.builds(BrokenMapping),
    ),
    max_leaves=12,
)
statuses = st.one_of(
    st.sampled_from(STATUSES),
    values,
    st.builds(LiesAboutPass, st.text(max_size=5)),
    st.lists(st.sampled_from(STATUSES)),
)
results = st.one_of(
    values,
    st.fixed_dictionaries(
        {"status": statuses},
        optional={"observedValue": values, "observedUnit": values, "output": values, "time": values},
    ),
)
if sys.version_info >= (3, 11):
    from builtins import ExceptionGroup

    groups = st.builds(lambda: ExceptionGroup("several", [ValueError("a"), RuntimeError("b")]))
else:  # pragma: no cover - ExceptionGroup is built in from 3.11
    groups = st.nothing()
errors = st.one_of(
    st.sampled_from(
        [ValueError, RuntimeError, OSError, KeyError, TimeoutError, ZeroDivisionError, SystemExit]
    ).map(lambda kind: kind("boom")),
    st.builds(UnprintableError),
    groups,
)
behaviours = st.one_of(
    results.map(lambda result: ("return", result)), errors.map(lambda error: ("raise", error))
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(behaviour=behaviours, is_async=st.booleans(), expose_details=st.booleans())
def test_any_check_result_gives_a_valid_health_json_answer(
    behaviour: tuple[str, Any], is_async: bool, expose_details: bool
) -> None:
    action, payload = behaviour

    def sync_check() -> Any:
        if action == "raise":
            raise payload
        return payload

    async def async_check() -> Any:
        return sync_check()

    async def probe() -> None:
        await health_of(async_check if is_async else sync_check, expose_details=expose_details)

    anyio.run(probe)


@pytest.mark.parametrize("component_type", [42, "", "  "])
def test_a_component_type_that_is_not_a_string_is_refused_at_start(component_type: Any) -> None:
    from hardenkit.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="component_type"):
        Check("db", lambda: True, component_type=component_type)
