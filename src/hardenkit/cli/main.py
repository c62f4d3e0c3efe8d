"""The ``hardenkit`` console script's dispatcher: one table of subcommands, each loaded when it runs."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .._version import __version__

# subcommand -> ("module:function", help). Each function takes the remaining argv
# (list[str]) and returns an exit status.
_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "config": ("hardenkit.cli.config:main", "print the effective configuration of harden() for an app"),
    "auth": ("hardenkit.cli.auth:main", "print the permission matrix (route x method x roles) of an app"),
    "check": (
        "hardenkit.cli.check:main",
        "audit a live service's contract (request ids, headers, probes, TLS)",
    ),
    "demo": ("hardenkit.cli.demo:main", "serve the demo app hardened by harden() on 127.0.0.1"),
    "keys": ("hardenkit.cli.keys:main", "create, list, rotate, revoke and verify API keys"),
    "lock": ("hardenkit.cli.lock:main", "run a command while holding a file lock"),
    "redact": ("hardenkit.cli.redact:main", "redact secrets and PII from stdin or files"),
    "slo": ("hardenkit.cli.slo:main", "write Prometheus SLO rules and alerts, or a Grafana dashboard"),
    "status": ("hardenkit.cli.status:main", "summarise a service from its /metrics (req/s, errors, latency)"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hardenkit",
        description="hardenkit: production hardening for Python web services.",
    )
    parser.add_argument("--version", action="version", version=f"hardenkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in _SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not args or args[0] not in _SUBCOMMANDS:
        parser.parse_args(args)  # handles --version, --help and unknown commands
        parser.print_help()
        return 2
    target, _ = _SUBCOMMANDS[args[0]]
    module_name, _, function_name = target.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    status: int = function(args[1:])
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
