"""The table of issue 18: each row's figure next to its baseline from the same run, read from
the JSON the benchmarks wrote (`benchmarks/results/`). `run.py` prints it after the runs.

A row whose benchmark has not written its file (or not that size) says so instead of a figure;
a peer whose venv is missing says "skipped".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _w3(chats: int, which: str = "results") -> dict[str, Any] | None:
    data = _load("groupchat") or {}
    return next((r for r in data.get(which, []) if r.get("chats") == chats and "wall_s" in r), None)


def _w3_text(row: dict[str, Any] | None) -> str:
    if row is None:
        return "not measured (bench_groupchat.py --chats ...)"
    return f"{row['wall_s']} s wall, {row['cpu_ms_per_turn']} ms CPU/turn, {row['peak_rss_mb']} MB"


def row_w3_1k() -> tuple[str, str, str, str]:
    peers = _load("peers")
    figure = _w3_text(_w3(1000))
    if peers is None:
        baseline = "peers not run (bench_peers.py)"
    else:
        figure = _w3_text(peers["moot"]) + " (median moot run of bench_peers.py)"
        if peers.get("chats") != 1000:
            figure += f" at C={peers.get('chats')}, not 1,000 (a --quick run)"
        parts = []
        for label, found in peers["peers"].items():
            if isinstance(found, dict) and "wall_s" in found:
                parts.append(
                    f"{label}: {found['wall_s']} s, {found['cpu_ms_per_turn']} ms/turn,"
                    f" {found['peak_rss_mb']} MB"
                )
            else:
                parts.append(f"{label}: {found}")
        baseline = "; ".join(parts)
    return ("W3 C=1,000", figure, baseline, "<= 0.6 s, <= 0.035 ms/turn")


def row_w3_10k() -> tuple[str, str, str, str]:
    python_gc = _w3(10000, "results_python_gc")
    baseline = "Python's GC: " + _w3_text(python_gc) if python_gc else "Python's GC: not measured"
    return ("W3 C=10,000", _w3_text(_w3(10000)), baseline, "<= 4 s, <= 0.035 ms/turn, <= 200 MB")


def row_w3_100k() -> tuple[str, str, str, str]:
    row = _w3(100000)
    return ("W3 C=100,000", _w3_text(row), "ideal wall 0.5 s", "completes, <= 2 GB")


def row_w2() -> tuple[str, str, str, str]:
    w2 = ((_load("runtime") or {}).get("figures") or {}).get("W2")
    if not w2:
        return ("W2 fan-out 20k x 10", "not measured (bench_runtime.py)", "", ">= 0.6x raw")
    return (
        "W2 fan-out 20k x 10",
        f"{w2['moot_deliveries_per_s'] / 1e6:.2f} M/s ({w2['ratio']:.2f}x raw)",
        f"raw queues {w2['raw_queue_deliveries_per_s'] / 1e6:.2f} M/s",
        ">= 0.6x raw queues",
    )


def row_nats_w1() -> tuple[str, str, str, str]:
    w1 = (_load("nats") or {}).get("W1_request_reply")
    if not w1:
        return ("NATS W1, 100 in flight", "not measured (bench_nats.py)", "", "<= 1.3x raw")
    flight = w1["in_flight_100"]
    return (
        "NATS W1, 100 in flight",
        f"{flight['moot_req_per_s']}/s: {w1['ratio_throughput']}x raw"
        f" (CPU/request {w1.get('ratio_cpu_per_request', '?')}x)",
        f"raw nats-py request {flight['raw_req_per_s']}/s",
        "<= 1.3x raw nats-py",
    )


def row_nats_durable() -> tuple[str, str, str, str]:
    w2 = (_load("nats") or {}).get("W2_fan_out")
    if not w2:
        return ("NATS durable fan-out", "not measured (bench_nats.py)", "", "<= 1.5x raw")
    moot = w2.get("moot_confirmed_deliveries_per_s", w2["moot_accepted_deliveries_per_s"])
    with_id = w2.get("raw_js_publish_async_msg_id_per_s")
    return (
        "NATS durable fan-out",
        f"{moot}/s confirmed: {w2['ratio_vs_raw_js_async']}x raw",
        f"raw js.publish_async {w2['raw_js_publish_async_per_s']}/s"
        + (f" ({with_id}/s with Nats-Msg-Id)" if with_id else ""),
        "<= 1.5x raw publish_async",
    )


ROWS = (row_w3_1k, row_w3_10k, row_w3_100k, row_w2, row_nats_w1, row_nats_durable)


def table() -> str:
    """The issue's rows as text: workload | moot | same-run baseline | target."""
    lines = ["issue 18 (each figure with its baseline from the same run):"]
    for row in ROWS:
        name, figure, baseline, target = row()
        lines.append(f"  {name:<24} {figure}")
        if baseline:
            lines.append(f"  {'':<24}   baseline: {baseline}")
        lines.append(f"  {'':<24}   target: {target}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
