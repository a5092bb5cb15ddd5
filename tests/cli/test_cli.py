"""The `moot` command line: help that reads well, exit codes scripts can trust, no tracebacks."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from moot.cli import ExitCode

if TYPE_CHECKING:
    from pathlib import Path


def test_help_lists_every_command_and_the_exit_codes(moot: Any) -> None:
    ran = moot("--help")
    assert ran.code == ExitCode.OK
    for command in ("doctor", "image", "model", "bench", "demo"):
        assert command in ran.out
    assert "exit codes" in ran.out
    assert moot("bench", "--help").out.count("mixed") >= 1


def test_no_command_prints_help_and_exits_2(moot: Any) -> None:
    ran = moot()
    assert ran.code == ExitCode.USAGE
    assert "usage: moot" in ran.out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["frobnicate"], "invalid choice"),
        (["bench", "nosuch"], "unknown scenario 'nosuch'"),
        (["bench", "runtime", "--concurrency", "0"], "concurrency levels must be >= 1"),
        (["bench", "runtime", "--concurrency", "a,b"], "comma-separated integers"),
        (["bench", "chats", "--agents", "1"], "at least 2 agents"),
        (["bench", "chats", "--turns", "0"], "--turns must be at least 1"),
        (["bench", "chats", "--latency", "gamma:1"], "unknown latency distribution"),
        (["bench", "chats", "--latency", "uniform:2,1"], "LO must not exceed HI"),
        (["bench", "runtime", "--mode", "open"], "needs arrival rates"),
        (["bench", "runtime", "--rate", "10"], "--mode open only"),
        (["bench", "runtime", "--ops", "0"], "--ops must be at least 1"),
        (["image"], "needs an action"),
        (["image", "build", "--with", "rm -rf"], "is not a Debian package name"),
        (["model", "serve", "--port", "70000"], "between 1 and 65535"),
    ],
)
def test_bad_input_is_one_clear_message_and_exit_2(moot: Any, args: list[str], needle: str) -> None:
    ran = moot(*args)
    assert ran.code == ExitCode.USAGE, ran.err
    assert needle in ran.err
    assert "Traceback" not in ran.err + ran.out


def test_errors_are_json_on_stdout_in_json_mode(moot: Any) -> None:
    ran = moot("bench", "nosuch", "--json")
    assert ran.code == ExitCode.USAGE
    payload = json.loads(ran.out)
    assert payload["exit_code"] == 2
    assert "unknown scenario" in payload["error"]


def test_doctor_reports_each_check_with_a_hint(
    moot: Any, no_docker: None, models_dir: Path
) -> None:
    ran = moot("doctor", "--json")
    payload = json.loads(ran.out)
    checks = {check["name"]: check for check in payload["checks"]}
    assert set(checks) == {
        "python",
        "docker",
        "sandbox image",
        "model cache",
        "llama-cpp-python",
        "nats",
    }
    assert checks["python"]["status"] == "ok"
    assert checks["docker"]["status"] == "warn"
    assert "start Docker" in checks["docker"]["hint"]
    assert checks["model cache"]["status"] == "warn"
    assert "moot model fetch" in checks["model cache"]["hint"]
    # Docker and the model are optional: the machine passes, but not under --strict.
    assert ran.code == ExitCode.OK
    assert payload["ok"] is True
    strict = moot("doctor", "--strict", "--json")
    assert strict.code == ExitCode.MISSING
    assert json.loads(strict.out)["ok"] is False


def test_doctor_shows_a_table_for_people(moot: Any, no_docker: None, models_dir: Path) -> None:
    ran = moot("doctor")
    assert ran.code == ExitCode.OK
    assert "moot doctor" in ran.out
    assert "moot model fetch" in ran.out


def test_image_build_without_an_engine_exits_3(moot: Any, no_docker: None) -> None:
    ran = moot("image", "build")
    assert ran.code == ExitCode.MISSING
    assert "No Docker engine answers" in ran.err


def test_model_path_says_when_the_model_is_missing(moot: Any, models_dir: Path) -> None:
    ran = moot("model", "path", "--json")
    assert ran.code == ExitCode.MISSING
    assert "moot model fetch" in ran.err
    assert json.loads(ran.out) == {
        "path": str(models_dir / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        "cached": False,
    }


def test_bench_on_docker_without_an_engine_exits_3(
    moot: Any, no_docker: None, tmp_path: Path
) -> None:
    ran = moot("bench", "executor", "--executor", "docker", "--quick", "--out", str(tmp_path))
    assert ran.code == ExitCode.MISSING
    assert "No Docker engine answers" in ran.err
    assert "Traceback" not in ran.err


def test_unexpected_errors_are_one_line_without_debug(
    moot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import moot.bench._run as run_module

    async def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(run_module, "run_bench", broken)
    monkeypatch.setattr("moot.bench.run_bench", broken)
    ran = moot("bench", "runtime", "--quick", "--out", str(tmp_path))
    assert ran.code == ExitCode.FAILED
    assert "unexpected ZeroDivisionError: boom" in ran.err
    assert "--debug" in ran.err
    assert "Traceback" not in ran.err
    with pytest.raises(ZeroDivisionError):
        moot("bench", "runtime", "--quick", "--out", str(tmp_path), "--debug")


def test_the_callers_log_configuration_is_restored(moot: Any) -> None:
    import structlog

    before = structlog.get_config()
    moot("bench", "nosuch")
    assert structlog.get_config() == before
