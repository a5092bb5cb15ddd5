"""W3 at C = 1,000 on moot, AG2 classic and AutoGen agentchat, interleaved in one run.

    python benchmarks/bench_peers.py [--quick] [--chats 1000]

moot runs `bench_groupchat.py`'s W3 (3 agents x 10 turns, model stub of L = 50 ms) in a fresh
process, as a user gets it (`Runtime()`); the peers run the same workload from
`../shared/peer-bench` (`w4_ag2classic_groupchat.py`, `w3_agentchat_groupchat.py`) in their own
virtual environments. Order: moot, AG2, moot, agentchat, moot; moot's figure is its median run,
so a noisy neighbour weighs on every side alike. Reported per system: run wall time, CPU ms per
turn and peak RSS, and each peer's ratio to moot. A peer whose venv is missing is skipped with
a line saying so (run `shared/peer-bench/setup.sh` once). Writes benchmarks/results/peers.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PEER_SCRIPTS, PEER_VENVS, peer_python, run_peer, versions, write
from bench_groupchat import run_child

PEERS = (
    ("ag2classic", "w4_ag2classic_groupchat.py", "ag2_classic"),
    ("autogen", "w3_agentchat_groupchat.py", "autogen_agentchat"),
)
KEYS = ("wall_s", "cpu_ms_per_turn", "peak_rss_mb")


def moot_run(chats: int, latency_ms: float) -> dict[str, Any]:
    args = argparse.Namespace(latency_ms=latency_ms, turns=10)
    row = run_child(chats, args)
    return {k: row.get(k) for k in (*KEYS, "ok", "gc")} | {"error": row.get("error")}


def peer_run(venv: str, script: str, chats: int, latency_ms: float) -> dict[str, Any] | None:
    if peer_python(venv) is None or not (PEER_SCRIPTS / script).exists():
        return None
    row = run_peer(
        venv, script, ["--chats", str(chats), "--latency-ms", str(latency_ms)], timeout=900
    )
    if row is None or "run_wall_s" not in row:
        return {"error": (row or {}).get("error", "no output")}
    return {
        "wall_s": row["run_wall_s"],
        "cpu_ms_per_turn": row["cpu_ms_per_turn"],
        "peak_rss_mb": row["peak_rss_mb"],
        "ok": bool(row.get("ok")),
        "version": row.get("versions"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="C = 100")
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    chats = 100 if args.quick else args.chats
    moot_runs = [moot_run(chats, args.latency_ms)]
    peers: dict[str, Any] = {}
    for venv, script, label in PEERS:
        found = peer_run(venv, script, chats, args.latency_ms)
        if found is None:
            why = f"no venv at {PEER_VENVS / venv} or no {PEER_SCRIPTS / script}"
            peers[label] = f"skipped: {why} (run shared/peer-bench/setup.sh)"
            print(f"{label}: skipped, {why}", flush=True)
        else:
            peers[label] = found
            print(f"{label}: {json.dumps(found)}", flush=True)
        moot_runs.append(moot_run(chats, args.latency_ms))
    walls = [r["wall_s"] for r in moot_runs if r.get("wall_s") is not None]
    if not walls:
        print(f"moot failed: {moot_runs[0].get('error')}", file=sys.stderr)
        return 1
    moot = next(r for r in moot_runs if r.get("wall_s") == statistics.median_low(walls))
    print(f"moot (median of {len(walls)}): {json.dumps(moot)}", flush=True)
    for found in peers.values():
        if isinstance(found, dict) and "wall_s" in found:
            for key in KEYS:
                found[f"{key}_ratio_to_moot"] = round(found[key] / moot[key], 2)
    path = write(
        "peers",
        {
            "workload": f"W3: C={chats} round-robin group chats, 3 agents x 10 turns,"
            f" L={args.latency_ms:g} ms stub",
            "chats": chats,
            "versions": versions(),
            "moot": moot,
            "moot_runs": moot_runs,
            "peers": peers,
        },
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
