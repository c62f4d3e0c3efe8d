"""Reading ``HARDENKIT_*`` variables from a ``.env`` file (standard library only).

``Kit.from_env(env_file=".env")`` and ``harden(app, env_file=".env")`` read the
file's ``HARDENKIT_*`` lines under the real environment (a variable set in both
takes the environment's value). The file is never copied into ``os.environ``.

The subset read is the one most ``.env`` files use (and the one docker compose
and python-dotenv agree on)::

    # a comment
    HARDENKIT_RATELIMIT_DEFAULT=100/minute      # an inline comment after a space
    export HARDENKIT_HEADERS_SECURITY_HEADERS=web
    HARDENKIT_RATELIMIT_STORAGE="redis://127.0.0.1:6379/0"   # \\n \\t \\" \\\\ in double quotes
    HARDENKIT_HEADERS_HSTS='max-age=63072000'  # single quotes: taken as written

No variable expansion, no multi-line values. Lines of other applications
(multi-line keys, ``${VAR}`` values) are left alone; a ``HARDENKIT_*`` line that
does not parse is an error naming the file and line. A missing file is skipped,
as pydantic-settings and docker compose do, so one call serves the developer's
machine (with a ``.env``) and production (without). Written here because the
subset is small and no dependency hardenkit already has reads it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError

__all__ = ["EnvFileValue", "read_env_file"]

_PREFIX = "HARDENKIT_"
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
_MAX_BYTES = 1_048_576  # a .env larger than this is not one


@dataclass(frozen=True)
class EnvFileValue:
    """One variable read from a file, and where it was written."""

    value: str
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}, line {self.line}"


def read_env_file(path: str | os.PathLike[str]) -> dict[str, EnvFileValue]:
    """The ``HARDENKIT_*`` variables of the file at ``path`` (empty when it does not exist)."""
    name = os.fspath(path)
    file = Path(name)
    try:
        with file.open("rb") as handle:
            data = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(f"env_file={name!r} cannot be read: {exc.strerror or exc}") from None
    if len(data) > _MAX_BYTES:
        raise ConfigurationError(f"env_file={name!r} is larger than {_MAX_BYTES} bytes; is it a .env file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    found: dict[str, EnvFileValue] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(raw)
        if match is None:
            if stripped.startswith(("export " + _PREFIX, _PREFIX)):
                raise ConfigurationError(f"{name}, line {number}: expected NAME=VALUE, got {stripped!r}")
            continue  # another application's syntax (a multi-line value, for example)
        key, rest = match.groups()
        if not key.startswith(_PREFIX):
            continue
        try:
            value = _value(rest)
        except ValueError as exc:
            raise ConfigurationError(f"{name}, line {number}: {key}: {exc}") from None
        found[key] = EnvFileValue(value, name, number)
    return found


def _value(rest: str) -> str:
    rest = rest.strip()
    if not rest:
        return ""
    quote = rest[0]
    if quote == "'":
        end = rest.find("'", 1)
        if end < 0:
            raise ValueError("the single quote is not closed (values are one line)")
        _only_comment_after(rest[end + 1 :])
        return rest[1:end]
    if quote == '"':
        out: list[str] = []
        index = 1
        while index < len(rest):
            char = rest[index]
            if char == "\\" and index + 1 < len(rest):
                following = rest[index + 1]
                out.append(_ESCAPES.get(following, "\\" + following))
                index += 2
                continue
            if char == '"':
                _only_comment_after(rest[index + 1 :])
                return "".join(out)
            out.append(char)
            index += 1
        raise ValueError("the double quote is not closed (values are one line)")
    # Unquoted: an inline comment starts at " #".
    comment = re.search(r"\s#", rest)
    return (rest[: comment.start()] if comment else rest).strip()


def _only_comment_after(tail: str) -> None:
    tail = tail.strip()
    if tail and not tail.startswith("#"):
        raise ValueError(f"unexpected text after the closing quote: {tail!r}")
