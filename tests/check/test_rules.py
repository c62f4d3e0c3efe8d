"""The checks judge observed exchanges: each rule's pass and its failures, on hand-made responses."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from hardenkit.check import CHECKS, CheckOptions, Observation, Report, render
from hardenkit.check.discovery import endpoints_from_openapi, fill_path
from hardenkit.check.ratelimit_rules import parse_items, ratelimit_violations
from hardenkit.check.rules import evaluate, grade
from hardenkit.check.tls import TlsInfo
from hardenkit.headers import SECURITY_PRESETS

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
API = [(name.lower(), value) for name, value in SECURITY_PRESETS["api"].items()]
HEALTH = b'{"status":"pass"}'


def obs(
    label: str = "endpoint",
    *,
    status: int = 200,
    rid: str | None = "auto-1",
    sent: str | None = None,
    latency: str | None = "3",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"{}",
    content_type: str = "application/json",
    path: str = "/",
    method: str = "GET",
    elapsed: float = 10.0,
) -> Observation:
    all_headers = [("content-type", content_type)]
    if rid is not None:
        all_headers.append(("x-request-id", rid))
    if latency is not None:
        all_headers.append(("x-latency-ms", latency))
    all_headers += API if headers is None else headers
    return Observation(label, method, path, status, all_headers, body, elapsed, sent)


def good_set() -> list[Observation]:
    """What a service keeping the whole contract answers to the fixed probes."""
    problem = b'{"type":"about:blank","title":"Not Found","status":404}'
    return [
        obs("endpoint", rid="hk-1", sent="hk-1"),
        obs("not-found", status=404, rid="gen-a", body=problem, content_type="application/problem+json"),
        obs("not-found", status=404, rid="gen-b", body=problem, content_type="application/problem+json"),
        obs("invalid-id", rid="gen-c", sent="not valid"),
        obs("no-id", rid="gen-d"),
        obs(
            "probe",
            path="/livez",
            rid="hk-2",
            sent="hk-2",
            body=HEALTH,
            content_type="application/health+json",
        ),
        obs("cors", rid="hk-3", sent="hk-3"),
    ]


def run(observations: list[Observation], **options: Any) -> dict[str, Any]:
    tls = options.pop("tls", None)
    check_options = CheckOptions(url=options.pop("url", "http://127.0.0.1:1"), **options)
    results = evaluate(observations, options=check_options, tls=tls, now=NOW)
    return {r.id: r for r in results}


def failed(results: dict[str, Any]) -> set[str]:
    return {rid for rid, r in results.items() if r.status == "fail"}


def test_a_service_keeping_the_contract_passes_every_http_check() -> None:
    results = run(good_set())
    assert failed(results) == set()
    assert {results[k].status for k in ("hsts", "tls-version", "tls-certificate", "ratelimit-burst")} == {
        "skip"
    }
    assert results["security-headers"].detail.startswith("grade A")


def test_missing_request_id_on_a_404_is_a_violation() -> None:
    observations = good_set()
    observations[1] = obs("not-found", status=404, rid=None, content_type="application/problem+json",
                          body=b'{"status":404}')  # fmt: skip
    results = run(observations)
    assert failed(results) == {"request-id-present"}
    assert "GET / -> 404: 0 X-Request-ID headers" in results["request-id-present"].violations[0]


def test_echo_replacement_and_uniqueness_violations() -> None:
    observations = good_set()
    observations[0] = obs("endpoint", rid="other", sent="hk-1")  # not echoed
    observations[3] = obs("invalid-id", rid="not valid!", sent="not valid!")  # echoed
    observations[4] = obs("no-id", rid="gen-a")  # the same as a 404's generated id
    assert failed(run(observations)) == {"request-id-echo", "request-id-invalid", "request-id-unique"}


def test_an_invalid_id_refused_with_400_is_the_reject_mode() -> None:
    observations = good_set()
    observations[3] = obs("invalid-id", status=400, rid="gen-c", sent="bad id", body=b'{"status":400}',
                          content_type="application/problem+json")  # fmt: skip
    assert failed(run(observations)) == set()


def test_duplicate_or_unprintable_request_ids() -> None:
    observations = good_set()
    observations[0].headers.append(("x-request-id", "hk-1"))
    observations[2] = obs("not-found", status=404, rid="a b", content_type="application/problem+json",
                          body=b'{"status":404}')  # fmt: skip
    violations = run(observations)["request-id-present"].violations
    assert any("2 X-Request-ID headers" in v for v in violations)
    assert any("not a printable single-token id" in v for v in violations)


@pytest.mark.parametrize("latency", [None, "1.5", "abc", "50"])
def test_latency_must_be_one_integer_within_the_round_trip(latency: str | None) -> None:
    observations = good_set()
    observations[0] = obs("endpoint", rid="hk-1", sent="hk-1", latency=latency, elapsed=10.0)
    assert failed(run(observations)) == {"latency-header"}
    assert run(observations, latency_header=None)["latency-header"].status == "skip"


def test_security_headers_are_graded_and_bad_values_count() -> None:
    observations = good_set()
    weak = [(n, v) for n, v in API if n != "x-content-type-options"] + [("x-content-type-options", "sniff")]
    for index in (0, 1, 2):
        observations[index].headers = [
            (n, v) for n, v in observations[index].headers if (n, v) not in API
        ] + weak
    results = run(observations)
    assert failed(results) == {"security-headers"}
    assert "not a safe value" in results["security-headers"].violations[0]
    assert results["security-headers"].detail.startswith("grade B")
    assert run(observations, min_grade="B")["security-headers"].status == "pass"
    assert [grade(s) for s in (1.0, 0.9, 0.75, 0.6, 0.1)] == ["A", "B", "C", "D", "F"]


def test_web_preset_expects_its_own_headers() -> None:
    assert failed(run(good_set(), preset="web")) == {"security-headers"}


def test_error_bodies_must_be_problem_json() -> None:
    observations = [
        *good_set(),
        obs("method", status=405, content_type="text/plain", body=b"Method Not Allowed"),
    ]
    observations.append(
        obs("endpoint", status=500, content_type="application/problem+json", body=b"not json")
    )
    observations.append(
        obs("endpoint", status=502, content_type="application/problem+json", body=b'{"status":500}')
    )
    violations = run(observations)["problem-json"].violations
    assert len(violations) == 3
    assert "text/plain" in violations[0] and "not JSON" in violations[1] and "status" in violations[2]


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (404, "text/plain", b"Not Found"),
        (200, "application/json", HEALTH),
        (200, "application/health+json", b"[]"),
        (200, "application/health+json", b'{"status":"fail"}'),
        (503, "application/health+json", b'{"status":"pass"}'),
    ],
)
def test_probes_answer_health_json_matching_the_code(status: int, content_type: str, body: bytes) -> None:
    observations = good_set()
    observations[5] = obs(
        "probe", status=status, rid="hk-2", sent="hk-2", content_type=content_type, body=body
    )
    assert failed(run(observations)) == {"probes"}


def test_a_failing_readiness_probe_with_503_is_right() -> None:
    observations = good_set()
    observations[5] = obs("probe", status=503, rid="hk-2", sent="hk-2", content_type="application/health+json",
                          body=b'{"status":"fail"}')  # fmt: skip
    assert failed(run(observations)) == set()


HARDENKIT_RL = [
    ("ratelimit-policy", '"default";q=100;w=60'),
    ("ratelimit", '"default";r=99;t=52'),
    ("x-ratelimit-limit", "100"),
    ("x-ratelimit-remaining", "99"),
    ("x-ratelimit-reset", "1796104741"),
]


@pytest.mark.parametrize(
    "headers",
    [
        HARDENKIT_RL,
        [("ratelimit", "limit=10, remaining=3, reset=5")],
        [("x-ratelimit-limit", "60, 60;w=60"), ("x-ratelimit-remaining", "1")],
        [("ratelimit-policy", '"a";q=10;w=1, "b";q=100;w=60'), ("ratelimit", '"a";r=9;t=1, "b";r=99;t=60')],
    ],
)
def test_well_formed_rate_limit_headers(headers: list[tuple[str, str]]) -> None:
    assert ratelimit_violations(obs(headers=API + headers)) == []


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([("ratelimit-policy", "default;q=abc")], "no integer q"),
        ([("ratelimit-policy", '"x";q=5;w=0')], "not a positive integer"),
        ([("ratelimit-policy", '"x";q=5'), ("ratelimit", '"x";r=6;t=1')], "exceeds the policy"),
        ([("ratelimit", "((broken")], "not a structured-field list"),
        ([("ratelimit", "limit=10, remaining=30, reset=5")], "remaining exceeds"),
        ([("x-ratelimit-limit", "10"), ("x-ratelimit-remaining", "11")], "exceeds X-RateLimit-Limit"),
        ([("x-ratelimit-remaining", "1")], "must come together"),
        ([("x-ratelimit-limit", "ten"), ("x-ratelimit-remaining", "1")], "non-negative integers"),
        (
            [("x-ratelimit-limit", "10"), ("x-ratelimit-remaining", "1"), ("x-ratelimit-reset", "soon")],
            "Reset",
        ),
        (
            [*HARDENKIT_RL[:2], ("x-ratelimit-limit", "100"), ("x-ratelimit-remaining", "50")],
            "no RateLimit remaining",
        ),
        (
            [*HARDENKIT_RL[:2], ("x-ratelimit-limit", "200"), ("x-ratelimit-remaining", "99")],
            "no RateLimit-Policy quota",
        ),
    ],
)
def test_malformed_or_inconsistent_rate_limit_headers(headers: list[tuple[str, str]], problem: str) -> None:
    found = ratelimit_violations(obs(headers=API + headers))
    assert found and any(problem in p for p in found), found
    observations = [*good_set(), obs(headers=API + headers, rid="hk-9", sent="hk-9")]
    assert failed(run(observations)) == {"ratelimit-headers"}


def test_no_rate_limit_headers_is_not_a_violation() -> None:
    assert ratelimit_violations(obs()) is None
    assert "no rate-limit headers seen" in run(good_set())["ratelimit-headers"].detail


def test_structured_field_items_keep_quoted_commas() -> None:
    assert parse_items('"a,b";q=1, c;w=2') == [("a,b", {"q": "1"}), ("c", {"w": "2"})]


def test_burst_needs_a_429_with_retry_after_and_problem_json() -> None:
    ok = obs("burst", status=429, headers=API + [("retry-after", "30")], content_type="application/problem+json",
             body=b'{"status":429}')  # fmt: skip
    dated = obs("burst", status=429, headers=API + [("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")],
                content_type="application/problem+json", body=b'{"status":429}')  # fmt: skip
    bad = obs(
        "burst", status=429, headers=API + [("retry-after", "soon")], content_type="text/plain", body=b"x"
    )
    assert run([*good_set(), obs("burst"), ok, dated], burst=3)["ratelimit-burst"].status == "pass"
    assert len(run([*good_set(), bad], burst=1)["ratelimit-burst"].violations) == 2
    never = run([*good_set(), obs("burst"), obs("burst")], burst=2)["ratelimit-burst"]
    assert never.violations == ["2 requests in a burst, no 429"]


def test_cors_reflecting_any_origin_with_credentials() -> None:
    reflect = obs("cors", rid="hk-5", sent="hk-5", headers=API + [
        ("access-control-allow-origin", "https://hardenkit-check.invalid"),
        ("access-control-allow-credentials", "true"),
    ])  # fmt: skip
    without_credentials = obs("cors", rid="hk-6", sent="hk-6",
                              headers=API + [("access-control-allow-origin", "*")])  # fmt: skip
    assert failed(run([*good_set(), reflect])) == {"cors"}
    assert failed(run([*good_set(), without_credentials])) == set()


@pytest.mark.parametrize(("name", "value"), [("server", "nginx/1.25.3"), ("x-powered-by", "PHP/8.1"),
                                             ("server", "Apache 2.4.1")])  # fmt: skip
def test_version_leaks(name: str, value: str) -> None:
    leaky = obs(rid="hk-7", sent="hk-7", headers=API + [(name, value)])
    assert failed(run([*good_set(), leaky])) == {"server-leak"}
    assert (
        failed(run([*good_set(), obs(rid="hk-8", sent="hk-8", headers=API + [("server", "uvicorn")])]))
        == set()
    )


def test_a_failed_warning_decides_the_exit_only_when_strict() -> None:
    leaky = obs(rid="hk-7", sent="hk-7", headers=API + [("server", "nginx/1.25.3")])
    results = evaluate(
        [*good_set(), leaky], options=CheckOptions(url="http://127.0.0.1:1"), tls=None, now=NOW
    )
    assert Report("t", results, 8).failed() == []
    assert [r.id for r in Report("t", results, 8, strict=True).failed()] == ["server-leak"]
    assert "WARN  server-leak" in render(Report("t", results, 8), "table")


def test_hsts_on_https() -> None:
    tls = TlsInfo(version="TLSv1.3", refuses_old=True, not_after=NOW + timedelta(days=90))
    observations = good_set()
    results = run(observations, url="https://127.0.0.1:1", tls=tls)
    assert failed(results) == {"hsts"}
    for item in observations:
        item.headers.append(("strict-transport-security", "max-age=300"))
    assert "max-age under" in run(observations, url="https://127.0.0.1:1", tls=tls)["hsts"].violations[0]
    for item in observations:
        item.headers[-1] = ("strict-transport-security", "max-age=63072000; includeSubDomains")
    results = run(observations, url="https://127.0.0.1:1", tls=tls)
    assert failed(results) == set()
    assert results["tls-certificate"].detail.startswith("expires 2026-04-01")


@pytest.mark.parametrize(
    ("tls", "failing"),
    [
        (TlsInfo(version="TLSv1.1", refuses_old=False, not_after=NOW + timedelta(days=90)), {"tls-version"}),
        (
            TlsInfo(version="TLSv1.2", refuses_old=True, not_after=NOW + timedelta(days=3)),
            {"tls-certificate"},
        ),
        (
            TlsInfo(version="TLSv1.3", refuses_old=True, not_after=NOW - timedelta(days=1)),
            {"tls-certificate"},
        ),
        (TlsInfo(error="SSLError: bad handshake"), {"tls-version", "tls-certificate"}),
    ],
)
def test_tls_rules(tls: TlsInfo, failing: set[str]) -> None:
    observations = good_set()
    for item in observations:
        item.headers.append(("strict-transport-security", "max-age=63072000"))
    assert failed(run(observations, url="https://127.0.0.1:1", tls=tls)) == failing


def test_unknown_expiry_is_skipped_with_the_reason() -> None:
    tls = TlsInfo(version="TLSv1.3", refuses_old=None, notes=["no cryptography"])
    results = run(good_set(), url="https://127.0.0.1:1", tls=tls)
    assert (
        results["tls-certificate"].status == "skip" and "no cryptography" in results["tls-certificate"].detail
    )


# -- discovery -----------------------------------------------------------------------

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "servers": [{"url": "/api"}],
    "paths": {
        "/items/{item_id}": {
            "parameters": [{"name": "item_id", "in": "path", "schema": {"type": "integer"}}],
            "get": {},
            "delete": {},
        },
        "/users/{user}/files/{file_id}": {
            "get": {
                "parameters": [
                    {"name": "user", "in": "path", "schema": {"type": "string", "example": "ada"}},
                    {"name": "file_id", "in": "path", "schema": {"type": "string", "format": "uuid"}},
                ]
            }
        },
        "/colours/{colour}": {
            "get": {"parameters": [{"name": "colour", "in": "path", "schema": {"enum": ["red", "blue"]}}]}
        },
        "not-a-path": {"get": {}},
    },
}


def test_openapi_discovery_calls_safe_methods_with_sample_parameters() -> None:
    found = endpoints_from_openapi(OPENAPI, methods=["GET"], params={})
    assert [(e.method, e.path) for e in found] == [
        ("GET", "/api/items/1"),
        ("GET", "/api/users/ada/files/00000000-0000-4000-8000-000000000000"),
        ("GET", "/api/colours/red"),
    ]
    given = endpoints_from_openapi(OPENAPI, methods=["GET", "DELETE"], params={"item_id": "7"})
    assert ("DELETE", "/api/items/7") in [(e.method, e.path) for e in given]
    assert endpoints_from_openapi({"paths": []}, methods=["GET"], params={}) == []
    assert fill_path("/a/{x}/{y:int}", {"y": "2"}) == "/a/1/2"


# -- output --------------------------------------------------------------------------


def _report() -> Report:
    observations = good_set()
    observations[1] = obs("not-found", status=404, rid=None, content_type="text/plain", body=b"x")
    check_options = CheckOptions(url="http://127.0.0.1:1")
    results = evaluate(observations, options=check_options, tls=None, now=NOW)
    return Report("http://127.0.0.1:1", results, len(observations), ["GET /"], ["a note"])


def test_json_report_lists_every_check_with_id_severity_fix_and_violations() -> None:
    document = json.loads(render(_report(), "json"))
    assert [c["id"] for c in document["checks"]] == list(CHECKS)
    assert document["summary"]["ok"] is False and document["summary"]["fail"] == 2
    failing = {c["id"]: c for c in document["checks"] if c["status"] == "fail"}
    assert set(failing) == {"request-id-present", "problem-json"}
    for check in document["checks"]:
        assert check["severity"] in ("error", "warning") and check["fix"]


def test_junit_report_is_valid_xml_with_a_failure_per_failed_check() -> None:
    root = ET.fromstring(render(_report(), "junit"))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(CHECKS) == int(suite.get("tests", "0"))
    failures = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failures == {"request-id-present", "problem-json"} and suite.get("failures") == "2"
    assert int(suite.get("skipped", "0")) == sum(1 for c in cases if c.find("skipped") is not None) > 0


def test_table_colours_only_when_asked() -> None:
    plain = render(_report(), "table")
    assert "FAIL  request-id-present" in plain and "fix: " in plain and "\033[" not in plain
    assert "\033[31m" in render(_report(), "table", colour=True)


@pytest.mark.parametrize(
    ("schema", "sample"),
    [
        ({"type": "integer", "default": 5}, "5"),
        ({"type": "boolean", "example": True}, "true"),
        ({"examples": ["first", "second"]}, "first"),
        ({"type": "integer", "minimum": 10}, "10"),
        ({"type": "number"}, "1"),
        ({"type": "boolean"}, "true"),
        ({"type": "string", "format": "date"}, "2024-01-01"),
        ({"type": "string", "format": "date-time"}, "2024-01-01T00:00:00Z"),
        ({"type": "string"}, "1"),
    ],
)
def test_path_parameter_samples_by_schema(schema: dict[str, Any], sample: str) -> None:
    document = {"paths": {"/x/{v}": {"get": {"parameters": [{"name": "v", "in": "path", "schema": schema}]}}}}
    assert [e.path for e in endpoints_from_openapi(document, methods=["GET"], params={})] == [f"/x/{sample}"]


def test_swagger_base_path_parameter_examples_and_the_endpoint_cap() -> None:
    swagger = {
        "swagger": "2.0",
        "basePath": "/v2/",
        "paths": {
            "/pets/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "example": 7}, "junk"]}}
        },
    }
    assert [e.path for e in endpoints_from_openapi(swagger, methods=["GET"], params={})] == ["/v2/pets/7"]
    many: dict[str, Any] = {"paths": {f"/p{index}": {"get": {}} for index in range(1500)}}
    assert len(endpoints_from_openapi(many, methods=["GET"], params={})) == 1000
    assert fill_path("/a/{extra}", {"extra": "given"}) == "/a/given"


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        ([("ratelimit-policy", '"a\\"b";q=1, ((')], "not a structured-field list"),
        ([("ratelimit", "limit=ten, remaining=1, reset=1")], "must be integers"),
        ([("ratelimit", '"x";r=oops')], "must be non-negative integers"),
        (
            [("ratelimit-policy", '"a";q=5'), ("ratelimit", '"b";r=1')],
            "no RateLimit-Policy item of that name",
        ),
    ],
)
def test_more_malformed_rate_limit_headers(headers: list[tuple[str, str]], problem: str) -> None:
    found = ratelimit_violations(obs(headers=API + headers))
    assert found and any(problem in p for p in found), found


def test_escaped_quotes_inside_structured_field_strings() -> None:
    assert parse_items('"a\\"b";q=1') == [('a\\"b', {"q": "1"})]
