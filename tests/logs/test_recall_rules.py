"""Users' own rules: gitleaks configurations, Rule objects, and the opt-in high-entropy mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hardenkit.errors import ConfigurationError
from hardenkit.logs import Redactor
from hardenkit.logs.gitleaks import load_gitleaks, parse_gitleaks
from hardenkit.logs.rules import Rule

CONFIG = r"""
title = "team rules"

[extend]
useDefault = true

[allowlist]
stopwords = ["example"]

[[rules]]
id = "acme-api-token"
description = "ACME API token"
regex = '''(?i)\b(acme_[a-z0-9]{32})\b'''
keywords = ["acme_"]
entropy = 3.0

[[rules]]
id = "internal-password"
regex = '''(?i)internal[_-]?pass(?:word)?\s*=\s*"([^"]{6,64})"'''
secretGroup = 1
keywords = ["internal"]
[rules.allowlist]
regexes = ['''^changeme$''']

[[rules]]
id = "lookahead-rule"
regex = '''secret(?=[0-9]{4})'''

[[rules]]
id = "pem-files"
path = '''\.pem$'''
"""


def test_a_gitleaks_configuration_loads_and_rules_re2_cannot_compile_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "gitleaks.toml"
    path.write_text(CONFIG, encoding="utf-8")
    with pytest.raises(ConfigurationError, match="lookahead-rule: the regex does not compile"):
        load_gitleaks(path)
    loaded = load_gitleaks(path, strict=False)
    assert [rule.name for rule in loaded.rules] == ["gitleaks:acme-api-token", "gitleaks:internal-password"]
    assert len(loaded.errors) == 1 and loaded.errors[0].startswith("lookahead-rule:")
    assert any(entry.startswith("pem-files:") for entry in loaded.skipped)
    assert any("useDefault" in entry for entry in loaded.skipped)


@pytest.mark.parametrize("engine", ["re", "re2"])
def test_loaded_gitleaks_rules_redact_with_their_group_entropy_and_allowlists(engine: str) -> None:
    loaded = parse_gitleaks(CONFIG, strict=False)
    redactor = Redactor(rules=loaded.rules, engine=engine)  # type: ignore[arg-type]
    token = "acme_" + "k3j9x0q7m2n5b8v1c4z6l0p9o8i7u6y5"
    assert redactor.redact(f"using {token} now") == "using [REDACTED:acme_api_token] now"
    assert redactor.redact("acme_" + "a" * 32) == "acme_" + "a" * 32  # below the rule's entropy
    assert redactor.redact("acme_example" + "x1" * 10) == "acme_example" + "x1" * 10  # a stopword
    line = 'cfg internal_password = "s3cr3t-value" ok'
    assert redactor.redact(line) == 'cfg internal_password = "[REDACTED:internal_password]" ok'
    # Allowlisted for the gitleaks rule (the built-in key rule still hides a password's value).
    assert "internal_password" not in redactor.redact('internal_pass = "changeme"')


def test_gitleaks_errors_are_clear() -> None:
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        parse_gitleaks("[[rules]\nid=")
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_gitleaks("/nonexistent/gitleaks.toml")
    with pytest.raises(ConfigurationError, match="engine='pcre'"):
        parse_gitleaks("", engine="pcre")
    bad = parse_gitleaks('[[rules]]\nid = "x"\nregex = 5\n[[rules]]\nid = "x"\nregex = "a"\n', strict=False)
    assert bad.errors == ("x: regex must be a string",)


def test_python_310_without_tomli_gets_a_clear_message() -> None:
    code = (
        "import sys; sys.modules['tomllib'] = None; sys.modules['tomli'] = None\n"
        "from hardenkit.logs.gitleaks import parse_gitleaks\n"
        "from hardenkit.errors import ConfigurationError\n"
        "try:\n    parse_gitleaks('')\nexcept ConfigurationError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "tomli" in out and "3.11" in out


def test_an_re2_only_rule_is_refused_by_the_pure_engine_with_a_clear_message() -> None:
    rule = Rule("mine", ("mine",), r"x\z")  # \z: RE2 (and Go) syntax Python's re does not have
    assert Redactor(rules=[rule], engine="re2").redact("box") == "bo[REDACTED:mine]"
    with pytest.raises(ConfigurationError, match="needs RE2 syntax"):
        Redactor(rules=[rule], engine="re")
    with pytest.raises(ConfigurationError, match="Rule objects"):
        Redactor(rules=["x"])  # type: ignore[list-item]


def test_rules_can_be_turned_off_by_category() -> None:
    rule = Rule("mine", ("ticket",), r"TCK-[0-9]{4}", literals=("TCK-",))
    assert Redactor(rules=[rule]).redact("TCK-1234") == "[REDACTED:ticket]"
    assert Redactor(rules=[rule], disable=["ticket"]).redact("TCK-1234") == "TCK-1234"


# -- high-entropy mode ------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["re", "re2"])
def test_high_entropy_mode_is_opt_in_and_skips_identifiers(engine: str) -> None:
    text = "signature=Zx81kPq0Lm2Nv7Rt5Ws3Yu9Ab4Cd6Ef request_id=Zx81kPq0Lm2Nv7Rt5Ws3Yu9Ab4Cd6Eg"
    assert Redactor(engine=engine).redact(text) == text  # type: ignore[arg-type]
    on = Redactor(engine=engine, enable=["high_entropy"])  # type: ignore[arg-type]
    assert on.redact(text) == "signature=[REDACTED:high_entropy] request_id=Zx81kPq0Lm2Nv7Rt5Ws3Yu9Ab4Cd6Eg"
    low = "note=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1"
    assert on.redact(low) == low  # a long value, but not a random one
    assert on.redact("commit=0123456789abcdef0123456789abcdef01234567") == (
        "commit=0123456789abcdef0123456789abcdef01234567"
    )


def test_log_extras_under_star_key_names_are_judged_by_their_value() -> None:
    import logging

    from hardenkit.logs import RedactingFilter

    record = logging.LogRecord("app", logging.INFO, __file__, 1, "ok", None, None)
    setattr(record, "cache_key", "user_42")  # noqa: B010 - extras as logging sets them
    setattr(record, "user_auth", "ab12CD34")  # noqa: B010
    RedactingFilter(Redactor()).filter(record)
    assert getattr(record, "cache_key") == "user_42"  # noqa: B009 - a *_key name, a name for a value
    assert getattr(record, "user_auth") == "[REDACTED:secret]"  # noqa: B009
    engine = Redactor()._engine
    assert engine.secret_key("sort_key") is False and engine._key_cache["sort_key"] is False
