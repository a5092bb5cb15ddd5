"""`moot model install-runtime`: get llama-cpp-python without compiling it twice on a machine.

PyPI ships llama-cpp-python only as source, and building it takes about 12 minutes on 2 cores.
The first build's wheel goes to `~/.cache/moot/wheels` (or `$MOOT_WHEEL_CACHE`); every later
install on the machine, in any virtual environment, takes that wheel.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from ._errors import CliError, ExitCode

if TYPE_CHECKING:
    from ._output import Output

LLAMA_PROJECT = "llama-cpp-python"
LLAMA_VERSION = "0.3.36"
WHEELS_ENV = "MOOT_WHEEL_CACHE"


def wheel_cache() -> Path:
    override = os.environ.get(WHEELS_ENV)
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "moot" / "wheels"


def cached_wheel(directory: Path | None = None, version: str = LLAMA_VERSION) -> Path | None:
    """A wheel of llama-cpp-python `version` built earlier on this machine, if any."""
    folder = directory or wheel_cache()
    found = sorted(folder.glob(f"llama_cpp_python-{version}-*.whl"))
    return found[-1] if found else None


def llama_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def _run(command: list[str], log: Path, out: Output, what: str, env: dict[str, str]) -> None:
    """Run `command` with output to `log`, showing a spinner with the elapsed time."""
    started = time.monotonic()
    with log.open("w") as sink, out.err.status(what, spinner="dots") as status:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        while process.poll() is None:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                minutes = (time.monotonic() - started) / 60
                status.update(f"{what} ({minutes:.1f} min; log: {log})")
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise CliError(
            f"{what} failed (exit code {process.returncode}):\n{tail}",
            code=ExitCode.FAILED,
            hint=f"the whole log is in {log}; a C/C++ compiler and cmake are needed"
            " (sudo apt-get install -y build-essential cmake)",
        )


def install_runtime(out: Output, *, force_build: bool = False) -> str:
    """Install llama-cpp-python into this Python from the wheel cache, building it once if needed.

    Returns what was done ("present", "cached", "built").

    Raises:
        CliError: the build or the install failed; the message has the log's tail.
    """
    if llama_installed() and not force_build:
        out.say("llama-cpp-python is installed")
        return "present"
    folder = wheel_cache()
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    wheel = None if force_build else cached_wheel(folder)
    outcome = "cached"
    if wheel is None:
        outcome = "built"
        out.say(
            f"[bold]Compiling {LLAMA_PROJECT} {LLAMA_VERSION} from source.[/] It runs the embedded"
            " model, and PyPI ships it only as source code, so pip builds llama.cpp with your C++"
            " compiler: about 12 minutes on 2 cores. This happens once per machine: the wheel is"
            f" kept in {escape(str(folder))} for every later install."
        )
        env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        _run(
            _pip(
                "wheel",
                "--no-deps",
                "--wheel-dir",
                str(folder),
                f"{LLAMA_PROJECT}=={LLAMA_VERSION}",
            ),
            folder / "build.log",
            out,
            f"compiling {LLAMA_PROJECT}",
            env,
        )
        wheel = cached_wheel(folder)
        if wheel is None:
            raise CliError(f"pip built no wheel of {LLAMA_PROJECT} in {folder}")
    else:
        out.say(f"using the {LLAMA_PROJECT} wheel built earlier: {escape(str(wheel))}")
    _run(
        _pip("install", "--find-links", str(folder), str(wheel)),
        folder / "install.log",
        out,
        f"installing {LLAMA_PROJECT}",
        env,
    )
    out.say(f"{LLAMA_PROJECT} {LLAMA_VERSION} installed ({outcome})")
    return outcome
