"""Run the load profiles and chaos scenarios against a hardened service; write the report.

    .venv/bin/python benchmarks/load/run.py --smoke --all          # CI: every one, a few minutes
    .venv/bin/python benchmarks/load/run.py sustained spike        # long forms of two profiles
    .venv/bin/python benchmarks/load/run.py --all --out benchmarks/results/<date>
    .venv/bin/python benchmarks/load/run.py --app mypkg.main:app --smoke sustained

Exit status 1 when any expectation failed (a skipped scenario says why and does
not fail). See docs/operations/load.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make `benchmarks.load` importable from the checkout.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.load import chaos, profiles
from benchmarks.load.harness import Outcome, Settings, load_note
from benchmarks.load.procs import REGISTRY
from benchmarks.load.report import machine, write
from benchmarks.load.stats import Slo, Verdict

SCENARIOS: dict[str, Callable[[Settings, Path], Outcome]] = {
    "sustained": profiles.sustained,
    "spike": profiles.spike,
    "soak": profiles.soak,
    "stress": profiles.stress,
    "redis-kill": chaos.redis_kill,
    "redis-freeze": chaos.redis_freeze,
    "network-fault": chaos.network_fault,
    "rolling-restart": chaos.rolling_restart,
    "log-disk-full": chaos.log_disk_full,
    "hanging-check": chaos.hanging_check,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/load/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], metavar="SCENARIO",
                        help=f"any of: {', '.join(SCENARIOS)}")  # fmt: skip
    parser.add_argument("--all", action="store_true", help="every profile and chaos scenario")
    parser.add_argument("--smoke", action="store_true", help="the short forms (seconds each), for CI")
    parser.add_argument(
        "--app", default="benchmarks.load.app:app", help="module:app to serve (default: the demo)"
    )
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers (default 2)")
    parser.add_argument("--rate", type=float, default=100.0, help="sustained req/s (default 100)")
    parser.add_argument(
        "--soak-seconds", type=float, default=0.0, help="soak length (default 20 smoke, 1800)"
    )
    parser.add_argument("--leak-kib-per-min", type=float, default=1024.0, help="RSS slope flagged as a leak")
    parser.add_argument("--p95-ms", type=float, default=100.0)
    parser.add_argument("--p99-ms", type=float, default=250.0)
    parser.add_argument("--out", type=Path, help="report folder (default: a temporary one for --smoke)")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    if args.all:
        args.scenarios = list(SCENARIOS)
    if not args.scenarios:
        parser.error("name scenarios or give --all")
    if args.workers < 1 or args.rate <= 0:
        parser.error("--workers must be >= 1 and --rate > 0")
    return args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds through the finally blocks, which stop every process by pid.
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="hk-load-"))
    out = args.out or (
        workdir / "report" if args.smoke else Path("benchmarks/results") / datetime.date.today().isoformat()
    )
    settings = Settings(
        app=args.app, workers=args.workers, smoke=args.smoke, rate=args.rate, out=out,
        slo=Slo(p95_ms=args.p95_ms, p99_ms=args.p99_ms), leak_threshold_kib_per_min=args.leak_kib_per_min,
        soak_seconds=args.soak_seconds,
    )  # fmt: skip
    meta = {
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "load_before": load_note(),
        "command": "python benchmarks/load/run.py " + shlex.join(argv),
    }  # fmt: skip
    outcomes: list[Outcome] = []
    try:
        for name in args.scenarios:
            began = time.monotonic()
            print(f"-- {name} ...", flush=True)
            scratch = workdir / name
            scratch.mkdir()
            try:
                outcome = SCENARIOS[name](settings, scratch)
            except Exception as exc:  # a harness or service failure is a failed scenario, reported
                verdict = Verdict()
                verdict.expect("scenario ran", "no exception", f"{type(exc).__name__}: {exc}", False)
                verdict.notes.append(traceback.format_exc())
                outcome = Outcome(name, "error", "the scenario ran to its end", verdict)
                REGISTRY.stop_all()
            outcomes.append(outcome)
            print(f"   {outcome.verdict.status} in {time.monotonic() - began:.1f} s", flush=True)
            for check in outcome.verdict.checks:
                mark = "ok  " if check.passed else "FAIL"
                print(f"   {mark} {check.name}: expected {check.expected}, observed {check.observed}")
            for note in [outcome.verdict.skipped, *outcome.verdict.notes[:3]]:
                if note:
                    print(f"   note: {note.splitlines()[-1] if 'Traceback' in note else note}")
    finally:
        REGISTRY.stop_all()
        if outcomes:
            path = write(outcomes, settings, meta, plots=not args.no_plots)
            print(f"report: {path}")
    failed = [o.name for o in outcomes if o.verdict.status == "fail"]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(sys.argv[1:]))
