"""``hardenkit auth matrix MODULE:APP [--json]``: print an app's permission matrix (route x method x roles)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

EX_USAGE = 2


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hardenkit auth", description="API-key auth tools.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    matrix = sub.add_parser("matrix", help="print the permission matrix of MODULE:APP as a Markdown table")
    matrix.add_argument("target", metavar="MODULE:APP", help="the app to inspect, e.g. myservice.main:app")
    matrix.add_argument("--json", action="store_true", help="JSON rows instead of a Markdown table")
    matrix.add_argument("--app-dir", default=".", help="directory to import MODULE from (default: .)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EX_USAGE
    module_name, _, attr = args.target.partition(":")
    if not module_name or not attr:
        print(f"hardenkit auth matrix: expected MODULE:APP, got {args.target!r}", file=sys.stderr)
        return EX_USAGE
    sys.path.insert(0, os.path.abspath(args.app_dir))
    try:
        app = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        print(f"hardenkit auth matrix: cannot load {args.target}: {exc}", file=sys.stderr)
        return EX_USAGE
    from ..auth import permission_matrix, render_markdown

    rows = permission_matrix(app)
    if args.json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
    else:
        print(render_markdown(rows))
    return 0
