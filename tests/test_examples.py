"""The examples that `make demo` and the README point at run as they are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_runtime_tour_runs_and_reports_its_statistics() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "runtime_hello.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "42 is the answer" in done.stdout
    assert "HandlerError caused by ValueError" in done.stdout
    assert "DeadlineExceededError" in done.stdout
    assert "accepted=8 handled=6 errored=2 dead_lettered=0" in done.stdout
