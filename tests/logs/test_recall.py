"""Recall on real-world token formats: the generated corpus, every provider rule, every assignment syntax."""

from __future__ import annotations

import collections
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardenkit.logs import Redactor
from hardenkit.logs.context import is_secret_key, key_kind
from hardenkit.logs.providers import PROVIDER_RULES, crc32_base62

CORPUS_DIR = Path(__file__).resolve().parent / "redaction_corpus"
CORPUS = CORPUS_DIR / "recall_corpus.jsonl"
ENGINES = ["re", "re2"]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_recall_corpus", CORPUS_DIR / "make_recall_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module", params=ENGINES)
def redactor(request: pytest.FixtureRequest) -> Redactor:
    return Redactor(engine=request.param)


# -- the corpus itself ------------------------------------------------------------------


def test_recall_corpus_is_reproducible_from_its_script() -> None:
    module = _script()
    assert module.render(module.build()) == CORPUS.read_text(encoding="utf-8")


def test_recall_corpus_has_120_families_in_six_shapes_and_500_controls() -> None:
    entries = load()
    shapes: dict[str, set[str]] = collections.defaultdict(set)
    syntaxes: set[str] = set()
    for entry in entries:
        shapes[entry["family"]].add(entry["shape"].split(":")[0])
        if entry["shape"].startswith("assign:"):
            syntaxes.add(entry["shape"])
    controls = [entry for entry in entries if entry["family"] == "control"]
    families = {family: kinds for family, kinds in shapes.items() if family != "control"}
    assert len(families) >= 120
    for family, kinds in families.items():
        assert kinds == {"bare", "json", "query", "assign", "header", "yaml_env"}, family
    assert len(controls) >= 500
    assert {entry["shape"] for entry in controls} == {"log", "code", "template", "path", "url"}
    assert len(syntaxes) >= 25


# -- recall and damage ----------------------------------------------------------------------


def test_recall_per_family_meets_the_targets_and_controls_stay_unchanged(redactor: Redactor) -> None:
    table = _script().recall_table(redactor.redact, load())
    below = {}
    for family, row in table.items():
        if family == "control":
            continue
        context_found, context_total = row["context"]
        bare_found, bare_total = row["bare"]
        if context_found < 0.99 * context_total:
            below[family] = ("context", context_found, context_total)
        if row["distinctive"] and bare_found < 0.97 * bare_total:
            below[family] = ("bare", bare_found, bare_total)
    assert below == {}
    control = table["control"]
    assert control["changed"] <= 0.01 * control["context"][1]


def test_controls_come_out_exactly_as_they_went_in(redactor: Redactor) -> None:
    changed = [
        (entry["text"], redactor.redact(entry["text"]))
        for entry in load()
        if entry["family"] == "control" and redactor.redact(entry["text"]) != entry["text"]
    ]
    assert changed == []


def test_both_engines_give_the_same_output_on_the_whole_corpus() -> None:
    fast, pure = Redactor(engine="re2"), Redactor(engine="re")
    entries = load()
    assert [fast.redact(entry["text"]) for entry in entries] == [
        pure.redact(entry["text"]) for entry in entries
    ]


@pytest.mark.parametrize("mode", ["mask", "hash"])
def test_redaction_of_the_corpus_is_idempotent(mode: str) -> None:
    redactor = Redactor(mode=mode, key="k")  # type: ignore[arg-type]
    for entry in load():
        once = redactor.redact(entry["text"])
        assert redactor.redact(once) == once, entry["text"]


def test_every_provider_rule_finds_its_own_tokens_in_the_corpus() -> None:
    engine = Redactor()._engine
    hits: dict[str, set[str]] = collections.defaultdict(set)
    for entry in load():
        for rule_id, category, _ in engine.findings(entry["text"]):
            hits[rule_id].add(category)
    for rule in PROVIDER_RULES:
        assert rule.name in hits, rule.name
        assert hits[rule.name] <= set(rule.categories), rule.name


