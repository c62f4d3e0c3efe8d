"""``hardenkit status URL``: watch a service's ``/metrics`` without a Prometheus server.

Reads the metrics twice, ``--interval`` seconds apart, and prints req/s, the
error rate, p50/p95/p99 per route, rate-limit rejections and the SLO budget
left. ``--watch`` repeats until interrupted. Imports :mod:`hardenkit.metrics`
only (standard library; no web stack).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error

from ..errors import ConfigurationError
from ..metrics import fetch_exposition, format_summary, parse_exposition, summarize
from .slo import collect


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="hardenkit status",
        description="Summarise a service from its /metrics: req/s, errors, latency percentiles per route, "
        "rate-limit rejections, SLO budget left. The token comes from --token or HARDENKIT_METRICS_TOKEN.",
    )
    parser.add_argument("url", help="the service's metrics URL, e.g. http://127.0.0.1:8000/metrics")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between the two reads (default 5)"
    )
    parser.add_argument("--token", default=None, help="bearer token for /metrics")
    parser.add_argument("--slo", action="append", default=[], metavar="SPEC", help="as for hardenkit slo")
    parser.add_argument("--from", dest="sources", action="append", default=[], metavar="MODULE:ATTR")
    parser.add_argument("--watch", action="store_true", help="print a new summary every interval")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    if not 0 < args.interval <= 3600:
        parser.error("--interval takes seconds between 0 and 3600")
    url: str = args.url
    if "://" not in url:
        url = f"http://{url}"
    if url.rstrip("/").count("/") == 2:
        url = url.rstrip("/") + "/metrics"  # host[:port] alone: the default path
    token = args.token or os.environ.get("HARDENKIT_METRICS_TOKEN") or None
    try:
        slos = collect(args.slo, args.sources)
        before = parse_exposition(fetch_exposition(url, token=token, timeout=args.timeout))
        started = time.monotonic()
        while True:
            time.sleep(args.interval)
            after = parse_exposition(fetch_exposition(url, token=token, timeout=args.timeout))
            now = time.monotonic()
            sys.stdout.write(format_summary(summarize(before, after, now - started, slos), url=url))
            sys.stdout.flush()
            if not args.watch:
                return 0
            before, started = after, now
            sys.stdout.write("\n")
    except ConfigurationError as exc:
        print(f"hardenkit status: {exc}", file=sys.stderr)
        return 2
    except urllib.error.HTTPError as exc:
        hint = " (pass --token, or scrape from an allowed address)" if exc.code in (401, 403) else ""
        print(f"hardenkit status: {url} answered {exc.code}{hint}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"hardenkit status: cannot read {url}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
