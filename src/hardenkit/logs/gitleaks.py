"""Load the rules of a gitleaks TOML configuration as redaction rules.

    from hardenkit.logs import Redactor
    from hardenkit.logs.gitleaks import load_gitleaks

    loaded = load_gitleaks("gitleaks.toml")  # raises ConfigurationError listing every rule that fails
    redactor = Redactor(rules=loaded.rules)

gitleaks regexes are RE2 syntax (Go's regexp), which the re2 engine runs as
they are. A rule RE2 cannot compile is reported with its id and RE2's message,
never dropped silently: ``strict=True`` (the default) raises, ``strict=False``
returns it in ``errors`` next to the rules that loaded. Rules that match file
paths only, and ``[extend] useDefault`` (hardenkit does not ship gitleaks'
default rules), are listed in ``skipped``.

What is used from each ``[[rules]]`` table: ``id``, ``regex``, ``secretGroup``
(default: group 1 when the regex has groups, else the whole match),
``keywords`` (the prefilter, case-insensitive), ``entropy`` (minimum Shannon
entropy of the secret), and ``allowlist``/``allowlists`` ``regexes`` and
``stopwords`` (a secret they match is left alone), plus the global
``[allowlist]``. The TOML is read with ``tomllib`` (Python 3.11+), or ``tomli``
on 3.10 when it is installed. Standard library only otherwise.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .context import shannon_entropy
from .rules import Check, Rule, Verdict

if TYPE_CHECKING:
    from .engine import RedactionEngine

__all__ = ["GitleaksRules", "load_gitleaks", "parse_gitleaks"]


@dataclass(frozen=True)
class GitleaksRules:
    """The rules of one gitleaks configuration, ready for ``Redactor(rules=...)``."""

    rules: tuple[Rule, ...]
    #: ``"<rule id>: <reason>"`` for each rule that could not be compiled.
    errors: tuple[str, ...] = ()
    #: ``"<rule id>: <reason>"`` for each rule that does not apply to log text.
    skipped: tuple[str, ...] = ()


def _toml() -> Any:
    try:
        return importlib.import_module("tomllib")
    except ModuleNotFoundError:
        pass
    try:
        return importlib.import_module("tomli")  # Python 3.10 with tomli installed
    except ModuleNotFoundError:
        raise ConfigurationError(
            "load_gitleaks: reading TOML needs Python 3.11+ (tomllib) or the tomli package: pip install tomli"
        ) from None


def load_gitleaks(
    path: str | os.PathLike[str], *, strict: bool = True, engine: str = "auto"
) -> GitleaksRules:
    """Read a gitleaks configuration file; see :func:`parse_gitleaks`."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigurationError(f"load_gitleaks: cannot read {os.fspath(path)!r}: {exc}") from None
    return parse_gitleaks(text, strict=strict, engine=engine)


