"""`moot demo`'s code path against the scripted model server (not the real model): every turn is
printed, the code runs, a failure is fixed, results are checked, and a failing model is named."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from moot.cli import ExitCode
from moot.testing import Reply, ScriptedModelServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from moot.testing import Rule


@pytest.fixture
def model_server(
    monkeypatch: pytest.MonkeyPatch, demo_rules: list[Rule]
) -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(rules=demo_rules) as server:
        monkeypatch.setenv("MOOT_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "scripted")
        monkeypatch.setenv("MOOT_MODEL", "scripted")
        yield server


def test_the_demo_runs_both_tasks_and_checks_the_results(
    moot: Any, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    work = tmp_path / "demo"
    ran = moot("demo", "--executor", "local", "--work-dir", str(work))
    assert ran.code == ExitCode.OK, ran.out + ran.err
    out = ran.out
    assert "scripted at http://127.0.0.1" in out
    assert "local executor" in out or "executor: local" in out
    # (a) the turns appear in order: broken code, the failing run, the fix, the good run, TERMINATE
    order = [
        "turn 1 · assistant",
        "turn 2 · user · exit code 1",
        "IndexError",
        "turn 3 · assistant",
        "turn 4 · user · exit code 0",
        "turn 5 · assistant",
        "TERMINATE",
        "turn 1 · coder",
        "turn 2 · executor · exit code 0",
        "2 3 5 7 11 13 17 19 23 29",
        "turn 3 · reviewer",
    ]
    positions = [out.find(marker) for marker in order]
    assert -1 not in positions, [m for m, p in zip(order, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
    assert (work / "two-agent" / "fib.txt").read_text().split() == [
        "0",
        "1",
        "1",
        "2",
        "3",
        "5",
        "8",
        "13",
        "21",
        "34",
    ]
    assert "moot demo summary" in out
    assert "NOT solved" not in out
    assert "fib.txt" in out
    assert "every task solved" in out
    assert model_server.errors == []


def test_the_demo_reports_its_figures_as_json(
    moot: Any, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    ran = moot(
        "demo",
        "--executor",
        "local",
        "--work-dir",
        str(tmp_path / "d"),
        "--task",
        "two-agent",
        "--json",
    )
    assert ran.code == ExitCode.OK, ran.err
    (task,) = json.loads(ran.out)["tasks"]
    assert task["task"] == "two-agent"
    assert task["solved"] is True
    assert task["code_runs"] == 2
    assert task["turns"] == 5
    assert task["files"] == ["fib.txt"]
    assert task["completion_tokens"] > 0
    assert task["stop"] == "the assistant said TERMINATE"


def test_a_model_that_fails_is_named_not_hidden(
    moot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with ScriptedModelServer(default="I am not sure how to do that.") as server:
        monkeypatch.setenv("MOOT_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "scripted")
        ran = moot("demo", "--executor", "local", "--work-dir", str(tmp_path / "d"))
    assert ran.code == ExitCode.FAILED
    assert "NOT solved" in ran.out
    assert "The model did not solve two-agent, group" in ran.out


def test_a_model_error_is_one_clear_message(
    moot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with ScriptedModelServer(default=Reply(status=401, error="bad key")) as server:
        monkeypatch.setenv("MOOT_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "wrong")
        ran = moot("demo", "--executor", "local", "--work-dir", str(tmp_path / "d"))
    assert ran.code == ExitCode.FAILED
    assert "the model failed" in ran.err
    assert "Traceback" not in ran.err + ran.out


def test_the_demo_never_empties_a_folder_it_did_not_make(
    moot: Any, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    ran = moot("demo", "--executor", "local", "--work-dir", str(precious))
    assert ran.code == ExitCode.USAGE
    assert (precious / "thesis.txt").read_text() == "years of work"


def test_without_a_server_or_llama_cpp_the_demo_says_what_to_do(
    moot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    monkeypatch.delenv("MOOT_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real(name, *a),
    )
    ran = moot("demo", "--work-dir", str(tmp_path / "d"))
    assert ran.code == ExitCode.MISSING
    assert "llama-cpp-python" in ran.err
    assert "make demo" in ran.err
