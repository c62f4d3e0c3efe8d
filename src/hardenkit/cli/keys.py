"""``hardenkit keys create|list|rotate|revoke|verify``: manage API keys in a file or Redis store.

The store is ``--store`` (a file path, ``redis://...`` or ``env``), else ``HARDENKIT_AUTH_STORE``,
else ``hardenkit-keys.json`` in the current directory. The pepper is ``HARDENKIT_AUTH_PEPPER`` (the
server must see the same). A new key is printed once on stdout, alone on its line, so scripts can
capture it; everything else goes to stderr. With ``--store env`` ``create`` prints the
``HARDENKIT_APIKEY_<NAME>=...`` line to export instead of writing anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

EX_USAGE = 2
EX_INVALID = 1
EX_CONFIG = 78  # sysexits.h EX_CONFIG
DEFAULT_FILE = "hardenkit-keys.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hardenkit keys", description="Manage hardenkit API keys.")
    store_help = f"key store: a file path, redis://host:6379/0 or env (default $HARDENKIT_AUTH_STORE or {DEFAULT_FILE})"
    parser.add_argument("--store", "--file", dest="store", default=None, help=store_help)
    # Also accepted after the action (hardenkit keys list --store keys.json), where people put it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", "--file", dest="store", default=argparse.SUPPRESS, help=store_help)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser(
        "create", parents=[common], help="create a key for a new identity and print it once"
    )
    create.add_argument("--name", required=True, help="the identity, e.g. ci")
    create.add_argument(
        "--role",
        "--roles",
        action="append",
        required=True,
        help="a role (repeat, or comma-separate, for several)",
    )
    create.add_argument("--expires", default=None, help="lifetime, e.g. 90d (default: never)")
    listing = sub.add_parser("list", parents=[common], help="list keys (never secrets)")
    listing.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    rotate = sub.add_parser(
        "rotate", parents=[common], help="issue a new key for NAME; the old one works for the grace period"
    )
    rotate.add_argument("name")
    rotate.add_argument("--grace", default="24h", help="how long the old key stays valid (default 24h)")
    rotate.add_argument("--expires", default=None, help="lifetime of the new key (default: as the old one)")
    revoke = sub.add_parser(
        "revoke", parents=[common], help="revoke every key of NAME (or one key id) at once"
    )
    revoke.add_argument("name")
    sub.add_parser("verify", parents=[common], help="check a key read from stdin; exit 0 if valid")
    return parser


def _store_spec(args: argparse.Namespace) -> str:
    spec: str = args.store or os.environ.get("HARDENKIT_AUTH_STORE") or DEFAULT_FILE
    return spec


def _env_line(name: str, record: Any) -> str:
    variable = "HARDENKIT_APIKEY_" + name.upper().replace(".", "__").replace("-", "_").replace("@", "_")
    fields = [f"id={record.key_id}", f"hash={record.hash}", f"roles={','.join(record.roles)}"]
    if record.expires is not None:
        fields.append(f"expires={record.expires.isoformat()}")
    return f"{variable}='{';'.join(fields)}'"


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EX_USAGE
    import anyio

    from ..auth import KeyManager, MemoryKeyStore, open_store
    from ..errors import ConfigurationError, HardenkitError

    if args.action == "create":
        args.role = [role.strip() for value in args.role for role in value.split(",") if role.strip()]
    spec = _store_spec(args)
    try:
        if spec == "env" and args.action == "create":
            manager = KeyManager(MemoryKeyStore())
            key, record = anyio.run(lambda: manager.create(args.name, args.role, expires=args.expires))
            print(key)
            print(_env_line(args.name, record), file=sys.stderr)
            print("export the line above on the servers; the key is shown only once", file=sys.stderr)
            return 0
        manager = KeyManager(open_store(spec))
        return anyio.run(_run, manager, args)
    except ConfigurationError as exc:
        print(f"hardenkit keys: {exc}", file=sys.stderr)
        return EX_CONFIG
    except (HardenkitError, OSError) as exc:
        print(f"hardenkit keys: {exc}", file=sys.stderr)
        return EX_CONFIG


async def _run(manager: Any, args: argparse.Namespace) -> int:
    try:
        return await _act(manager, args)
    finally:
        await manager.store.aclose()


async def _act(manager: Any, args: argparse.Namespace) -> int:
    if args.action == "create":
        key, record = await manager.create(args.name, args.role, expires=args.expires)
        print(key)
        sys.stdout.flush()
        print(
            f"created key {record.key_id} for {record.name} (roles: {', '.join(record.roles)}); "
            "it is shown only once",
            file=sys.stderr,
        )
        return 0
    if args.action == "rotate":
        key, record = await manager.rotate(args.name, grace=args.grace, expires=args.expires)
        print(key)
        print(
            f"rotated {record.name}: new key {record.key_id}; the old key stays valid for {args.grace}",
            file=sys.stderr,
        )
        return 0
    if args.action == "revoke":
        revoked = await manager.revoke(args.name)
        print(f"revoked {', '.join(r.key_id for r in revoked)}", file=sys.stderr)
        return 0
    if args.action == "list":
        records = [record.public_dict() for record in await manager.list()]
        if args.json:
            print(json.dumps(records, indent=2))
            return 0
        columns = ("name", "id", "roles", "state", "created", "expires")
        rows = [
            [str(r["name"]), r["id"], ",".join(r["roles"]), r["state"], r["created"], r["expires"] or "-"]
            for r in records
        ]
        widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
        print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        for row in rows:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        return 0
    # verify: the key comes from stdin, never from argv (which other users can read in ps).
    text = sys.stdin.readline(4096).strip()
    record, why = await manager.verify(text)
    if record is None:
        print(f"invalid key ({why})", file=sys.stderr)
        return EX_INVALID
    print(
        json.dumps({"id": record.key_id, "name": record.name, "roles": list(record.roles), "state": "active"})
    )
    return 0
