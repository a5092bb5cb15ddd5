"""W1, W2 and W3 (C = 1,000) of an older commit against this tree, interleaved in one run.

    git worktree add /tmp/moot-old <commit> && make -C /tmp/moot-old install
    python benchmarks/compare_commits.py --old /tmp/moot-old --reps 3

Each tree runs its own benchmarks with its own venv; the order alternates every repetition, and
the medians go to `benchmarks/results/compare_commits.json` (new/old ratios: < 1 is faster for
times, > 1 is better for deliveries per second).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

NEW = Path(__file__).resolve().parent.parent

ROWS = (
    "W1 external us",
    "W1 agent us",
    "W2 deliveries/s",
    "W3 C=1000 wall s",
    "W3 C=1000 cpu ms/turn",
)


def _run(tree: Path, args: list[str], result: str) -> Any:
    subprocess.run(
        [str(tree / ".venv/bin/python"), *args], cwd=tree, check=True, capture_output=True
    )
    return json.loads((tree / "benchmarks/results" / f"{result}.json").read_text())


def _measure(tree: Path) -> dict[str, float]:
    runtime = _run(tree, ["benchmarks/bench_runtime.py", "--repeat", "3"], "runtime")["figures"]
    chats = _run(tree, ["benchmarks/bench_groupchat.py", "--chats", "1000"], "groupchat")
    w3 = next(row for row in chats["results"] if row["chats"] == 1000)
    return {
        "W1 external us": runtime["W1"]["moot_external_us"],
        "W1 agent us": runtime["W1"]["moot_agent_to_agent_us"],
        "W2 deliveries/s": runtime["W2"]["moot_deliveries_per_s"],
        "W3 C=1000 wall s": w3["wall_s"],
        "W3 C=1000 cpu ms/turn": w3["cpu_ms_per_turn"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="a worktree of the older commit")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    seen: dict[str, dict[str, list[float]]] = {row: {"old": [], "new": []} for row in ROWS}
    for rep in range(args.reps):
        order = (
            (("old", args.old), ("new", NEW)) if rep % 2 == 0 else (("new", NEW), ("old", args.old))
        )
        for side, tree in order:
            for row, value in _measure(tree).items():
                seen[row][side].append(value)
    out: dict[str, Any] = {}
    for row, sides in seen.items():
        old, new = statistics.median(sides["old"]), statistics.median(sides["new"])
        out[row] = {"old": old, "new": new, "new/old": new / old}
    out["reps"] = args.reps
    out["loadavg_at_end"] = os.getloadavg()
    (NEW / "benchmarks/results/compare_commits.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
