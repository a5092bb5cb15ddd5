"""The job runner that lives inside each sandbox container (stdlib only, runs as PID 2 under init).

It reads one JSON request per line on stdin and writes one JSON reply per line on stdout, so code
never appears in argv, on the host's disk or in Docker events. Each job runs in its own session
under an unprivileged uid; at its end every process of that uid is killed. The module also holds
`OutputCap`, which the local executor shares.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import os
import posixpath
import signal
import stat
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

JOB_UID = 10000
WORK_DIR = "/work"
SCRATCH_DIR = "/run/moot"
TMP_DIR = "/tmp"
SHM_DIR = "/dev/shm"
MQUEUE_DIR = "/dev/mqueue"
# Every place a job can write; a lease's reset empties each (a test keeps this list complete).
JOB_WRITABLE = (WORK_DIR, TMP_DIR, SHM_DIR, MQUEUE_DIR)
KERNEL_DIR = SCRATCH_DIR + "/kernel"  # kernel mode only: its sockets and IPython's state; wiped too
KERNEL_DRIVER = "/opt/moot/kernel_driver.py"
KERNEL_START_S = 30.0  # a fresh kernel gets this long to say ready before a cell fails
KERNEL_INTERRUPT_S = 1.0  # the driver's grace after the timeout's SIGINT (INTERRUPT_GRACE_S)
KERNEL_GRACE_S = KERNEL_START_S + KERNEL_INTERRUPT_S + 2.0  # the host waits this much longer
TIMED_OUT = -1  # a kernel cell's outcome when the timeout ended it (no exit code can be negative)
MAX_EVENT = 8 << 20  # bytes of one driver event line; a longer one is dropped with a note
IPC_RMID = 0
PROTOCOL = 1
MAX_LINE = 1 << 30
MAX_SNAPSHOT_ENTRIES = 200_000  # entries a scan of /work looks at, at most
MAX_COPY_FILES = 10_000  # changed files one run copies back, at most; the rest are reported
COPY_BACK_S = 2.0  # after its timeout a job's files get this long to come back; the rest are left
COLLECT_S = COPY_BACK_S / 2  # the runner collects in the first half, leaving the rest for transfer
JOB_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": WORK_DIR,
    "TMPDIR": TMP_DIR,
    "LANG": "C.UTF-8",
    "PYTHONPATH": WORK_DIR,
    "PYTHONDONTWRITEBYTECODE": "1",
    "MPLBACKEND": "Agg",  # matplotlib draws to files: the sandbox has no display
    "MPLCONFIGDIR": TMP_DIR + "/matplotlib",  # its font cache, kept out of the user's work dir
}
INTERPRETERS = {"python": "/usr/bin/python3", "sh": "/bin/sh", "bash": "/bin/bash"}
SUFFIXES = {"python": ".py", "sh": ".sh", "bash": ".sh"}


class OutputCap:
    """Keep the first and last bytes of a stream within `limit`, counting what is dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 0)
        self._head_limit = self.limit // 2
        self._tail_limit = self.limit - self._head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        """Account for a chunk of output, keeping only what fits in head and tail."""
        self.total += len(data)
        room = self._head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data and self._tail_limit:
            self.tail += data
            if len(self.tail) > 2 * self._tail_limit:
                del self.tail[: len(self.tail) - self._tail_limit]

    def text(self) -> str:
        """The kept output as UTF-8 (bad bytes replaced), with a marker where bytes were cut."""
        tail = bytes(self.tail[-self._tail_limit :]) if self._tail_limit else b""
        omitted = self.total - len(self.head) - len(tail)
        head = bytes(self.head).decode("utf-8", "replace")
        if omitted <= 0:
            return (bytes(self.head) + tail).decode("utf-8", "replace")
        marker = f"\n[... {omitted} bytes of output omitted ...]\n"
        return head + marker + tail.decode("utf-8", "replace")


