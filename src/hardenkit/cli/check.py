"""``hardenkit check URL``: audit a live service's contract (exit 0 all pass, 1 violations, 2 usage or connection error)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_INSTALL_HINT = "hardenkit check needs httpx: pip install 'hardenkit[check]'"
_EPILOG = """\
exit status: 0 when every check passes (failed warnings too, unless --strict), 1 on violations,
2 on a usage or connection error.
example (CI): hardenkit check http://127.0.0.1:8000 --path /items/1 --format junit --output check.xml
"""


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: write name=value, e.g. --param item_id=1")
    return name, value


def _parser() -> argparse.ArgumentParser:
    from ..check import CHECKS

    parser = argparse.ArgumentParser(
        prog="hardenkit check",
        description="Audit a live service: request ids, latency, security headers, errors, probes, "
        "rate limits, CORS, TLS. Any service, hardenkit or not.",
        epilog=_EPILOG + "checks: " + ", ".join(CHECKS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", help="the service's base URL, e.g. http://127.0.0.1:8000")
    found = parser.add_argument_group("what to call")
    found.add_argument(
        "--path", action="append", default=[], help="a path to call (repeatable); {name} filled by --param"
    )
    found.add_argument(
        "--openapi", metavar="URL_OR_FILE", help="the OpenAPI document (default: /openapi.json if served)"
    )
    found.add_argument("--no-openapi", action="store_true", help="do not look for /openapi.json")
    found.add_argument(
        "--param", action="append", type=_param, default=[], help="a path parameter's value: name=value"
    )
    found.add_argument(
        "--method",
        action="append",
        default=[],
        help="methods to call (default GET only; naming unsafe ones such as POST is telling the checker it may)",
    )
    found.add_argument(
        "--probe", action="append", help="health probe paths (default /livez /readyz /healthz)"
    )
    found.add_argument("--no-probes", action="store_true", help="do not check health probes")
    limits = parser.add_argument_group("how hard")
    limits.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    limits.add_argument("--max-requests", type=int, default=200, help="total request budget (default 200)")
    limits.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    limits.add_argument(
        "--burst", type=int, help="send N requests (at most 1000) to one path and expect a 429"
    )
    limits.add_argument("--burst-path", help="the path the burst goes to (default: the first endpoint)")
    rules = parser.add_argument_group("what to expect")
    rules.add_argument(
        "--preset", choices=("api", "web", "strict"), default="api", help="security headers preset"
    )
    rules.add_argument(
        "--min-grade", choices=("A", "B", "C", "D", "F"), default="A", help="lowest passing grade"
    )
    rules.add_argument(
        "--skip", action="append", default=[], choices=sorted(CHECKS), metavar="CHECK", help="skip a check"
    )
    rules.add_argument("--strict", action="store_true", help="warnings (e.g. server-leak) fail the run too")
    rules.add_argument("--request-id-header", default="X-Request-ID")
    rules.add_argument("--latency-header", default="X-Latency-MS", help="'none' to skip the latency check")
    tls = parser.add_argument_group("https")
    tls.add_argument("--cacert", help="CA bundle to verify the certificate with (e.g. a self-signed one)")
    tls.add_argument("--insecure", action="store_true", help="do not verify the certificate")
    tls.add_argument(
        "--min-cert-days", type=int, default=14, help="days a certificate must still be valid (default 14)"
    )
    out = parser.add_argument_group("output")
    out.add_argument("--format", choices=("table", "json", "junit"), default="table")
    out.add_argument(
        "--output", metavar="FILE", help="write the --format report to FILE (the table still goes to stdout)"
    )
    out.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error
    try:
        import httpx  # noqa: F401
    except ImportError:
        print(_INSTALL_HINT, file=sys.stderr)
        return 2
    from ..check import CheckError, CheckOptions, render, render_error, run

    options = CheckOptions(
        url=args.url,
        paths=args.path,
        openapi=args.openapi,
        discover=not args.no_openapi,
        params=dict(args.param),
        methods=[m.upper() for m in args.method] or ["GET"],
        concurrency=args.concurrency,
        max_requests=args.max_requests,
        timeout=args.timeout,
        preset=args.preset,
        min_grade=args.min_grade,
        probes=() if args.no_probes else (args.probe or ("/livez", "/readyz", "/healthz")),
        burst=args.burst,
        burst_path=args.burst_path,
        insecure=args.insecure,
        cacert=args.cacert,
        min_cert_days=args.min_cert_days,
        skip=frozenset(args.skip) | (frozenset({"probes"}) if args.no_probes else frozenset()),
        request_id_header=args.request_id_header,
        latency_header=None if args.latency_header.lower() == "none" else args.latency_header,
        strict=args.strict,
    )
    try:
        report = run(options)
    except CheckError as exc:
        print(f"hardenkit check: {exc}", file=sys.stderr)
        if args.output and args.format != "table":
            # CI publishes the file whatever happened: say there why nothing was checked.
            Path(args.output).write_text(render_error(args.url, str(exc), args.format), encoding="utf-8")
        return 2
    colour = args.color == "always" or (
        args.color == "auto" and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    )
    if args.output:
        Path(args.output).write_text(render(report, args.format), encoding="utf-8")
        print(render(report, "table", colour=colour))
    else:
        print(render(report, args.format, colour=colour))
    return 1 if report.failed() else 0