def test_provider_rules_have_unique_ids_literal_prefixes_and_categories() -> None:
    names = [rule.name for rule in PROVIDER_RULES]
    assert len(names) == len(set(names))
    assert len({category for rule in PROVIDER_RULES for category in rule.categories}) >= 120
    for rule in PROVIDER_RULES:
        assert rule.literals, rule.name
        assert len(rule.categories) == 1 and rule.categories[0].replace("_", "").isalnum(), rule.name


# -- the issue's own examples ----------------------------------------------------------------

TOKENS = {
    "bedrock": "ABSKQmVkcm9ja0FQSUtleS1hYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=",
    "gitlab_ci": "glcbt-64_abcdefghijKLMNOPQRST12",
    "gitlab_routable": "glpat-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789ab.01.0w1b2c3d4",
    "slack_app": "xapp-1-A0123456789-1234567890123-" + "a1" * 32,
    "stripe_prod": "sk_prod_4eC39HqLyjWDarjtT1zdp7dc",
    "azure_ad": "abc8Q~Zr1xY2wV3uT4sR5qP6oN7mL8kJ9iH0gF",
    "vault": "hvs.CAESIJ" + "a1B2c3D4" * 11,
    "huggingface": "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
    "doppler": "dp.pt.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdE",
    "postman": "PMAK-0123456789abcdef01234567-0123456789abcdef0123456789abcdef01",
}


