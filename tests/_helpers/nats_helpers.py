"""Shared by the NATS tests and their conftest: a real nats-server process and fast transports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

from moot.runtime import Runtime
from moot.runtime.nats import NatsTransport

if TYPE_CHECKING:
    from pathlib import Path

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
READY_LINE = b"Server is ready"
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NatsServer:
    """One nats-server process with JetStream; stop and start it again on the same port/store."""

    def __init__(self, store: Path, port: int | None = None) -> None:
        self.store = store
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._drainer: threading.Thread | None = None

    def start(self) -> None:
        """Start the server; return once it logs that it is ready (an event, not a sleep).

        Raises:
            RuntimeError: it exited or did not get ready within START_TIMEOUT seconds.
        """
        command = [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port)]
        command += ["-sd", str(self.store)]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.process = process
        ready = threading.Event()
        lines: list[bytes] = []

        def drain() -> None:  # reads the log to the end, so the server never blocks on it
            assert process.stderr is not None
            for line in process.stderr:
                if len(lines) < 200:
                    lines.append(line)
                if READY_LINE in line:
                    ready.set()
            process.stderr.close()
            ready.set()  # exited

        self._drainer = threading.Thread(target=drain, daemon=True)
        self._drainer.start()
        if not ready.wait(START_TIMEOUT) or process.poll() is not None:
            self.stop()
            raise RuntimeError(f"nats-server did not start: {b''.join(lines).decode()}")

    def stop(self) -> None:
        """Terminate the server and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self._drainer is not None:
            self._drainer.join(timeout=10)
        self.process = None
        self._drainer = None

    def restart(self) -> None:
        self.stop()
        self.start()


def fast_transport(url: str, **overrides: Any) -> NatsTransport:
    """A transport with timings short enough for tests (failure detection within ~1 s)."""
    options: dict[str, Any] = {
        "heartbeat": 0.2,
        "member_ttl": 1.0,
        "ack_wait": 2.0,
        "reconnect_wait": 0.1,
        "request_timeout": 10.0,
        "publish_timeout": 2.0,
    }
    options.update(overrides)
    return NatsTransport(url, **options)


RuntimeMaker = Callable[..., Awaitable[Runtime]]


def require_nats_server() -> None:
    """Skip without the binary on a workstation; under CI=true a missing service is a failure."""
    if os.path.exists(NATS_SERVER):
        return
    message = f"nats-server not found at {NATS_SERVER} (install Debian's nats-server package)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
