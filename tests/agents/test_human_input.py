"""Input providers: the console reads stdin off the event loop; the others answer in code."""

from __future__ import annotations

import asyncio
import io
import threading

import anyio
import pytest

from moot.agents import (
    ConsoleInputProvider,
    FunctionInputProvider,
    HumanInputError,
    InputRequest,
    QueueInputProvider,
    ScriptedInputProvider,
)

REQUEST = InputRequest(prompt="Your answer: ", agent="user", chat_id="c1", sender="assistant")


async def test_console_reads_a_line_while_the_loop_keeps_running(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class SlowStdin:
        """A stdin whose line arrives only when the test opens the gate."""

        def __init__(self) -> None:
            self.gate = threading.Event()

        def readline(self) -> str:
            self.gate.wait(timeout=10)
            return "looks good\n"

    stdin = SlowStdin()
    monkeypatch.setattr("sys.stdin", stdin)

    answer = asyncio.create_task(ConsoleInputProvider().get_input(REQUEST))
    await anyio.wait_all_tasks_blocked()  # the loop is free while the read blocks its thread
    assert not answer.done()
    stdin.gate.set()

    assert await answer == "looks good"
    assert "Your answer: " in capsys.readouterr().out


async def test_console_answers_exit_at_end_of_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert await ConsoleInputProvider().get_input(REQUEST) == "exit"


async def test_function_provider_asks_your_coroutine() -> None:
    async def ask(request: InputRequest) -> str:
        return f"{request.agent} in {request.chat_id} says yes"

    assert await FunctionInputProvider(ask).get_input(REQUEST) == "user in c1 says yes"


async def test_queue_provider_skips_questions_nobody_waits_for_any_more() -> None:
    humans = QueueInputProvider()
    abandoned = asyncio.create_task(humans.get_input(REQUEST))
    await anyio.wait_all_tasks_blocked()  # it has queued its question
    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    waiting = asyncio.create_task(humans.get_input(REQUEST))

    question = await humans.next()
    question.answer("second")

    assert await waiting == "second"
    assert humans.waiting() == 0


async def test_scripted_provider_records_and_runs_out() -> None:
    humans = ScriptedInputProvider(["one"])
    assert await humans.get_input(REQUEST) == "one"
    with pytest.raises(HumanInputError):
        await humans.get_input(REQUEST)
    assert humans.requests == [REQUEST, REQUEST]
    assert humans.remaining == 0