@pytest.mark.parametrize("name", sorted(TOKENS))
@pytest.mark.parametrize(
    "shape",
    [
        "free text {v} here",
        '{{"value": "{v}"}}',
        "https://x.example/cb?ref={v}&page=2",
        "value={v}",
    ],
)
def test_tokens_the_issue_names_are_recognised_bare(redactor: Redactor, name: str, shape: str) -> None:
    token = TOKENS[name]
    out = redactor.redact(shape.format(v=token))
    assert token not in out
    assert token[-8:] not in out  # the tail after a "." or "~" does not leak either


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('token := "ab12CD34ef56GH78"', "ab12CD34ef56GH78"),
        ("TOKEN ?= ab12CD34ef56GH78", "ab12CD34ef56GH78"),
        ('$token .= "ab12CD34ef56GH78";', "ab12CD34ef56GH78"),
        ("'password' => 'ab12CD34ef56'", "ab12CD34ef56"),
        ("PASSWORD ::= ab12CD34ef56", "ab12CD34ef56"),
        ('var apiToken string = "ab12CD34ef56GH78"', "ab12CD34ef56GH78"),
        ('System.setProperty("api.token", "ab12CD34ef56GH78")', "ab12CD34ef56GH78"),
        ("<apiToken>ab12CD34ef56GH78</apiToken>", "ab12CD34ef56GH78"),
        ('<add key="Password" value="ab12CD34ef56"/>', "ab12CD34ef56"),
        ('<entry key="password">ab12CD34ef56</entry>', "ab12CD34ef56"),
        ('<property name="db.password">ab12CD34ef56</property>', "ab12CD34ef56"),
        ("hf-cli --token ab12CD34ef56GH78 --force", "ab12CD34ef56GH78"),
        ("curl -u deploy:ab12CD34ef56 https://x.example", "ab12CD34ef56"),
        ("api_key=sk_ubb4yN3mzqGR2x8#P7r5&@*xC$utE", "P7r5&@*xC$utE"),
        ("token3=ab12CD34ef56", "ab12CD34ef56"),
        ("MAILCHIMP_KEY=0123456789abcdef0123456789abcdef-us6", "0123456789abcdef"),
        ("secret_value: ab12CD34ef56", "ab12CD34ef56"),
        ("user_auth=ab12CD34ef56", "ab12CD34ef56"),
        ("export API_TOKEN=ab12CD34ef56", "ab12CD34ef56"),
        ("[db]\npassword = ab12CD34ef56\n", "ab12CD34ef56"),
        ('api_token = "ab12CD34ef56"', "ab12CD34ef56"),
        ("X-Api-Key: ab12CD34ef56", "ab12CD34ef56"),
        ("GET /x?access_token=ab12CD34ef56&page=2", "ab12CD34ef56"),
        ("user=bob&password=ab12CD34ef56&remember=1", "ab12CD34ef56"),
        ("Server=db;Password=ab12CD34ef56;Encrypt=True", "ab12CD34ef56"),
        ('{"msg": "{\\"token\\": \\"ab12CD34ef56\\"}"}', "ab12CD34ef56"),
        ("password: my secret phrase", "my secret phrase"),
        ("const apiKey: string = 'ab12CD34ef56GH78';", "ab12CD34ef56GH78"),
    ],
)
def test_every_assignment_syntax_hides_the_whole_value(redactor: Redactor, text: str, secret: str) -> None:
    out = redactor.redact(text)
    assert secret not in out, out
    assert redactor.redact(out) == out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /x?token=abc123&page=2", "GET /x?token=[REDACTED:secret]&page=2"),
        ("Server=db;Password=pw1;Encrypt=True", "Server=db;Password=[REDACTED:secret];Encrypt=True"),
        ("Config{user=bob, token=abc123}", "Config{user=bob, token=[REDACTED:secret]}"),
        ("(password=abc123)", "(password=[REDACTED:secret])"),
        ('token := "Abc123Def456"', 'token := "[REDACTED:secret]"'),
        ("<apiToken>Abc123Def456</apiToken>", "<apiToken>[REDACTED:secret]</apiToken>"),
        (
            '{"credentials": {"user": "a", "password": "b"}}',
            '{"credentials": {"user": "a", "password": "[REDACTED:secret]"}}',
        ),
    ],
)
def test_values_end_where_their_syntax_says(redactor: Redactor, text: str, expected: str) -> None:
    assert redactor.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "GET /static/img/2018-250-xoxo-indieweb-1.jpg 200",
        "password: {{ .Values.Password }}",
        "${SUMO_ACCESS_KEY:=$2}",
        'nonMatchingToken := "not a token"',
        'nonMatchingToken := os.Getenv("TOKEN")',
        "API_KEY=${API_KEY}",
        "password=$(cat /run/secrets/db)",
        '"password": "%(password)s"',
        "token=<your-token-here>",
        'curl -H "Authorization: Bearer $TOKEN" https://x.example',
        "token_type=Bearer expires_in=3600",
        "failed to refresh token: connection refused",
        "sort_key=created_at cache_key=user_42",
        "secretary=Jane passport=pending",
        "token: Optional[str] = None",
        "credentials: [primary, backup]",
    ],
)
def test_templates_references_and_words_are_left_whole(redactor: Redactor, text: str) -> None:
    assert redactor.redact(text) == text


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("token3", "secret"),
        ("secret_value", "secret"),
        ("MAILCHIMP_KEY", "care"),
        ("user_auth", "auth"),
        ("APITOKEN", "secret"),
        ("db_password", "secret"),
        ("passwordHint", None),
        ("token_type", None),
        ("max_tokens", None),
        ("tokenizer", None),
        ("secretary", None),
        ("mytoken", None),
        ("sort_key", "care"),
    ],
)
def test_key_names_are_judged_by_their_word_parts(name: str, kind: str | None) -> None:
    assert key_kind(name) == kind
    assert is_secret_key(name) == (kind in ("secret", "auth"))


def test_a_key_value_only_counts_for_star_key_names_when_it_looks_random(redactor: Redactor) -> None:
    assert redactor.redact("sort_key=created_at") == "sort_key=created_at"
    assert redactor.redact("signing_key=Zx81kPq0Lm2Nv7Rt5Ws3") == "signing_key=[REDACTED:secret]"


