"""What the checker knows: the catalogue of checks, one observed exchange, one check's result, the report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CHECKS", "CheckResult", "CheckSpec", "Observation", "Report"]

Severity = Literal["error", "warning"]
Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class CheckSpec:
    """A check: a stable id (for ``--skip`` and CI reports), a severity, a title and a one-line fix."""

    id: str
    severity: Severity
    title: str
    fix: str


def _catalogue(*specs: CheckSpec) -> dict[str, CheckSpec]:
    return {spec.id: spec for spec in specs}


#: Every check, in report order.
CHECKS: dict[str, CheckSpec] = _catalogue(
    CheckSpec(
        "request-id-present",
        "error",
        "X-Request-ID on every response (404, 405 and errors included)",
        "serve through hk.HeaderContractMiddleware (or hk.harden(app)) as the outermost middleware",
    ),
    CheckSpec(
        "request-id-echo",
        "error",
        "a valid X-Request-ID sent by the client comes back unchanged",
        "keep valid incoming ids (HeaderContractMiddleware does; check request_id_validator)",
    ),
    CheckSpec(
        "request-id-invalid",
        "error",
        "an invalid X-Request-ID is replaced by a fresh one (or refused with 400)",
        "validate incoming ids (HeaderContractMiddleware's default: 1-128 of [A-Za-z0-9._:-])",
    ),
    CheckSpec(
        "request-id-unique",
        "error",
        "generated request ids are unique across responses",
        "generate ids with a random source (uuid4, the default request_id_generator)",
    ),
    CheckSpec(
        "latency-header",
        "error",
        "X-Latency-MS is one integer, no larger than the measured round trip",
        "add the latency header (HeaderContractMiddleware's latency_header='X-Latency-MS')",
    ),
    CheckSpec(
        "security-headers",
        "error",
        "security headers of the preset, with safe values (graded A-F)",
        "use HeaderContractMiddleware(security_headers='api') for an API, 'web' for a site",
    ),
    CheckSpec(
        "problem-json",
        "error",
        "error responses (4xx, 5xx) are application/problem+json (RFC 9457)",
        "answer errors with problem+json: add exception handlers for 404/405/500 (hk.harden covers 500)",
    ),
    CheckSpec(
        "probes",
        "error",
        "health probes answer application/health+json with a status matching the code",
        "add hk.HealthProbeMiddleware (/livez, /readyz, /healthz), or give your probe paths with --probe",
    ),
    CheckSpec(
        "ratelimit-headers",
        "error",
        "rate-limit headers well formed (IETF RateLimit/RateLimit-Policy, X-RateLimit-* consistent)",
        "emit the headers from hk.RateLimitMiddleware, which keeps both forms consistent",
    ),
    CheckSpec(
        "ratelimit-burst",
        "error",
        "a burst past the limit gets 429 with Retry-After and problem+json",
        "rate limit the service (hk.RateLimitMiddleware) and answer 429 with Retry-After",
    ),
    CheckSpec(
        "cors",
        "error",
        "CORS does not reflect an arbitrary origin together with credentials",
        "list allowed origins explicitly in CORSMiddleware(allow_origins=[...]); never reflect with credentials",
    ),
    CheckSpec(
        "server-leak",
        "warning",
        "no version numbers in Server or X-Powered-By",
        "drop the version: uvicorn --no-server-header, or remove X-Powered-By in the app or proxy",
    ),
    CheckSpec(
        "hsts",
        "error",
        "Strict-Transport-Security on https, max-age of at least 180 days",
        "send Strict-Transport-Security: max-age=63072000; includeSubDomains (HeaderContractMiddleware does on https)",
    ),
    CheckSpec(
        "tls-version",
        "error",
        "TLS 1.2 or newer negotiated, and TLS 1.1 or older refused",
        "set the server's minimum TLS version to 1.2 (uvicorn --ssl-version, or the proxy's ssl_protocols)",
    ),
    CheckSpec(
        "tls-certificate",
        "error",
        "the certificate is valid for more than --min-cert-days days",
        "renew the certificate (automate it, e.g. ACME), well before it expires",
    ),
)


@dataclass
class Observation:
    """One request the checker made and what came back."""

    label: str  # why it was sent: "endpoint", "not-found", "method", "invalid-id", "probe", ...
    method: str
    path: str
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in order, duplicates kept
    body: bytes
    elapsed_ms: float
    sent_id: str | None = None

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def header(self, name: str) -> str | None:
        values = self.values(name)
        return values[-1] if values else None

    @property
    def media_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    @property
    def where(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


@dataclass
class CheckResult:
    spec: CheckSpec
    status: Status
    violations: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass
class Report:
    target: str
    results: list[CheckResult]
    requests: int
    endpoints: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    strict: bool = False  # warnings fail the run too

    def failed(self) -> list[CheckResult]:
        """Failed checks that decide the exit status: errors, and warnings too when ``strict``."""
        return [r for r in self.results if r.status == "fail" and (self.strict or r.spec.severity == "error")]

    def counts(self) -> dict[str, int]:
        counts = {"pass": 0, "fail": 0, "skip": 0}
        for result in self.results:
            counts[result.status] += 1
        return counts


def result(
    spec_id: str, violations: Iterable[str] = (), *, detail: str = "", skip: str | None = None
) -> CheckResult:
    """A check's result: failed when there are violations, skipped when ``skip`` says why."""
    spec = CHECKS[spec_id]
    if skip is not None:
        return CheckResult(spec, "skip", [], skip)
    found = list(dict.fromkeys(violations))  # one line per distinct violation, in order
    return CheckResult(spec, "fail" if found else "pass", found, detail)