def exit_status(status: int) -> int:
    """A shell-style exit code from a wait status: the code, or 128 + signal number."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def safe_join(base: str, relative: str) -> str:
    """Join a relative path under `base`, refusing absolute paths and `..` escapes."""
    normal = posixpath.normpath(relative)
    if not relative or normal.startswith(("/", "../")) or normal in {".", ".."}:
        raise ValueError(f"unsafe path {relative!r}")
    return posixpath.join(base, normal)


@contextlib.contextmanager
def as_job_user() -> Iterator[None]:
    """Act with the job's uid for file work, so the runner never follows a job's trick as root."""
    os.setegid(JOB_UID)
    os.seteuid(JOB_UID)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def job_user_pids() -> list[int]:
    """Pids of live processes running as the job uid (the sandbox's pid namespace is small)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"State:") and b"Z" in line.split()[1]:
                        break  # a zombie: dead already, init reaps it
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == JOB_UID:
                            found.append(int(name))
                        break
        except (OSError, ValueError):
            continue
    return found


def kill_job_user() -> None:
    """Kill every process of the job uid, including setsid and double-fork escapees."""
    for _ in range(100):
        pids = job_user_pids()
        if not pids:
            return
        try:
            pid = os.fork()
        except OSError:  # the pid limit is used up (a fork bomb): kill them one by one as root
            for target in pids:
                with contextlib.suppress(OSError):
                    os.kill(target, signal.SIGKILL)
            continue
        if pid == 0:  # pragma: no cover - child
            try:
                os.setgroups([])
                os.setgid(JOB_UID)
                os.setuid(JOB_UID)
                os.kill(-1, signal.SIGKILL)
            except BaseException:
                pass
            os._exit(0)
        os.waitpid(pid, 0)


def kill_job_user_except(keep: set[int]) -> None:
    """Kill every process of the job uid but `keep` (the kernel and its driver), as root."""
    for _ in range(100):
        pids = [pid for pid in job_user_pids() if pid not in keep]
        if not pids:
            return
        for target in pids:
            with contextlib.suppress(OSError):
                os.kill(target, signal.SIGKILL)


def oom_kills() -> int:
    """How many processes the container's memory cgroup has OOM-killed so far (v1 or v2)."""
    for path, key in (
        ("/sys/fs/cgroup/memory.events", "oom_kill"),
        ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
    ):
        try:
            with open(path) as handle:
                for line in handle:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except OSError:
            continue
    return 0


def snapshot(root: str, deadline: float = float("inf")) -> tuple[dict[str, tuple[int, int]], bool]:
    """Size and mtime of every regular file under `root`, symlinks not followed; and whether
    the scan finished (it stops at `deadline` or after `MAX_SNAPSHOT_ENTRIES` entries)."""
    found: dict[str, tuple[int, int]] = {}
    stack = [root]
    seen = 0
    while stack:
        if seen >= MAX_SNAPSHOT_ENTRIES or time.monotonic() > deadline:
            return found, False
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        seen += len(entries)
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
            elif stat.S_ISREG(info.st_mode):
                found[posixpath.relpath(entry.path, root)] = (info.st_size, info.st_mtime_ns)
    return found, True


NOT_COPIED_BECAUSE = {
    "over_count": "more files changed than one run copies back",
    "over_bytes": "over the run's copy-back byte limit",
    "unreadable": "not readable in the sandbox",
    "deadline": "the run's deadline passed",
    "refused": "the path leads out of the work dir (a symlink) or is no valid name",
    "write_failed": "writing it on the host failed",
}


class NotCopied:
    """Changed files that did not reach the host work dir, by reason, reported in the result."""

    EXAMPLES = 5

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}
        self.scan_incomplete = False

    def add(self, reason: str, paths: Sequence[str], count: int | None = None) -> None:
        """Count files left out for `reason`: `paths`, or `count` of which `paths` are examples."""
        count = len(paths) if count is None else count
        if count <= 0:
            return
        self.counts[reason] = self.counts.get(reason, 0) + count
        kept = self.examples.setdefault(reason, [])
        kept.extend(paths[: self.EXAMPLES])
        del kept[self.EXAMPLES :]

    def to_wire(self) -> dict[str, Any]:
        """The runner's reply field: counts and examples by reason, and whether the scan ended."""
        return {
            "reasons": {
                r: {"count": n, "examples": self.examples[r]} for r, n in self.counts.items()
            },
            "scan_incomplete": self.scan_incomplete,
        }

    @classmethod
    def from_wire(cls, wire: dict[str, Any] | None) -> NotCopied:
        """Rebuild the runner's count on the host (an absent field means nothing was left)."""
        found = cls()
        for reason, entry in (wire or {}).get("reasons", {}).items():
            found.add(str(reason), [str(p) for p in entry["examples"]], int(entry["count"]))
        found.scan_incomplete = bool((wire or {}).get("scan_incomplete"))
        return found

    @property
    def total(self) -> int:
        """How many changed files were left out."""
        return sum(self.counts.values())

    def note(self) -> str:
        """One line for the model and the user: how many files, and why; empty when none."""
        if not self.total and not self.scan_incomplete:
            return ""
        parts = []
        for reason, count in self.counts.items():
            examples = ", ".join(repr(path) for path in self.examples[reason])
            parts.append(f"{count} {NOT_COPIED_BECAUSE.get(reason, reason)} (e.g. {examples})")
        if self.scan_incomplete:
            parts.append("the scan of the work dir stopped early, so more may be left")
        return f"\n[moot: {self.total} changed files were not copied back: {'; '.join(parts)}]\n"


