"""``hardenkit redact [FILE...]``: stream stdin or files to stdout, redacted.

Imports only :mod:`hardenkit.logs`' redactor (never the web stack).
"""

from __future__ import annotations

import io
import json as _json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO

from .._core.config import env_list
from ..errors import ConfigurationError
from ..logs import Redactor


def _redact_line(redactor: Redactor, line: str) -> str:
    """A JSON object line is redacted field by field (keys kept); any other line as text."""
    body = line.rstrip("\r\n")
    ending = line[len(body) :]
    stripped = body.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            document = _json.loads(stripped)
        except ValueError:
            document = None
        if isinstance(document, dict):
            if not redactor.might_contain(stripped) and not any(redactor.is_secret_key(k) for k in document):
                return line
            redacted = redactor.redact_obj(document)
            return _json.dumps(redacted, ensure_ascii=False, separators=(",", ":")) + ending
    return redactor.redact(body) + ending


def main(argv: list[str]) -> int:
    """``hardenkit redact [FILE...]``: stream stdin or files to stdout, redacted."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="hardenkit redact",
        description="Redact secrets and personal data from log files (stdin when no FILE is given). "
        "JSON lines are redacted field by field, other lines as text. "
        "The hash mode reads its key from HARDENKIT_REDACT_KEY.",
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="files to read ('-' is stdin)")
    parser.add_argument("--mode", choices=("mask", "hash", "partial"), default="mask")
    parser.add_argument(
        "--enable",
        action="append",
        default=[],
        type=env_list,
        metavar="CATEGORY[,CATEGORY...]",
        help="categories to add, repeated or comma-separated as in the environment (e.g. ip,email)",
    )
    parser.add_argument(
        "--disable",
        action="append",
        default=[],
        type=env_list,
        metavar="CATEGORY[,CATEGORY...]",
        help="categories to leave out, repeated or comma-separated",
    )
    args = parser.parse_args(argv)
    enable = [name for names in args.enable for name in names]
    disable = [name for names in args.disable for name in names]
    try:
        redactor = Redactor(mode=args.mode, enable=enable, disable=disable)
    except ConfigurationError as exc:
        print(f"hardenkit redact: {exc}", file=sys.stderr)
        return 2
    if args.mode == "hash" and not os.environ.get("HARDENKIT_REDACT_KEY"):
        print(
            "hardenkit redact: warning: --mode hash without HARDENKIT_REDACT_KEY: the key is per process "
            "(random), so the same value hashes differently in another run. Set HARDENKIT_REDACT_KEY "
            "to correlate tokens across runs.",
            file=sys.stderr,
        )
    names = args.files or ["-"]
    # Bytes that are not UTF-8 pass through unchanged (surrogateescape both ways); when
    # reading stdin (``tail -f app.log | hardenkit redact``) every line is flushed at once.
    buffer = getattr(sys.stdout, "buffer", None)
    out: IO[str] = (
        io.TextIOWrapper(
            buffer, encoding="utf-8", errors="surrogateescape", newline="", line_buffering="-" in names
        )
        if buffer is not None
        else sys.stdout
    )
    status = 0
    try:
        for name in names:
            try:
                source = _open_source(name)
            except OSError as exc:
                print(f"hardenkit redact: {name}: {exc.strerror or exc}", file=sys.stderr)
                status = 1
                continue
            try:
                for line in _stream(redactor, source):
                    out.write(line)
            finally:
                if name != "-":
                    source.close()
    finally:
        out.flush()
        if isinstance(out, io.TextIOWrapper) and out is not sys.stdout:
            out.detach()  # leave sys.stdout usable
    return status


def _open_source(name: str) -> IO[str]:
    if name != "-":
        return open(name, encoding="utf-8", errors="surrogateescape", newline="")
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin
    return io.TextIOWrapper(buffer, encoding="utf-8", errors="surrogateescape", newline="")


def _stream(redactor: Redactor, source: Iterable[str]) -> Iterator[str]:
    """Lines out, redacted; a private key block spanning lines is hidden whole."""
    return redactor._engine.redact_lines(source, lambda line: _redact_line(redactor, line))
