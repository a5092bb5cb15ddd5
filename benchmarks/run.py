"""Run every benchmark (`benchmarks/bench_*.py`) and print one table of their headline figures.

    python benchmarks/run.py [--quick] [--only runtime,executor]

Each benchmark writes `benchmarks/results/<name>.json`; this script runs them one after another
(never in parallel: the machine is small and noisy) and summarises what they wrote.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _issue18 import table as issue18_table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--only", default="", help="comma-separated names, e.g. runtime,executor")
    args = parser.parse_args()
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    scripts = sorted(HERE.glob("bench_*.py"))
    failures = 0
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        command = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        done = subprocess.run(command, check=False, cwd=HERE.parent)
        took = time.perf_counter() - start
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        failures += done.returncode != 0
        print(f"== {name}: {status} in {took:.1f} s\n", flush=True)
    print(issue18_table(), "\n")
    results = sorted((HERE / "results").glob("*.json"))
    print("results:")
    for path in results:
        data = json.loads(path.read_text())
        print(f"  {path.relative_to(HERE.parent)}  ({data.get('when', '?')})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