def collect_changes(
    before: dict[str, tuple[int, int]], *, file_limit: int, copy_back: bool, deadline: float
) -> tuple[list[dict[str, Any]], NotCopied]:
    """The files of /work a job changed, read within the byte budget, the file cap and the
    deadline (call as the job uid), and what was left out. The scan may use half the time left,
    so some files are read even when the scan cannot finish."""
    now = time.monotonic()
    after, complete = snapshot(WORK_DIR, now + (deadline - now) / 2)
    changed = sorted(name for name, meta in after.items() if before.get(name) != meta)
    skipped = NotCopied()
    skipped.scan_incomplete = not complete
    skipped.add("over_count", changed[MAX_COPY_FILES:])
    files: list[dict[str, Any]] = []
    budget = file_limit
    for index, name in enumerate(changed[:MAX_COPY_FILES]):
        if time.monotonic() > deadline:
            skipped.add("deadline", changed[index:MAX_COPY_FILES])
            break
        if not copy_back:
            files.append({"path": name, "data": None})
            continue
        if after[name][0] > budget:
            skipped.add("over_bytes", [name])
            continue
        data = read_file(posixpath.join(WORK_DIR, name), budget)
        if data is None:
            skipped.add("unreadable", [name])
            continue
        budget -= len(data)
        files.append({"path": name, "data": base64.b64encode(data).decode()})
    return files, skipped


