"""`moot model install-runtime`: compile llama-cpp-python once, then reuse the cached wheel."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import pytest

from moot.cli import CliError, ExitCode
from moot.cli._llama_install import cached_wheel, wheel_cache
from moot.cli._output import Output

if TYPE_CHECKING:
    from pathlib import Path


def test_a_server_model_needs_no_compile(moot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    ran = moot("model", "install-runtime", "--if-needed", "--json")
    assert ran.code == ExitCode.OK
    assert json.loads(ran.out) == {"llama_cpp": "not needed"}


def test_the_wheel_cache_is_found_by_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MOOT_WHEEL_CACHE", str(tmp_path))
    assert wheel_cache() == tmp_path
    assert cached_wheel() is None
    (tmp_path / "llama_cpp_python-0.1.0-py3-none-linux_x86_64.whl").write_bytes(b"old")
    assert cached_wheel() is None
    wanted = tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    wanted.write_bytes(b"x")
    assert cached_wheel() == wanted


def test_an_installed_runtime_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import moot.cli._llama_install as module

    monkeypatch.setattr(module, "llama_installed", lambda: True)
    monkeypatch.setattr(module, "_run", lambda *a: pytest.fail("nothing should run"))
    assert module.install_runtime(Output()) == "present"


def test_a_failed_build_shows_the_log_tail(tmp_path: Path) -> None:
    from moot.cli._llama_install import _run

    command = [sys.executable, "-c", "print('compiler says no'); raise SystemExit(3)"]
    with pytest.raises(CliError, match="compiler says no") as caught:
        _run(command, tmp_path / "build.log", Output(), "compiling", {})
    assert caught.value.hint is not None
    assert "build.log" in caught.value.hint


def test_a_cached_wheel_is_installed_without_compiling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import moot.cli._llama_install as module

    wheel = tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    wheel.write_bytes(b"x")
    monkeypatch.setenv("MOOT_WHEEL_CACHE", str(tmp_path))
    monkeypatch.setattr(module, "llama_installed", lambda: False)
    commands: list[list[str]] = []
    monkeypatch.setattr(module, "_run", lambda command, *a: commands.append(command))
    assert module.install_runtime(Output()) == "cached"
    assert len(commands) == 1
    assert commands[0][-1] == str(wheel)
    assert "install" in commands[0]
