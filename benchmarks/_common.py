"""Shared plumbing for moot's benchmarks: machine facts, versions, JSON results, peers."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moot.bench import machine, versions

__all__ = ["machine", "median", "percentile", "rss_bytes", "run_peer", "versions", "write"]

if TYPE_CHECKING:
    from collections.abc import Sequence

RESULTS = Path(__file__).resolve().parent / "results"
PEER_VENVS = Path(os.environ.get("PEER_VENVS", Path.home() / ".cache" / "moot-peer-bench"))


def _peer_scripts() -> Path:
    """`$MOOT_PEER_BENCH`, else the nearest `shared/peer-bench` above this file (a git worktree
    sits deeper than the main checkout)."""
    if os.environ.get("MOOT_PEER_BENCH"):
        return Path(os.environ["MOOT_PEER_BENCH"])
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "shared" / "peer-bench").is_dir():
            return parent / "shared" / "peer-bench"
    return here.parents[2] / "shared" / "peer-bench"


PEER_SCRIPTS = _peer_scripts()


def rss_bytes() -> int:
    """Resident set size of this process now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def write(name: str, payload: dict[str, Any]) -> Path:
    """Write `benchmarks/results/<name>.json` and return its path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def peer_python(venv: str) -> Path | None:
    """The python of a peer-bench venv (see shared/peer-bench/setup.sh), if it exists."""
    python = PEER_VENVS / venv / "bin" / "python"
    return python if python.exists() else None


def run_peer(
    venv: str, script: str, args: Sequence[str], timeout: float = 300
) -> dict[str, Any] | None:
    """Run a peer-bench script and parse its JSON line; None when the peer is not installed."""
    python = peer_python(venv)
    path = PEER_SCRIPTS / script
    if python is None or not path.exists():
        return None
    done = subprocess.run(
        [str(python), str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    return {"error": done.stderr[-500:]}
