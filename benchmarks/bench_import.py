"""Cold-import cost of ``import hardenkit`` against ``python -c pass``.

    python benchmarks/bench_import.py

Each command runs in a fresh interpreter, alternately, many times; the medians
are compared. Target: at most 1.5x. Also checks which heavy modules the import
loads (none of limits, redis, uvicorn).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

RUNS = 40


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    timed("import hardenkit")  # warm the disk cache and bytecode
    bare: list[float] = []
    ours: list[float] = []
    for _ in range(RUNS):
        bare.append(timed("pass"))
        ours.append(timed("import hardenkit"))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"python -c pass            median {b * 1000:7.1f} ms")
    print(f"python -c 'import hardenkit' median {o * 1000:7.1f} ms")
    print(f"ratio {o / b:.2f}x (target <= 1.5x)")
    probe = "import hardenkit, sys, json; print(json.dumps(sorted(sys.modules)))"
    modules = json.loads(
        subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True).stdout
    )
    heavy = [m for m in ("limits", "redis", "uvicorn", "starlette", "anyio") if m in modules]
    print(f"heavy modules loaded by import hardenkit: {heavy or 'none'}")


if __name__ == "__main__":
    main()
