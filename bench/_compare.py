"""The optional comparison: the same W3 chats on autogen-agentchat, in the same run.

It needs the peer-bench environment of the moot repo's `shared/peer-bench` (its `setup.sh` makes
a virtual environment with autogen-agentchat): the script runs there as a subprocess, so moot
never imports AutoGen. When either is missing the comparison is skipped with a note.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from ._config import BenchConfig, LatencyDistribution

PEER_SCRIPT = "w3_agentchat_groupchat.py"


def peer_python() -> Path | None:
    """`$MOOT_PEER_PYTHON`, else the autogen venv of `$PEER_VENVS` (~/.cache/moot-peer-bench)."""
    explicit = os.environ.get("MOOT_PEER_PYTHON")
    if explicit:
        return Path(explicit) if Path(explicit).exists() else None
    venvs = Path(os.environ.get("PEER_VENVS", Path.home() / ".cache" / "moot-peer-bench"))
    python = venvs / "autogen" / "bin" / "python"
    return python if python.exists() else None


def peer_script() -> Path | None:
    """`$MOOT_PEER_BENCH/<script>`, else `shared/peer-bench` beside (or above) this directory."""
    roots = [os.environ.get("MOOT_PEER_BENCH")]
    cwd = Path.cwd()
    roots += [str(base / "shared" / "peer-bench") for base in (cwd, *cwd.parents)]
    for root in roots:
        if root and (Path(root) / PEER_SCRIPT).is_file():
            return Path(root) / PEER_SCRIPT
    return None


def median_latency(distribution: LatencyDistribution) -> float:
    """The median of the stub latency: the peer's stub sleeps a constant."""
    kind, p = distribution.kind, distribution.params
    if kind == "const":
        return p[0]
    if kind == "uniform":
        return (p[0] + p[1]) / 2
    if kind == "exp":
        return p[0] * 0.6931471805599453
    return p[0]


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


async def compare_chats(
    config: BenchConfig, latency: LatencyDistribution
) -> tuple[list[dict[str, Any]], str]:
    """One peer run per concurrency level; the figures and a note saying what ran."""
    python, script = peer_python(), peer_script()
    if python is None or script is None:
        return [], (
            "autogen-agentchat comparison skipped: no peer-bench environment"
            " (run shared/peer-bench/setup.sh, or set MOOT_PEER_PYTHON and MOOT_PEER_BENCH)"
        )
    latency_ms = median_latency(latency) * 1000
    rows: list[dict[str, Any]] = []
    for chats in config.concurrency:
        command = [
            str(python),
            str(script),
            "--chats",
            str(chats),
            "--latency-ms",
            f"{latency_ms:g}",
            "--turns",
            str(config.turns),
            "--agents",
            str(config.agents),
            "--runtime",
            "shared",
        ]
        done = await anyio.to_thread.run_sync(_run, command, config.timeout)
        parsed = next(
            (
                json.loads(line)
                for line in reversed(done.stdout.splitlines())
                if line.startswith("{")
            ),
            None,
        )
        if parsed is None:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            rows.append({"concurrency": chats, "error": tail[0]})
            continue
        rows.append({"concurrency": chats, **parsed})
    version = next(
        (r.get("versions", {}).get("autogen-agentchat") for r in rows if "versions" in r), None
    )
    return rows, (
        f"autogen-agentchat {version or '?'} RoundRobinGroupChat, shared runtime, stub sleeping"
        f" {latency_ms:g} ms (the median of {latency}), same turns and agents, same machine"
    )
