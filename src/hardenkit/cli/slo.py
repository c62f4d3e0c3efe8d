"""``hardenkit slo rules|dashboard``: Prometheus rules and a Grafana dashboard from SLOs.

SLOs come from ``--slo name:objective=0.999,latency_ms=100,...`` options, from
``--from module:attribute`` (an SLO or a list of them in the service's code) and
from ``HARDENKIT_SLO_<NAME>`` variables. Imports :mod:`hardenkit.metrics` only
(standard library; no web stack).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import ConfigurationError
from ..metrics import SLO, grafana_dashboard, prometheus_rules, slos_from_env


def _from_code(target: str) -> list[SLO]:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"--from {target!r}: write module:attribute, e.g. myservice.slos:SLOS")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: the service's modules by name
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"--from {target!r}: {exc}") from None
    found = [value] if isinstance(value, SLO) else list(value)
    for slo in found:
        if not isinstance(slo, SLO):
            raise ConfigurationError(f"--from {target!r}: {slo!r} is not a hardenkit.SLO")
    return found


def collect(specs: Sequence[str], sources: Sequence[str]) -> list[SLO]:
    slos = [SLO.parse(spec) for spec in specs]
    for source in sources:
        slos += _from_code(source)
    slos += slos_from_env()
    seen: dict[str, SLO] = {}
    for slo in slos:
        if slo.name in seen and seen[slo.name] != slo:
            raise ConfigurationError(f"two different SLOs are named {slo.name!r}")
        seen[slo.name] = slo
    return list(seen.values())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hardenkit slo",
        description="Write Prometheus recording rules and burn-rate alerts (rules) or a Grafana dashboard "
        "(dashboard) for SLOs given with --slo, --from, or HARDENKIT_SLO_<NAME> variables.",
    )
    parser.add_argument("what", choices=("rules", "dashboard"))
    parser.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="SPEC",
        help="name:objective=0.999,latency_ms=100,percentile=0.95,window=30d,routes=/a|/b/{id}",
    )
    parser.add_argument("--from", dest="sources", action="append", default=[], metavar="MODULE:ATTR")
    parser.add_argument(
        "--format", choices=("yaml", "json"), default="yaml", help="rules only (default yaml)"
    )
    parser.add_argument("--title", default="hardenkit service", help="dashboard title")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    args = parser.parse_args(argv)
    try:
        slos = collect(args.slo, args.sources)
    except ConfigurationError as exc:
        print(f"hardenkit slo: {exc}", file=sys.stderr)
        return 2
    if not slos and args.what == "rules":
        print(
            "hardenkit slo: no SLO given; use --slo api:objective=0.999,latency_ms=100 or HARDENKIT_SLO_API=...",
            file=sys.stderr,
        )
        return 2
    if args.what == "rules":
        text = prometheus_rules(slos, format=args.format)
    else:
        import json

        text = json.dumps(grafana_dashboard(slos, title=args.title), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        from ..lock import atomic_write

        atomic_write(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
