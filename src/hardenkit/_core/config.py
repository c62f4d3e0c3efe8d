"""Option parsing shared by the components (standard library only).

Each component that can be configured from the environment declares
``hardenkit_env_name`` (the ``<COMPONENT>`` part of ``HARDENKIT_<COMPONENT>_<OPTION>``)
and ``hardenkit_env`` (option name -> parser). A parser takes the variable's text
and returns the option's value, or raises ``ValueError`` with a short reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ConfigurationError

T = TypeVar("T")
EnvParser = Callable[[str], Any]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NONE = {"", "none", "null", "off"}


def env_str(text: str) -> str:
    return text


def env_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def env_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


def env_bool(text: str) -> bool:
    folded = text.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise ValueError(f"expected one of 1/0, true/false, yes/no, on/off, got {text!r}")


def env_list(text: str) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    return [part.strip() for part in text.split(",") if part.strip()]


def env_choice(*choices: str) -> EnvParser:
    def parse(text: str) -> str:
        folded = text.strip()
        if folded not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return folded

    return parse


def env_optional(parser: EnvParser) -> EnvParser:
    """``none``, ``null``, ``off`` or an empty value give ``None``; anything else goes to ``parser``."""

    def parse(text: str) -> Any:
        if text.strip().lower() in _NONE:
            return None
        return parser(text)

    return parse


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def check_header_name(name: str, *, option: str) -> str:
    """Return ``name`` lower-cased, or raise ConfigurationError for a non-token name."""
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise ConfigurationError(
            f"{option}: {name!r} is not a valid HTTP header name; use letters, digits and '-' "
            "(for example 'X-Request-ID')"
        )
    return name.lower()


def check_header_value(value: str, *, option: str) -> str:
    """Return ``value`` if it is a safe header value (no CR, LF or other control characters)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{option}: header values must be strings, got {type(value).__name__}")
    if _CONTROL.search(value.replace("\t", "")):
        raise ConfigurationError(
            f"{option}: header value {value!r} contains a control character (CR/LF?); "
            "header values must be a single line"
        )
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigurationError(f"{option}: header value {value!r} must be latin-1 (use ASCII)") from None
    return value.strip()
