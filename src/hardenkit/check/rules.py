"""The checks themselves: each judges the observed exchanges and returns a :class:`CheckResult`.

The rules follow what hardenkit's header contract promises (a request id on every
response, echoed when valid, replaced when not; an integer latency; the security
presets), so that any service, hardenkit or not, can be held to it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from ..headers import SECURITY_PRESETS
from .model import CheckResult, Observation, result
from .ratelimit_rules import ratelimit_violations

if TYPE_CHECKING:
    from .runner import CheckOptions
    from .tls import TlsInfo

__all__ = ["GRADES", "evaluate", "grade"]

_SAFE_ID = re.compile(r"[\x21-\x7e]{1,1024}")
_VERSION = re.compile(r"\d+\.\d+|/\s*\d")
_PROBLEM = "application/problem+json"
_HEALTH = "application/health+json"
_HSTS_MIN = 15_552_000  # 180 days, what browsers' preload lists and scanners ask at the least
GRADES = ("A", "B", "C", "D", "F")
_SAFE_REFERRER = {
    "no-referrer",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "no-referrer-when-downgrade",
}


def _nosniff(value: str) -> bool:
    return value.strip().lower() == "nosniff"


def _frame_options(value: str) -> bool:
    return value.strip().upper() in ("DENY", "SAMEORIGIN")


def _referrer(value: str) -> bool:
    # Browsers apply the last policy they understand.
    return [part.strip().lower() for part in value.split(",")][-1] in _SAFE_REFERRER


def _csp(value: str) -> bool:
    lowered = value.lower()
    return "default-src" in lowered and "'unsafe-eval'" not in lowered and "default-src *" not in lowered


def _no_store(value: str) -> bool:
    return "no-store" in value.lower()


def _one_of(*choices: str) -> Any:
    return lambda value: value.strip().lower() in choices


def _present(value: str) -> bool:
    return bool(value.strip())


_VALUE_RULES: dict[str, Any] = {
    "x-content-type-options": _nosniff,
    "x-frame-options": _frame_options,
    "referrer-policy": _referrer,
    "content-security-policy": _csp,
    "cache-control": _no_store,
    "cross-origin-opener-policy": _one_of("same-origin", "same-origin-allow-popups"),
    "cross-origin-resource-policy": _one_of("same-origin", "same-site"),
    "cross-origin-embedder-policy": _one_of("require-corp", "credentialless"),
    "permissions-policy": _present,
    "x-permitted-cross-domain-policies": _one_of("none", "master-only"),
}


def grade(score: float) -> str:
    """A for every header right, then one letter per 15% short, F under 55%."""
    for letter, floor in zip(GRADES, (1.0, 0.85, 0.70, 0.55), strict=False):
        if score >= floor - 1e-9:
            return letter
    return "F"


def _ids(observation: Observation, header: str) -> list[str]:
    return observation.values(header.lower())


def _request_id(observations: Sequence[Observation], header: str) -> list[CheckResult]:
    present: list[str] = []
    echo: list[str] = []
    invalid: list[str] = []
    generated: list[tuple[str, str]] = []
    for obs in observations:
        ids = _ids(obs, header)
        if len(ids) != 1:
            present.append(f"{obs.where}: {len(ids)} {header} headers (want exactly 1)")
            continue
        rid = ids[0]
        if obs.label == "invalid-id" and rid == obs.sent_id and obs.status != 400:
            invalid.append(f"{obs.where}: the invalid id {rid[:40]!r} was echoed back")
            continue
        if not _SAFE_ID.fullmatch(rid):
            present.append(f"{obs.where}: {header} {rid[:60]!r} is not a printable single-token id")
            continue
        if obs.label == "invalid-id":
            if obs.status != 400:  # refusing an invalid id is the contract's "reject" mode
                generated.append((obs.where, rid))
        elif obs.sent_id is not None:
            if rid != obs.sent_id:
                echo.append(f"{obs.where}: sent {obs.sent_id!r}, got {rid!r}")
        else:
            generated.append((obs.where, rid))
    counts = Counter(rid for _, rid in generated)
    unique = [
        f"{where}: id {rid!r} was given to {counts[rid]} responses"
        for where, rid in generated
        if counts[rid] > 1
    ]
    skip_unique = None if len(generated) >= 2 else "fewer than two generated ids seen"
    return [
        result("request-id-present", present, detail=f"{len(observations)} responses"),
        result("request-id-echo", echo),
        result("request-id-invalid", invalid),
        result("request-id-unique", unique, skip=skip_unique, detail=f"{len(generated)} generated ids"),
    ]


def _latency(observations: Sequence[Observation], header: str | None) -> CheckResult:
    if header is None:
        return result("latency-header", skip="--latency-header none")
    name = header.lower()
    violations: list[str] = []
    for obs in observations:
        values = obs.values(name)
        if len(values) != 1 or not values[0].strip().isdigit():
            violations.append(f"{obs.where}: {header} is {values!r} (want one integer)")
        # The server's clock runs inside our round trip; 1 ms for the server's rounding.
        elif int(values[0]) > obs.elapsed_ms + 1:
            violations.append(
                f"{obs.where}: {header} {values[0]} ms exceeds the measured round trip of {obs.elapsed_ms:.0f} ms"
            )
    return result("latency-header", violations)


def _security(observations: Sequence[Observation], preset: str, min_grade: str) -> CheckResult:
    expected = [name.lower() for name in SECURITY_PRESETS[preset]]
    judged = [o for o in observations if o.label in ("endpoint", "not-found", "method")]
    if not judged:  # pragma: no cover - the fixed probes always give some
        return result("security-headers", skip="no responses to judge")
    good = 0
    problems: list[str] = []
    for obs in judged:
        for name in expected:
            value = obs.header(name)
            if value is None:
                problems.append(f"{obs.where}: missing {name}")
            elif not _VALUE_RULES.get(name, _present)(value):
                problems.append(f"{obs.where}: {name}: {value[:80]!r} is not a safe value")
            else:
                good += 1
    score = good / (len(expected) * len(judged))
    letter = grade(score)
    detail = f"grade {letter} ({score:.0%} of the '{preset}' preset's headers right)"
    if GRADES.index(letter) <= GRADES.index(min_grade):
        return result("security-headers", detail=detail)
    return result("security-headers", problems, detail=detail)


def _problem_json(observations: Sequence[Observation]) -> CheckResult:
    violations: list[str] = []
    for obs in observations:
        if obs.status < 400 or obs.label == "probe" or obs.method == "HEAD":
            continue
        if obs.media_type != _PROBLEM:
            violations.append(f"{obs.where}: Content-Type {obs.media_type or 'none'!r}, not {_PROBLEM}")
            continue
        try:
            document = json.loads(obs.body)
        except ValueError:
            violations.append(f"{obs.where}: the problem+json body is not JSON")
            continue
        if not isinstance(document, dict) or document.get("status", obs.status) != obs.status:
            violations.append(f"{obs.where}: the problem document's status does not match the response")
    return result("problem-json", violations)


def _probes(observations: Sequence[Observation], paths: Sequence[str]) -> CheckResult:
    if not paths:
        return result("probes", skip="no probe paths")
    violations: list[str] = []
    for obs in (o for o in observations if o.label == "probe"):
        if obs.status not in (200, 503):
            violations.append(f"{obs.where}: a probe answers 200 (up) or 503 (down)")
            continue
        if obs.media_type != _HEALTH:
            violations.append(f"{obs.where}: Content-Type {obs.media_type or 'none'!r}, not {_HEALTH}")
            continue
        try:
            status = json.loads(obs.body).get("status")
        except (ValueError, AttributeError):
            violations.append(f"{obs.where}: the health+json body is not a JSON object")
            continue
        want = ("pass", "warn") if obs.status == 200 else ("fail",)
        if status not in want:
            violations.append(
                f"{obs.where}: status {status!r} does not match the code (want {' or '.join(want)})"
            )
    return result("probes", violations, detail=", ".join(paths))


def _cors(observations: Sequence[Observation]) -> CheckResult:
    violations: list[str] = []
    for obs in (o for o in observations if o.label == "cors"):
        allowed = obs.header("access-control-allow-origin")
        credentials = (obs.header("access-control-allow-credentials") or "").strip().lower() == "true"
        if (
            allowed is not None
            and credentials
            and allowed.strip() in ("https://hardenkit-check.invalid", "*", "null")
        ):
            violations.append(
                f"{obs.where}: allows origin {allowed.strip()!r} with credentials (any site can read it as the user)"
            )
    return result("cors", violations)


def _server_leak(observations: Sequence[Observation]) -> CheckResult:
    violations = [
        f"{obs.where}: {name}: {value!r}"
        for obs in observations
        for name in ("server", "x-powered-by")
        for value in obs.values(name)
        if _VERSION.search(value)
    ]
    return result("server-leak", violations)


def _hsts(observations: Sequence[Observation], https: bool) -> CheckResult:
    if not https:
        return result("hsts", skip="not https")
    violations: list[str] = []
    for obs in (o for o in observations if o.label in ("endpoint", "not-found")):
        value = obs.header("strict-transport-security")
        if value is None:
            violations.append(f"{obs.where}: no Strict-Transport-Security")
            continue
        match = re.search(r"max-age\s*=\s*\"?(\d+)", value, re.I)
        if match is None or int(match.group(1)) < _HSTS_MIN:
            violations.append(f"{obs.where}: {value!r}: max-age under {_HSTS_MIN} s (180 days)")
    return result("hsts", violations)


def _tls(tls: TlsInfo | None, min_days: int, now: datetime) -> list[CheckResult]:
    if tls is None:
        return [result("tls-version", skip="not https"), result("tls-certificate", skip="not https")]
    if tls.error is not None:
        failure = [f"TLS handshake failed: {tls.error}"]
        return [result("tls-version", failure), result("tls-certificate", failure)]
    version: list[str] = []
    if tls.version not in ("TLSv1.2", "TLSv1.3"):
        version.append(f"negotiated {tls.version}, older than TLS 1.2")
    if tls.refuses_old is False:
        version.append("the server accepts a TLS 1.1 (or older) handshake")
    detail = f"negotiated {tls.version}" + (f"; {'; '.join(tls.notes)}" if tls.notes else "")
    certificate: list[str] = []
    cert_detail = ""
    if tls.not_after is None:
        cert_result = result("tls-certificate", skip="expiry unknown: " + "; ".join(tls.notes))
    else:
        left = tls.not_after - now
        cert_detail = f"expires {tls.not_after:%Y-%m-%d} ({left.days} days)"
        if left < timedelta(days=min_days):
            certificate.append(f"the certificate {cert_detail}, within {min_days} days")
        cert_result = result("tls-certificate", certificate, detail=cert_detail)
    return [result("tls-version", version, detail=detail), cert_result]


def _burst(observations: Sequence[Observation], burst: int | None) -> CheckResult:
    if not burst:
        return result("ratelimit-burst", skip="use --burst N")
    sent = [o for o in observations if o.label == "burst"]
    refused = [o for o in sent if o.status == 429]
    if not refused:
        return result("ratelimit-burst", [f"{len(sent)} requests in a burst, no 429"])
    violations: list[str] = []
    for obs in refused:
        retry = obs.header("retry-after")
        if retry is None or not _valid_retry_after(retry):
            violations.append(f"{obs.where}: Retry-After is {retry!r} (want seconds or an HTTP date)")
        if obs.media_type != _PROBLEM:
            violations.append(f"{obs.where}: Content-Type {obs.media_type or 'none'!r}, not {_PROBLEM}")
    return result("ratelimit-burst", violations, detail=f"{len(refused)} of {len(sent)} refused")


def _valid_retry_after(value: str) -> bool:
    value = value.strip()
    if value.isdigit():
        return True
    try:
        return parsedate_to_datetime(value) is not None
    except (TypeError, ValueError):
        return False


def evaluate(
    observations: Sequence[Observation],
    *,
    options: CheckOptions,
    tls: TlsInfo | None,
    now: datetime | None = None,
) -> list[CheckResult]:
    """Every check's result, in the catalogue's order."""
    everything = list(observations)
    https = options.url.lower().startswith("https://")
    results: list[CheckResult] = [
        *_request_id(everything, options.request_id_header),
        _latency(everything, options.latency_header),
        _security(everything, options.preset, options.min_grade),
        _problem_json(everything),
        _probes(everything, options.probes),
        _ratelimit(everything),
        _burst(everything, options.burst),
        _cors(everything),
        _server_leak(everything),
        _hsts(everything, https),
        *_tls(tls, options.min_cert_days, now or datetime.now(timezone.utc)),
    ]
    return results


def _ratelimit(observations: Iterable[Observation]) -> CheckResult:
    violations: list[str] = []
    seen = 0
    for obs in observations:
        found = ratelimit_violations(obs)
        if found is None:
            continue
        seen += 1
        violations += [f"{obs.where}: {problem}" for problem in found]
    detail = (
        f"on {seen} response(s)" if seen else "no rate-limit headers seen (use --burst N to test the limit)"
    )
    return result("ratelimit-headers", violations, detail=detail)
