"""`examples/data_analysis.py`, unchanged, against the scripted server and the real sandbox: the
pandas/matplotlib code a model would write runs on the "data" image and a PNG chart comes back."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from moot.testing import ScriptedModelServer

pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data_analysis.py"

CHART_CODE = """I'll load the prices with pandas and draw the close above the volume bars.
```python
import pandas as pd
import matplotlib.pyplot as plt

prices = pd.read_csv("prices.csv", parse_dates=["date"])
fig, (price_ax, volume_ax) = plt.subplots(
    2, 1, sharex=True, figsize=(10, 6), gridspec_kw={"height_ratios": [3, 1]}
)
price_ax.plot(prices["date"], prices["close"], color="tab:blue", label="close")
price_ax.set_title("ACME daily close and volume")
price_ax.set_ylabel("price")
price_ax.legend()
volume_ax.bar(prices["date"], prices["volume"], color="tab:gray", width=1.0)
volume_ax.set_ylabel("volume")
fig.tight_layout()
fig.savefig("chart.png", dpi=100)
print("first close", prices["close"].iloc[0], "last close", prices["close"].iloc[-1])
print("rows", len(prices))
```"""
DONE = "The chart is in chart.png: the close on top, daily volume bars below. TERMINATE"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; fails unless `data` starts like a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_data_scientist_makes_a_chart_in_the_sandbox(
    data_image: str, server: ScriptedModelServer, tmp_path: Path
) -> None:
    server.push(CHART_CODE, DONE)
    env = dict(
        os.environ,
        MOOT_BASE_URL=server.base_url,
        OPENAI_API_KEY="scripted-key",
        MOOT_MODEL="gpt-4o",
    )

    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    chart = (tmp_path / "workspace" / "chart.png").read_bytes()
    assert png_size(chart) == (1000, 600)
    assert 20_000 < len(chart) < 500_000
    executor_reply = server.requests[1].last_text
    assert executor_reply.startswith("exitcode: 0 (execute succeeded)")
    assert "first close 97.38 last close 102.62\nrows 252" in executor_reply
    assert f"chart.png, {round(len(chart) / 1024)} KB" in executor_reply  # named, with its size
    assert "prices.csv" not in executor_reply.split("Files written")[1]  # the input is not news
    assert "summary: The chart is in chart.png" in done.stdout
    assert f"chart: workspace/chart.png {len(chart)} bytes" in done.stdout
    server.assert_script_consumed()