def write_file(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` without following a symlink at the last component."""
    os.makedirs(posixpath.dirname(path), exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    fd = os.open(path, flags, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def read_file(path: str, limit: int) -> bytes | None:
    """Read a regular file of at most `limit` bytes, not following symlinks; None if refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# The job side of the protocol, in a source string so a fresh interpreter can run it from a file
# (spawn mode, started ahead of the job) and the forked runner can run it in place (fork mode).
JOB_MAIN = r"""
import os, sys

def run_job(code, path):
    sys.argv = [path]
    sys.path[0] = "/work"
    rc = 0
    try:
        compiled = compile(code, path, "exec")
        exec(compiled, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})
    except SyntaxError as exc:
        import traceback
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        rc = 1
    except SystemExit as exc:
        if exc.code is None:
            rc = 0
        elif isinstance(exc.code, int):
            rc = exc.code & 0xFF
        else:
            sys.stderr.write(str(exc.code) + "\n")
            rc = 1
    except BaseException as exc:
        import traceback
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        sys.stderr.write("Traceback (most recent call last):\n")
        sys.stderr.write("".join(traceback.format_tb(tb)))
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        rc = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(rc)

if __name__ == "__main__":
    chunks = []
    while True:
        chunk = os.read(3, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(3)
    header, _, body = b"".join(chunks).partition(b"\n")
    run_job(body.decode("utf-8", "surrogateescape"), header.decode())
"""
JOB_MAIN_PATH = SCRATCH_DIR + "/job_main.py"


def run_inline(code: str, path: str) -> None:  # pragma: no cover - runs in the forked job
    """Fork mode: run Python source in this already-warm interpreter, then exit with its code."""
    os.environ.clear()
    os.environ.update(JOB_ENV)
    sys.dont_write_bytecode = True
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
    namespace: dict[str, Any] = {"__name__": "moot_job_main"}
    exec(compile(JOB_MAIN, JOB_MAIN_PATH, "exec"), namespace)
    namespace["run_job"](code, path)


def start_child(
    argv: list[str] | None,
    out_w: int,
    err_w: int,
    *,
    code_r: int = -1,
    inline: str = "",
    path: str = "",
) -> int:
    """Fork a job: own session, OOM-preferred, job uid, cwd /work, pipes as stdout/stderr.

    With `argv` the child execs it (fd 3 is `code_r` when given); without, it runs `inline` code.
    """
    pid = os.fork()
    if pid:
        return pid
    try:  # pragma: no cover - child
        os.setsid()
        with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")
        os.setgroups([])
        os.setgid(JOB_UID)
        os.setuid(JOB_UID)
        os.chdir(WORK_DIR)
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        keep = 3
        if code_r >= 0:
            os.dup2(code_r, 3)
            keep = 4
        os.closerange(keep, os.sysconf("SC_OPEN_MAX"))
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        if argv is None:
            run_inline(inline, path)
        else:
            os.execve(argv[0], argv, JOB_ENV)
    except BaseException as exc:  # pragma: no cover - child
        with contextlib.suppress(BaseException):
            os.write(2, f"moot runner: cannot start the job: {exc}\n".encode())
    os._exit(127)  # pragma: no cover - child


class _Warm:
    """A fresh interpreter started ahead of the next spawn-mode job, waiting for code on fd 3."""

    def __init__(self) -> None:
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        code_r, self.code_w = os.pipe()
        argv = [INTERPRETERS["python"], JOB_MAIN_PATH]
        try:
            self.pid = start_child(argv, out_w, err_w, code_r=code_r)
        except OSError:
            for fd in (self.out_r, self.err_r, self.code_w):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, code_r):
                os.close(fd)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        for fd in (self.out_r, self.err_r, self.code_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class _KernelLink:
    """Kernel mode: the driver process (job uid) that holds the chat's IPython kernel, and the
    JSON-lines pipes to it (requests on its fd 3, events from its stdout)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.kernel_pid = -1
        self.ready: asyncio.Future[None] = loop.create_future()
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._buffer = bytearray()
        self._out_r, out_w = os.pipe()
        request_r, self._request_w = os.pipe()
        devnull = os.open("/dev/null", os.O_WRONLY)
        try:
            argv = [INTERPRETERS["python"], "-I", KERNEL_DRIVER]
            self.pid = start_child(argv, out_w, devnull, code_r=request_r)
        except OSError:
            os.close(self._out_r)
            os.close(self._request_w)
            raise
        finally:
            for fd in (out_w, devnull, request_r):
                os.close(fd)
        os.set_blocking(self._out_r, False)
        loop.add_reader(self._out_r, self._readable)
        self._reading = True

    def _readable(self) -> None:
        try:
            data = os.read(self._out_r, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stop_reading()
            self._settle(RuntimeError("the kernel driver exited"))
            self.events.put_nowait(None)
            return
        self._buffer += data
        *lines, rest = bytes(self._buffer).split(b"\n")
        self._buffer = bytearray(rest)
        if len(self._buffer) > MAX_EVENT:  # the job may write here too: never hold unbounded
            self._buffer.clear()
            lines.append(
                b'{"ev":"stderr","text":"[moot: an oversized kernel message was dropped]"}'
            )
        for line in lines:
            self._dispatch(line)

    def _dispatch(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            event = {"ev": "stderr", "text": line.decode("utf-8", "replace") + "\n"}
        if event.get("ev") == "ready":
            self.kernel_pid = int(event.get("kernel_pid", -1))
            self._settle(None)
        elif event.get("ev") == "failed":
            self._settle(RuntimeError(str(event.get("error"))))
        else:
            self.events.put_nowait(event)

    def _settle(self, error: BaseException | None) -> None:
        if self.ready.done():
            return
        if error is None:
            self.ready.set_result(None)
        else:
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved: a kernel nobody waits for must not warn

    async def send(self, request: dict[str, Any], timeout: float) -> None:
        """Write one request line in a thread (a big cell must not block the runner's loop)."""
        data = json.dumps(request, separators=(",", ":")).encode() + b"\n"

        def write() -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(self._request_w, view) :]

        await asyncio.wait_for(self.loop.run_in_executor(None, write), timeout)

    def keep(self) -> set[int]:
        return {self.pid, self.kernel_pid}

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self._out_r)
            os.close(self._out_r)

    def discard(self) -> None:
        """Kill the driver and its kernel (every job process goes with them) and close pipes."""
        kill_job_user()
        self._stop_reading()
        with contextlib.suppress(OSError):
            os.close(self._request_w)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self._settle(RuntimeError("the kernel was discarded"))


class Runner:
    """One request at a time for jobs; cancel, reset and ping are answered while a job runs."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.job_id: int | None = None
        self.job_cancel: asyncio.Event | None = None
        self.prewarm = "--prewarm" in sys.argv
        self.warm: _Warm | None = None
        self.kernel_mode = "--kernel" in sys.argv
        self.kernel: _KernelLink | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]

    async def serve(self) -> None:
        reader = asyncio.StreamReader(limit=MAX_LINE)
        await self.loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0)
        )
        write_file(JOB_MAIN_PATH, JOB_MAIN.encode())
        self._prewarm()
        self.send({"op": "ready", "protocol": PROTOCOL, "python": sys.version.split()[0]})
        async with asyncio.TaskGroup() as group:
            while line := await reader.readline():
                request = json.loads(line)
                op = request.get("op")
                if op == "run":
                    if self.job_id is not None:
                        self.send({"id": request["id"], "error": "busy: a job is running"})
                        continue
                    self.job_id = request["id"]
                    self.job_cancel = asyncio.Event()
                    self.idle.clear()
                    group.create_task(self.run(request))
                elif op == "cancel":
                    if self.job_cancel is not None and self.job_id == request.get("id"):
                        self.job_cancel.set()
                elif op == "reset":
                    group.create_task(self.reset(request))
                else:
                    self.send({"id": request.get("id"), "ok": True, "op": op})
            if self.job_cancel is not None:
                self.job_cancel.set()

    async def reset(self, request: dict[str, Any]) -> None:
        """Wipe the slot for its next lease: kill every job process, empty every writable dir,
        remove every SysV IPC object; `ok` is False (and the host replaces the container) if any
        of it is left. (A fresh IPC namespace per lease would need CAP_SYS_ADMIN in here.)"""
        if self.job_cancel is not None:
            self.job_cancel.set()
        await self.idle.wait()
        if self.warm is not None:
            self.warm.discard()
            self.warm = None
        if self.kernel is not None:
            self.kernel.discard()
            self.kernel = None
        kill_job_user()
        ok = not job_user_pids()
        try:
            with as_job_user():
                for path in JOB_WRITABLE + ((KERNEL_DIR,) if self.kernel_mode else ()):
                    ok = wipe_dir(path) and ok
                ok = remove_sysv_ipc() and ok
        except OSError:
            ok = False
        for entry in os.listdir(SCRATCH_DIR):
            if entry.startswith("job-"):
                with contextlib.suppress(OSError):
                    os.unlink(posixpath.join(SCRATCH_DIR, entry))
        self._prewarm()
        self.send({"id": request["id"], "ok": ok})

    async def run(self, request: dict[str, Any]) -> None:
        try:
            reply = await self.execute(request)
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            self.job_id = None
            self.job_cancel = None
            self.idle.set()
        reply["id"] = request["id"]
        self.send(reply)

    async def execute(self, request: dict[str, Any]) -> dict[str, Any]:
        language = request["language"]
        code: str = request["code"]
        filename: str | None = request.get("filename")
        timeout = float(request["timeout"])
        limit = int(request["output_limit"])
        if language not in INTERPRETERS:
            return {"exit_code": 1, "stdout": "", "stderr": f"unknown language {language}\n"}
        if self.kernel_mode and language == "python":
            return await self.execute_in_kernel(request, code, filename, timeout)
        try:
            before, path = self._prepare(request, language, code, filename)
        except (OSError, ValueError) as exc:  # e.g. a full /work: the job fails, the slot stays
            message = f"moot: cannot prepare the job's files: {exc}\n"
            return {"exit_code": 1, "stdout": "", "stderr": message}
        stdout, stderr = OutputCap(limit), OutputCap(limit)
        oom_before = oom_kills()
        started = time.monotonic()
        pid, out_r, err_r = self._start(request, language, code, path)
        drained = [self._drain(out_r, stdout), self._drain(err_r, stderr)]
        exited = self._exited(pid)
        cancel = self.job_cancel or asyncio.Event()
        cancelled = asyncio.ensure_future(cancel.wait())
        waiters: set[asyncio.Future[Any]] = {exited, cancelled}
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
        timed_out = exited not in done
        if timed_out:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        cancelled.cancel()
        self._kill_jobs()
        self._prewarm()
        status = await exited
        await asyncio.wait(drained, timeout=1.0)
        for future in drained:
            future.cancel()
        exit_code = exit_status(status)
        oom = exit_code == 128 + signal.SIGKILL and not timed_out and oom_kills() > oom_before
        if timed_out:
            exit_code = 124
            stderr.feed(
                f"\nTimeout: the job ran longer than {timeout:g} s and was killed.\n".encode()
            )
        elif oom:
            exit_code = 137
            stderr.feed(b"\nMemoryError: the job ran out of memory and was killed.\n")
        if not filename:
            with contextlib.suppress(OSError):
                os.unlink(path)
        outcome = (exit_code, timed_out, oom)
        return self._finish(request, before, started, timeout, outcome, stdout, stderr)

    def _finish(
        self,
        request: dict[str, Any],
        before: dict[str, tuple[int, int]],
        started: float,
        timeout: float,
        outcome: tuple[int, bool, bool],
        stdout: OutputCap,
        stderr: OutputCap,
    ) -> dict[str, Any]:
        """The reply: the job's output, exit code, timed-out and OOM flags, and the files of
        /work it changed."""
        exit_code, timed_out, oom = outcome
        duration = time.monotonic() - started
        with as_job_user():
            files, not_copied = collect_changes(
                before,
                file_limit=int(request["file_limit"]),
                copy_back=bool(request.get("copy_back", True)),
                deadline=max(started + timeout, time.monotonic()) + COLLECT_S,
            )
        return {
            "exit_code": exit_code,
            "stdout": stdout.text(),
            "stderr": stderr.text(),
            "timed_out": timed_out,
            "oom_killed": oom,
            "duration_s": duration,
            "files": files,
            "not_copied": not_copied.to_wire(),
        }

    async def execute_in_kernel(
        self, request: dict[str, Any], code: str, filename: str | None, timeout: float
    ) -> dict[str, Any]:
        """Kernel mode: run a Python cell in the chat's kernel; interrupt it at the timeout, and
        kill and restart a kernel that does not stop (or dies), saying so in the output."""
        try:
            with as_job_user():
                for item in request.get("files", ()):
                    write_file(safe_join(WORK_DIR, item["path"]), base64.b64decode(item["data"]))
                before, _ = snapshot(WORK_DIR, time.monotonic() + COLLECT_S)
                if filename:
                    write_file(safe_join(WORK_DIR, filename), code.encode())
        except (OSError, ValueError) as exc:
            message = f"moot: cannot prepare the job's files: {exc}\n"
            return {"exit_code": 1, "stdout": "", "stderr": message}
        stdout, stderr = (
            OutputCap(int(request["output_limit"])),
            OutputCap(int(request["output_limit"])),
        )
        oom_before = oom_kills()
        link = self._kernel()
        cancel = self.job_cancel or asyncio.Event()
        waiting = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(link.ready), KERNEL_START_S)
        except (TimeoutError, RuntimeError) as exc:
            self._restart_kernel()
            stderr.feed(
                f"moot: the Python kernel did not start ({exc}); it was restarted.\n".encode()
            )
            now = time.monotonic()
            return self._finish(request, before, now, 0.0, (1, False, False), stdout, stderr)
        started = time.monotonic()
        exit_code, timed_out, notice = 1, False, ""
        try:
            await link.send({"code": code, "timeout": timeout}, KERNEL_START_S)
            exit_code, notice = await self._kernel_events(link, timeout, stdout, stderr, cancel)
            timed_out = exit_code == TIMED_OUT
        except (TimeoutError, OSError):
            notice = "the kernel stopped taking cells"
        oom = False
        if notice:
            oom = oom_kills() > oom_before
            self._restart_kernel()
            if oom:
                exit_code, notice = 137, "the kernel ran out of memory and was killed"
            stderr.feed(
                f"\n[moot: {notice}; a new kernel was started, so earlier variables and imports"
                " are gone]\n".encode()
            )
        else:
            kill_job_user_except(link.keep())  # a cell's processes do not outlive it
        if timed_out:
            exit_code = 124
            stderr.feed(
                f"\nTimeout: the cell ran longer than {timeout:g} s and was interrupted.\n".encode()
            )
        outcome = (exit_code, timed_out, oom)
        reply = self._finish(request, before, started, timeout, outcome, stdout, stderr)
        reply["kernel_wait_s"] = started - waiting  # the host gives its files this much longer
        return reply

    async def _kernel_events(
        self,
        link: _KernelLink,
        timeout: float,
        stdout: OutputCap,
        stderr: OutputCap,
        cancel: asyncio.Event,
    ) -> tuple[int, str]:
        """Feed a cell's output into the caps until it is done: its exit code (`TIMED_OUT` when
        the timeout ended it), and a notice (empty unless the kernel must be restarted)."""
        deadline = time.monotonic() + timeout + KERNEL_INTERRUPT_S + 2.0
        cancelled = asyncio.ensure_future(cancel.wait())
        try:
            while True:
                event_future = asyncio.ensure_future(link.events.get())
                remaining = deadline - time.monotonic()
                done, _ = await asyncio.wait(
                    {event_future, cancelled},
                    timeout=max(remaining, 0),
                    return_when="FIRST_COMPLETED",
                )
                if event_future not in done:
                    event_future.cancel()
                    if cancelled in done:
                        return 1, "the run was cancelled, so the kernel was stopped"
                    return (
                        TIMED_OUT,
                        "the kernel did not stop at the timeout's interrupt and was killed",
                    )
                event = event_future.result()
                if event is None:
                    return 1, "the kernel exited"
                kind = event.get("ev")
                if kind in ("stdout", "stderr"):
                    text = str(event.get("text", "")).encode("utf-8", "replace")
                    (stdout if kind == "stdout" else stderr).feed(text)
                elif kind == "done":
                    if event.get("stuck"):
                        return (
                            TIMED_OUT,
                            "the kernel did not stop at the timeout's interrupt and was killed",
                        )
                    if event.get("died"):
                        return 1, f"the kernel died (status {event.get('status')})"
                    if event.get("interrupted"):
                        return TIMED_OUT, ""
                    return int(event.get("exit_code", 1)), ""
        finally:
            cancelled.cancel()

    def _kernel(self) -> _KernelLink:
        if self.kernel is None:
            self.kernel = _KernelLink(self.loop)
        return self.kernel

    def _restart_kernel(self) -> None:
        """Kill the kernel, its driver and every job process, and start a fresh kernel now."""
        if self.kernel is not None:
            self.kernel.discard()
            self.kernel = None
        kill_job_user()
        self._prewarm()

    def _kill_jobs(self) -> None:
        """End a job: kill every job process, except a kernel-mode slot's kernel and driver."""
        if self.kernel is not None:
            kill_job_user_except(self.kernel.keep())
        else:
            kill_job_user()

    def _prepare(
        self, request: dict[str, Any], language: str, code: str, filename: str | None
    ) -> tuple[dict[str, tuple[int, int]], str]:
        """Write the host's files and the code into place; /work as it was, and the code's path."""
        with as_job_user():
            for item in request.get("files", ()):
                target = safe_join(WORK_DIR, item["path"])
                write_file(target, base64.b64decode(item["data"]))
            before, _ = snapshot(WORK_DIR, time.monotonic() + COLLECT_S)
            if filename:
                path = safe_join(WORK_DIR, filename)
                write_file(path, code.encode())
                return before, path
        path = posixpath.join(SCRATCH_DIR, f"job-{request['id']}{SUFFIXES[language]}")
        write_file(path, code.encode())
        return before, path

    def _prewarm(self) -> None:
        """Start the next spawn-mode interpreter (or kernel-mode kernel) now, so the next job
        does not wait for it."""
        if self.kernel_mode and self.kernel is None:
            try:
                self.kernel = _KernelLink(self.loop)
            except OSError:  # no pid to spare right now; the next cell starts it
                self.kernel = None
        if self.prewarm and self.warm is None:
            try:
                self.warm = _Warm()
            except OSError:  # no pid or fd to spare right now; the next job starts cold
                self.warm = None

    def _start(
        self, request: dict[str, Any], language: str, code: str, path: str
    ) -> tuple[int, int, int]:
        """Start the job: hand it to the warm interpreter, fork it in place, or exec it cold."""
        mode = request.get("mode", "spawn")
        if language == "python" and mode == "spawn" and self.warm is not None:
            warm, self.warm = self.warm, None
            try:
                payload = path.encode() + b"\n" + code.encode("utf-8", "surrogateescape")
                view = memoryview(payload)
                while view:
                    view = view[os.write(warm.code_w, view) :]
                os.close(warm.code_w)
                return warm.pid, warm.out_r, warm.err_r
            except OSError:
                warm.discard()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            if language == "python" and mode == "fork":
                pid = start_child(None, out_w, err_w, inline=code, path=path)
            else:
                pid = start_child([INTERPRETERS[language], path], out_w, err_w)
        except OSError:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        return pid, out_r, err_r

    def _exited(self, pid: int) -> asyncio.Future[int]:
        future: asyncio.Future[int] = self.loop.create_future()
        pidfd = os.pidfd_open(pid)

        def ready() -> None:
            self.loop.remove_reader(pidfd)
            os.close(pidfd)
            _, status = os.waitpid(pid, 0)
            if not future.done():
                future.set_result(status)

        self.loop.add_reader(pidfd, ready)
        return future

    def _drain(self, fd: int, cap: OutputCap) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.loop.create_future()
        os.set_blocking(fd, False)
        is_open = [True]

        def finish(_: object = None) -> None:
            if is_open[0]:
                is_open[0] = False
                self.loop.remove_reader(fd)
                os.close(fd)
            if not future.done():
                future.set_result(None)

        def readable() -> None:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                cap.feed(data)
            else:
                finish()

        future.add_done_callback(finish)
        self.loop.add_reader(fd, readable)
        return future


def wipe_dir(root: str) -> bool:
    """Remove everything inside `root` (call as the job uid), opening dirs a job locked; empty?

    Iterative, so a job's deeply nested tree cannot exhaust the stack; whatever cannot be removed
    makes the answer False and the host replaces the container instead.
    """
    pending, made = [root], []
    try:
        while pending:
            for entry in list(os.scandir(pending.pop())):
                if entry.is_dir(follow_symlinks=False):
                    os.chmod(entry.path, 0o700)
                    pending.append(entry.path)
                    made.append(entry.path)
                else:
                    os.unlink(entry.path)
        for path in reversed(made):
            os.rmdir(path)
        return not os.listdir(root)
    except OSError:
        return False


def sysv_ipc_ids(kind: str) -> list[int]:
    """Ids of the live SysV IPC objects of `kind` (shm, msg or sem) in this IPC namespace."""
    with open(f"/proc/sysvipc/{kind}") as handle:
        rows = handle.read().splitlines()[1:]
    return [int(row.split()[1]) for row in rows if row.strip()]


def remove_sysv_ipc() -> bool:
    """Remove every SysV shared memory segment, message queue and semaphore set; all gone?

    Call as the job uid: jobs create them under that uid, and their creator may always remove them.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for ident in sysv_ipc_ids("shm"):
        libc.shmctl(ident, IPC_RMID, None)
    for ident in sysv_ipc_ids("msg"):
        libc.msgctl(ident, IPC_RMID, None)
    for ident in sysv_ipc_ids("sem"):
        libc.semctl(ident, 0, IPC_RMID)
    return not any(sysv_ipc_ids(kind) for kind in ("shm", "msg", "sem"))


def main() -> None:
    """Serve jobs on stdin/stdout until the host closes stdin."""
    os.setgroups([])
    asyncio.run(_serve())


async def _serve() -> None:
    await Runner().serve()


if __name__ == "__main__":
    main()
