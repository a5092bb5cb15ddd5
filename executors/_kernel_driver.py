"""The kernel driver: one per kernel-mode sandbox, run by the runner as the job uid.

It starts one IPython kernel on ipc sockets (files under `KERNEL_DIR`, so no TCP port exists even
inside the container), runs the cells the runner sends as JSON lines on fd 3, and answers with
JSON lines on stdout. Only this module speaks ZMQ; the runner stays stdlib-only. It runs in the
image's Python (with ipykernel and jupyter_client), never on the host.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

KERNEL_DIR = "/run/moot/kernel"
WORK_DIR = "/work"
START_TIMEOUT_S = 60.0
INTERRUPT_GRACE_S = 1.0  # after the timeout's SIGINT, how long the kernel gets to go idle
POLL_S = 0.2
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
IMAGES = {"image/png": ".png", "image/jpeg": ".jpg", "image/svg+xml": ".svg"}
PRIVATE_ENV = {  # the kernel's own state lives in KERNEL_DIR, never in /work or /tmp
    "IPYTHONDIR": KERNEL_DIR + "/ipython",
    "JUPYTER_CONFIG_DIR": KERNEL_DIR + "/jupyter",
    "JUPYTER_DATA_DIR": KERNEL_DIR + "/jupyter",
    "JUPYTER_RUNTIME_DIR": KERNEL_DIR + "/jupyter",
    "XDG_CACHE_HOME": KERNEL_DIR + "/cache",
    "XDG_CONFIG_HOME": KERNEL_DIR + "/config",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures come back as displays
    "MPLCONFIGDIR": KERNEL_DIR + "/matplotlib",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}
KERNEL_ARGS = ("--HistoryManager.enabled=False", "--InteractiveShell.colors=NoColor")


def emit(event: dict[str, Any]) -> None:
    """One JSON line to the runner."""
    view = memoryview(json.dumps(event, separators=(",", ":")).encode() + b"\n")
    while view:
        view = view[os.write(1, view) :]


def exit_code_of(content: dict[str, Any]) -> int:
    """A shell-style exit code for a cell's error: `sys.exit(n)` keeps n, anything else is 1."""
    if content.get("ename") == "SystemExit":
        value = str(content.get("evalue", "")).strip()
        if value in ("", "None"):
            return 0
        return int(value) & 0xFF if value.lstrip("-").isdigit() else 1
    return 1


def save_display(data: dict[str, Any]) -> str | None:
    """Write a display's image to the first free `display-N` name in /work; the name, or None."""
    for mime, suffix in IMAGES.items():
        raw = data.get(mime)
        if not isinstance(raw, str):
            continue
        blob = raw.encode() if mime == "image/svg+xml" else base64.b64decode(raw)
        for number in range(1, 100_000):
            name = f"display-{number}{suffix}"
            try:
                fd = os.open(
                    os.path.join(WORK_DIR, name),
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                    0o644,
                )
            except FileExistsError:
                continue
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
            return name
    return None


class Kernel:
    """An ipykernel child process and a blocking client on its ipc sockets."""

    def __init__(self) -> None:
        from jupyter_client.blocking import BlockingKernelClient  # type: ignore[import-not-found,unused-ignore]
        from jupyter_client.connect import write_connection_file  # type: ignore[import-not-found,unused-ignore]

        shutil.rmtree(KERNEL_DIR + "/sock", ignore_errors=True)
        os.makedirs(KERNEL_DIR + "/sock", mode=0o700, exist_ok=True)
        connection, _ = write_connection_file(
            KERNEL_DIR + "/sock/kernel.json",
            ip=KERNEL_DIR + "/sock/k",
            transport="ipc",
            key=secrets.token_hex(16).encode(),
        )
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", connection, *KERNEL_ARGS]
        self.process = subprocess.Popen(
            argv,
            cwd=WORK_DIR,
            env=dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = BlockingKernelClient(connection_file=connection)
        self.client.load_connection_file()
        self.client.start_channels(hb=False)  # a heartbeat misses under load; we watch the pid
        self.client.wait_for_ready(timeout=START_TIMEOUT_S)
        self._wait_for_iopub(time.monotonic() + START_TIMEOUT_S)

    def _wait_for_iopub(self, deadline: float) -> None:
        """Wait until iopub delivers: a subscription still connecting loses what the kernel
        publishes, so the first cell's output could vanish. A kernel_info request's status
        message on iopub proves the subscription is live."""
        while time.monotonic() < deadline:
            msg_id = self.client.kernel_info()
            until = time.monotonic() + 1.0
            while time.monotonic() < until:
                try:
                    message = self.client.get_iopub_msg(timeout=0.2)
                except queue.Empty:
                    continue
                if message.get("parent_header", {}).get("msg_id") == msg_id:
                    while True:  # let the rest of that request's messages go by
                        try:
                            self.client.get_iopub_msg(timeout=0.05)
                        except queue.Empty:
                            return
        raise RuntimeError("the kernel's iopub channel never delivered")

    def run(self, code: str, timeout: float) -> bool:
        """Run one cell, streaming its output; interrupt it at `timeout`. False: the kernel is
        stuck or dead and the runner must kill and restart it."""
        msg_id = self.client.execute(code, store_history=True, allow_stdin=False)
        deadline = time.monotonic() + timeout
        interrupted = False
        exit_code = 0
        while True:
            if self.process.poll() is not None:
                emit({"ev": "done", "died": True, "status": self.process.returncode})
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if interrupted:
                    emit({"ev": "done", "stuck": True})
                    return False
                os.kill(self.process.pid, signal.SIGINT)
                interrupted = True
                deadline = time.monotonic() + INTERRUPT_GRACE_S
                continue
            try:
                message = self.client.get_iopub_msg(timeout=min(POLL_S, remaining))
            except queue.Empty:
                continue
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                emit({"ev": content.get("name", "stdout"), "text": content.get("text", "")})
            elif kind in ("display_data", "execute_result"):
                self.show(content.get("data", {}))
            elif kind == "error":
                exit_code = exit_code_of(content)
                text = ANSI.sub("", "\n".join(content.get("traceback", ())))
                emit({"ev": "stderr", "text": text + "\n"})
            elif kind == "status" and content.get("execution_state") == "idle":
                emit({"ev": "done", "exit_code": exit_code, "interrupted": interrupted})
                return True

    def show(self, data: dict[str, Any]) -> None:
        """An image display becomes a file in /work (named in the output); text is printed."""
        name = save_display(data)
        if name is not None:
            emit({"ev": "stdout", "text": f"[display saved as {name}]\n"})
        elif "text/plain" in data:
            emit({"ev": "stdout", "text": str(data["text/plain"]) + "\n"})


def main() -> int:
    """Start the kernel, say ready with its pid, then run cells until the runner closes fd 3."""
    os.environ.update(PRIVATE_ENV)
    requests = os.fdopen(3, "rb")
    try:
        kernel = Kernel()
    except Exception as exc:
        emit({"ev": "failed", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    emit({"ev": "ready", "kernel_pid": kernel.process.pid})
    for line in requests:
        request = json.loads(line)
        if not kernel.run(str(request["code"]), float(request["timeout"])):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
