"""Redaction throughput: hardenkit vs scrubadub, detect-secrets and logredactor, clean, secret-dense and hostile input.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/bench_redact.py

Contenders (one process, rounds interleaved, medians printed):

* ``hardenkit[re2]``: ``Redactor().redact`` with google-re2 installed (RE2::Set prefilter);
* ``hardenkit[re]``: the pure-Python path (``engine="re"``);
* ``logredactor``: its ``RedactingFilter.redact`` given hardenkit's own rule patterns
  (same regexes, applied with ``re.sub`` one after the other, no checksums);
* ``scrubadub``: ``Scrubber().clean`` with its default detectors;
* ``scrubadub+patterns``: a Scrubber whose detectors are hardenkit's patterns;
* ``detect-secrets``: ``scan_line`` with its default plugins (it finds secrets and does
  not rewrite the line, so it does less work than a redactor).

Inputs: mostly clean log lines (1 line in 50 carries a secret), secret-dense lines
(every line carries a provider token or a secret key=value, in the formats of the
recall corpus) and adversarial
strings (runs of digits and spaces, repeated ``@`` and dots, long local parts,
long base64 runs, unterminated key blocks, endless key names). scrubadub gets a
smaller slice of each input (it is ~100x slower); MB/s normalises the sizes.
"""

from __future__ import annotations

import random
import re
import statistics
import sys
import time
from collections.abc import Callable

import logredactor
import scrubadub
import scrubadub.detectors
import scrubadub.filth
from detect_secrets.core.scan import scan_line
from detect_secrets.settings import default_settings

from hardenkit.logs import Redactor
from hardenkit.logs.engine import RULES

ROUNDS = 5


def clean_lines(count: int) -> list[str]:
    rng = random.Random(7)
    lines = []
    for i in range(count):
        line = (
            f"2026-05-01T12:{i % 60:02d}:{i % 59:02d}.{i % 1000:03d}Z INFO app.views "
            f"request_id=3f2a9c1d-{i % 10000:04d}-4e5f-9a8b-7c6d5e4f3a2b method=GET path=/api/items/{i} "
            f'status=200 duration_ms={rng.random() * 300:.2f} bytes={rng.randint(0, 10**6)} ua="Mozilla/5.0 (X11)"'
        )
        if i % 50 == 0:
            line += rng.choice([" user=bob@example.com", " password=hunter2", " card=4111 1111 1111 1111"])
        lines.append(line)
    return lines


def dense_lines(count: int) -> list[str]:
    """Every line holds a secret: a provider token bare or in a JSON field, or a secret key=value."""
    rng = random.Random(11)
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

    def pick(n: int) -> str:
        return "".join(rng.choice(alnum) for _ in range(n))

    makers = [
        lambda: "ghp_" + pick(36),
        lambda: "glpat-" + pick(20),
        lambda: (
            "xoxb-"
            + str(rng.randint(10**11, 10**12))
            + "-"
            + str(rng.randint(10**12, 10**13))
            + "-"
            + pick(24)
        ),
        lambda: "sk_live_" + pick(24),
        lambda: "AKIA" + pick(16).upper(),
        lambda: "hf_" + pick(34),
        lambda: "npm_" + pick(36),
        lambda: "dop_v1_" + "".join(rng.choice("0123456789abcdef") for _ in range(64)),
        lambda: "SG." + pick(22) + "." + pick(43),
        lambda: "sk-proj-" + pick(60),
    ]
    lines = []
    for i in range(count):
        token = rng.choice(makers)()
        shape = i % 4
        if shape == 0:
            tail = f"upstream rejected {token} after 3 attempts"
        elif shape == 1:
            tail = f'payload={{"value": "{token}", "attempt": {i % 7}}}'
        elif shape == 2:
            tail = f"config loaded api_key={pick(rng.randint(12, 32))} region=eu-west-1"
        else:
            tail = f"GET /v1/export?ref={token}&page={i % 9} 200"
        lines.append(
            f"2026-05-01T12:{i % 60:02d}:{i % 59:02d}.{i % 1000:03d}Z WARN app.client "
            f"request_id=3f2a9c1d-{i % 10000:04d}-4e5f-9a8b-7c6d5e4f3a2b {tail}"
        )
    return lines


