"""A real Postgres server for the journal's tests: Debian's initdb + pg_ctl, as an unprivileged
user, on 127.0.0.1 and a free port, fsync off, its data in a temporary folder."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from nats_helpers import free_port

PG_USER = "moot-pg"  # the system user the server runs as when the tests run as root


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl, if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(found[-1]).parent if found else None


def require_postgres() -> Path:
    """Skip without the binaries on a workstation; under CI=true a missing service is a failure."""
    found = postgres_bin()
    if found is not None:
        return found
    message = "initdb/pg_ctl not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class PostgresServer:
    """One postgres cluster in a temporary folder; stop and start it again on the same port."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="moot-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            known = subprocess.run(["id", PG_USER], capture_output=True, check=False)
            if known.returncode != 0:
                useradd = [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                ]
                subprocess.run([*useradd, PG_USER], check=True)
            shutil.chown(self.root, user=PG_USER, group=None)
            self._as_user = ["runuser", "-u", PG_USER, "--"]

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self._as_user, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}\n{log}")

    def init(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        """Start and wait until it accepts connections (pg_ctl -w waits on the server itself)."""
        options = (
            f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-w", "-t", "60", "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