def test_checksummed_tokens_are_found_even_glued_to_a_word(redactor: Redactor) -> None:
    body = "AbCdEfGhIjKlMnOpQrStUvWxYz0123"
    good = "ghp_" + body + crc32_base62(body)
    bad = "ghp_" + body + "000000"
    assert redactor.redact(f"x{good}") == "x[REDACTED:github_token]"
    assert redactor.redact(f"x{bad}") == f"x{bad}"
    assert redactor.redact(f"see {bad}") == "see [REDACTED:github_token]"


# -- properties: idempotent, never raising, engines agree, bounded work -------------------------

_FAST = Redactor(engine="re2")
_PURE = Redactor(engine="re")

PIECES = st.lists(
    st.sampled_from(
        [
            "token", "api_key", "PASSWORD", "_KEY", "auth", "=", ":", " := ", " => ", "?=", "--", " ",
            '"', "'", "`", "<", ">", "</", "&", "#", ";", "{{", "}}", "${", "$", "(", ")", "[", "]",
            "ghp_", "glpat-", "xoxb-1-", "sk-", "sk_live_", "hf_", "AKIA", "Q~", ".01.", "eyJ",
            "A1b2C3d4E5f6G7h8", "0123456789abcdef", "x" * 20, "\n", "value", "Bearer ", "[REDACTED:secret]",
        ]
    ),
    max_size=24,
).map("".join)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(text=PIECES)
def test_context_and_provider_rules_stay_idempotent_and_engines_agree(text: str) -> None:
    once = _FAST.redact(text)
    assert isinstance(once, str)
    assert _FAST.redact(once) == once
    assert _PURE.redact(text) == once


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_arbitrary_text_never_raises_and_engines_agree(text: str) -> None:
    assert _FAST.redact(text) == _PURE.redact(text)


HOSTILE = {
    "keys_without_values": "api_key=" * 20_000,
    "care_keys": "a_key=" * 25_000,
    "open_quotes": 'password: "' + "x\\" * 60_000,
    "operators": "token :=" * 20_000,
    "xml": "<token>" * 20_000,
    "flags": "--token " * 20_000,
    "prefixes": "ghp_glpat-xoxb-1-sk-hf_" * 6_000,
    "dotted": "dp.pt." * 25_000,
    "query": "?token=&" * 20_000,
    "templates": "password={{" * 15_000,
}


def _searches(redactor: Redactor, text: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many matches redacting ``text`` looks at (and checks the result is stable)."""
    from hardenkit.logs import engine as engine_module

    engine = redactor._engine
    calls = 0
    searcher = engine._searcher

    def counting(compiled: Any, text_: str, data: Any = None) -> Any:
        search = searcher(compiled, text_, data)

        def wrapped(pos: int) -> Any:
            nonlocal calls
            calls += 1
            return search(pos)

        return wrapped

    class CountingSpans(engine_module._Spans):
        def __init__(self, text_: str, spans: list[tuple[int, int]]) -> None:
            nonlocal calls
            calls += 1
            super().__init__(text_, spans)

    with monkeypatch.context() as patch:
        patch.setattr(engine, "_searcher", counting)
        patch.setattr(engine_module, "_Spans", CountingSpans)
        out = redactor.redact(text)
    assert redactor.redact(out) == out
    return calls


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_costs_work_linear_in_its_size(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Linear time checked as work, not wall time: doubling the input at most doubles the
    # number of searches, and no position is searched from more than a few times.
    text = HOSTILE[name]
    for redactor in (_FAST, _PURE):
        half = _searches(redactor, text[: len(text) // 2], monkeypatch)
        full = _searches(redactor, text, monkeypatch)
        assert _searches(redactor, "token=abc123", monkeypatch) > 0  # the count sees both engines' work
        assert full <= 2 * half + 50, (name, half, full)
        assert full <= 4 * len(text), (name, full)
