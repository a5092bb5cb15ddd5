"""`moot worker` hands its options to the NATS worker entry point."""

from __future__ import annotations

import subprocess
import sys


def test_moot_worker_help_lists_the_worker_options() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from moot.cli import main; sys.exit(main())",
            "worker",
            "--help",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--nats" in done.stdout
    assert "--agents" in done.stdout


def test_moot_worker_without_a_server_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from moot.cli import main; sys.exit(main())", "worker"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--nats" in done.stderr