def parse_gitleaks(text: str, *, strict: bool = True, engine: str = "auto") -> GitleaksRules:
    """The rules of a gitleaks TOML document.

    ``engine``: ``"auto"``/``"re2"`` compile with RE2 (gitleaks' own syntax), ``"re"`` with
    Python's re (for a redactor without google-re2). Rules that do not compile are
    reported in ``errors``; with ``strict`` a ConfigurationError lists them all.
    """
    try:
        document = _toml().loads(text)
    except ConfigurationError:
        raise
    except Exception as exc:  # tomllib.TOMLDecodeError, tomli's twin
        raise ConfigurationError(f"load_gitleaks: not valid TOML: {exc}") from None
    compile_ = _compiler(engine)
    rules: list[Rule] = []
    errors: list[str] = []
    skipped: list[str] = []
    extend = document.get("extend")
    if isinstance(extend, Mapping) and extend.get("useDefault"):
        skipped.append(
            "[extend] useDefault: hardenkit does not ship gitleaks' default rules; load that file too"
        )
    global_allow = _allowlist(document.get("allowlist"), compile_, "[allowlist]", errors)
    seen: set[str] = set()
    for index, table in enumerate(document.get("rules") or []):
        rule_id = (
            str(table.get("id") or f"rule-{index + 1}") if isinstance(table, Mapping) else f"rule-{index + 1}"
        )
        if not isinstance(table, Mapping):
            errors.append(f"{rule_id}: a [[rules]] entry must be a table")
            continue
        regex = table.get("regex")
        if regex is None:
            skipped.append(f"{rule_id}: matches file paths only, not log text")
            continue
        if not isinstance(regex, str):
            errors.append(f"{rule_id}: regex must be a string")
            continue
        try:
            groups = compile_(regex)
        except Exception as exc:
            errors.append(f"{rule_id}: the regex does not compile ({_message(exc)})")
            continue
        allow = [*global_allow, *_allowlists(table, compile_, rule_id, errors)]
        stopwords = [word.lower() for entry in _allow_tables(table) for word in entry.get("stopwords") or []]
        stopwords += [word.lower() for word in (document.get("allowlist") or {}).get("stopwords") or []]
        secret_group = table.get("secretGroup")
        group = (
            int(secret_group) if isinstance(secret_group, int) and secret_group > 0 else (1 if groups else 0)
        )
        entropy = table.get("entropy")
        category = _category(rule_id)
        name = f"gitleaks:{rule_id}"
        if name in seen:
            errors.append(f"{rule_id}: the id is used twice")
            continue
        seen.add(name)
        keywords = tuple(str(word).lower() for word in table.get("keywords") or [] if str(word))
        rules.append(
            Rule(
                name,
                (category,),
                regex,
                literals=keywords,
                icase=True,
                check=_check(category, group, float(entropy) if entropy else 0.0, allow, stopwords),
            )
        )
    result = GitleaksRules(tuple(rules), tuple(errors), tuple(skipped))
    if strict and errors:
        raise ConfigurationError(
            "load_gitleaks: these rules could not be loaded (pass strict=False to load the others):\n  "
            + "\n  ".join(errors)
        )
    return result


def _compiler(engine: str) -> Any:
    """A function that compiles a pattern and returns its number of groups."""
    if engine not in ("auto", "re2", "re"):
        raise ConfigurationError(
            f"load_gitleaks: engine={engine!r} is not known; write 'auto', 're2' or 're'"
        )
    if engine != "re":
        try:
            re2 = importlib.import_module("re2")
        except ImportError:
            if engine == "re2":
                raise ConfigurationError("load_gitleaks: engine='re2' needs google-re2") from None
        else:
            return lambda pattern: re2.compile(pattern).groups
    return lambda pattern: re.compile(pattern).groups


def _message(exc: Exception) -> str:
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return text or type(exc).__name__


def _allow_tables(table: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tables: list[Mapping[str, Any]] = []
    single = table.get("allowlist")
    if isinstance(single, Mapping):
        tables.append(single)
    tables.extend(entry for entry in table.get("allowlists") or [] if isinstance(entry, Mapping))
    return tables


def _allowlists(table: Mapping[str, Any], compile_: Any, rule_id: str, errors: list[str]) -> list[Any]:
    found: list[Any] = []
    for entry in _allow_tables(table):
        found.extend(_allowlist(entry, compile_, rule_id, errors))
    return found


def _allowlist(entry: Any, compile_: Any, where: str, errors: list[str]) -> list[re.Pattern[str]]:
    if not isinstance(entry, Mapping):
        return []
    compiled = [_allow_regex(pattern, compile_, where, errors) for pattern in entry.get("regexes") or []]
    return [pattern for pattern in compiled if pattern is not None]


def _allow_regex(pattern: Any, compile_: Any, where: str, errors: list[str]) -> re.Pattern[str] | None:
    try:
        compile_(pattern)
        return re.compile(pattern)
    except Exception as exc:
        errors.append(f"{where}: allowlist regex {pattern!r} does not compile ({_message(exc)})")
        return None


def _category(rule_id: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", rule_id.lower()).strip("_")[:40] or "gitleaks"
    return name if name[0].isalpha() else f"g_{name}"[:40]


def _check(
    category: str, group: int, entropy: float, allow: Iterable[re.Pattern[str]], stopwords: list[str]
) -> Check:
    allow = tuple(allow)

    def check(text: str, m: Any, engine: RedactionEngine) -> Verdict:
        start, end = m.span(group)
        if start < 0:
            start, end = m.span()
        secret = text[start:end]
        if not secret:
            return None
        if entropy and shannon_entropy(secret) < entropy:
            return None
        if any(pattern.search(secret) for pattern in allow):
            return None
        lowered = secret.lower()
        if any(word in lowered for word in stopwords):
            return None
        return category, start, end

    return check