def detect_secrets_scan(text: str) -> object:
    return list(scan_line(text))


ADVERSARIAL = {
    "digits+spaces": "1 2 3 4 5 6 7 8 9 0 " * 10_000,
    "@ and dots": "@." * 100_000,
    "long local parts": ("a" * 70 + "@") * 2_800,
    "base64 run": "QUJDRA+/" * 25_000,
    "unterminated keys": "-----BEGIN PRIVATE KEY-----" * 7_400,
    "key names": "password=" * 22_000,
}


def hardenkit_patterns() -> list[str]:
    pem = r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----[\s\S]{0,4096}?-----END [A-Z ]{0,40}PRIVATE KEY-----"
    return [pem, *(rule.pattern for rule in RULES if "ip" not in rule.categories)]


def make_scrubadub_with_patterns() -> scrubadub.Scrubber:
    detectors = []
    for index, pattern in enumerate(hardenkit_patterns()):
        detector_class = type(
            f"HardenkitRule{index}",
            (scrubadub.detectors.RegexDetector,),
            {"name": f"hk{index}", "filth_cls": scrubadub.filth.Filth, "regex": re.compile(pattern)},
        )
        detectors.append(detector_class())
    return scrubadub.Scrubber(detector_list=detectors)


def main() -> int:
    with default_settings():  # detect-secrets reads its plugins from the active settings
        return run()


def run() -> int:
    fast = Redactor()
    pure = Redactor(engine="re")
    assert fast.engine == "re2", "install the re2 extra: pip install 'hardenkit[re2]'"
    lr = logredactor.RedactingFilter(hardenkit_patterns(), default_mask="[REDACTED]")
    scrub = scrubadub.Scrubber()
    scrub_patterns = make_scrubadub_with_patterns()

    lines = clean_lines(12_000)
    small = lines[:300]
    contenders: dict[str, tuple[Callable[[str], object], bool]] = {
        # name -> (function on one string, gets the small input?)
        "hardenkit[re2]": (fast.redact, False),
        "hardenkit[re]": (pure.redact, False),
        "logredactor": (lr.redact, False),
        "scrubadub": (scrub.clean, True),
        "scrubadub+patterns": (scrub_patterns.clean, True),
        "detect-secrets": (detect_secrets_scan, True),
    }
    dense = dense_lines(12_000)
    dense_small = dense[:300]

    results: dict[str, dict[str, list[float]]] = {}

    def measure(case: str, big: list[str], little: list[str]) -> None:
        for name, (function, gets_small) in contenders.items():
            data = little if gets_small else big
            size = sum(len(text.encode()) for text in data)
            started = time.perf_counter()
            for text in data:
                function(text)
            elapsed = time.perf_counter() - started
            results.setdefault(case, {}).setdefault(name, []).append(size / elapsed / 1e6)

    for function, _ in contenders.values():  # warm caches (RE2's DFA) before measuring
        for text in small[:50] + dense_small[:50]:
            function(text)
    for _ in range(ROUNDS):
        measure("mostly clean lines", lines, small)
        measure("secret-dense lines", dense, dense_small)
        for case, text in ADVERSARIAL.items():
            measure(case, [text], [text[:20_000]])

    print(f"python {sys.version.split()[0]}, {ROUNDS} interleaved rounds, median MB/s (higher is better)")
    header = f"{'input':<20}" + "".join(f"{name:>20}" for name in contenders)
    print(header)
    for case, by_name in results.items():
        row = f"{case:<20}" + "".join(f"{statistics.median(by_name[name]):20.2f}" for name in contenders)
        print(row)
    base = {case: statistics.median(by_name["hardenkit[re2]"]) for case, by_name in results.items()}
    for case in ("mostly clean lines", "secret-dense lines"):
        print(f"\nratio hardenkit[re2] / contender on {case}:")
        for name in contenders:
            value = statistics.median(results[case][name])
            print(f"  {name:<20} {base[case] / value:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
