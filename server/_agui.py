"""`POST /agui`: a chat as an AG-UI run (the `ag-ui-protocol` models, extra `moot[agui]`).

A run's body is the protocol's `RunAgentInput`. A new `threadId` starts a chat of the team named
in `forwardedProps.team` (under that id) from the last user message; the response is the run's
event stream: `RUN_STARTED`, each turn as `TEXT_MESSAGE_START`/`CONTENT`/`END` (streamed tokens
as they come, the speaker as the message's `name`), code runs as `CUSTOM` events, and
`RUN_FINISHED`. A question to a human or an approval ends the run with an interrupt outcome (its
id is the question's token); the next run on the same thread answers it with `resume`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ._errors import ServerError
from ._feed import feed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ag_ui.core import BaseEvent, RunAgentInput

    from ._runner import ChatRunner

_THREAD_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def parse_run(body: Any) -> RunAgentInput:
    """The run's input, validated by the protocol's model.

    Raises:
        ServerError: the AG-UI extra is not installed (501), or the thread id is unusable (422).
        pydantic.ValidationError: the body is not a `RunAgentInput`.
    """
    try:
        from ag_ui.core import RunAgentInput
    except ImportError:
        raise ServerError(
            "the AG-UI endpoint needs the agui extra: pip install 'moot[agui]'", status=501
        ) from None
    run = RunAgentInput.model_validate(body)
    if not _THREAD_ID.match(run.thread_id):
        raise ServerError("threadId: 1-128 letters, digits, '_', '.', ':' or '-'", status=422)
    return run


def last_user_text(run: RunAgentInput) -> str:
    """The text of the run's last user message.

    Raises:
        ServerError: the run carries no user message with text (422).
    """
    for message in reversed(run.messages):
        if message.role == "user":
            content = message.content
            if isinstance(content, str) and content:
                return content
            texts = [getattr(part, "text", "") for part in content or ()]
            if any(texts):
                return "".join(texts)
    raise ServerError("a new thread starts from a user message with text", status=422)


def resume_answer(run: RunAgentInput, *, approval: bool) -> tuple[str, str] | None:
    """(interrupt id, the answer as the journal keeps it) of the run's `resume`, if any."""
    for entry in run.resume or ():
        payload = entry.payload
        if approval:
            approved = entry.status == "resolved" and (
                payload is True or (isinstance(payload, dict) and bool(payload.get("approved")))
            )
            reason = str(payload.get("reason", "")) if isinstance(payload, dict) else ""
            return entry.interrupt_id, f"{'approve' if approved else 'deny'} {reason}".strip()
        if entry.status == "cancelled":
            return entry.interrupt_id, "exit"
        text = payload.get("text", "") if isinstance(payload, dict) else payload
        return entry.interrupt_id, "" if text is None else str(text)
    return None


class _Run:
    """Turns one chat's feed into AG-UI events for one run."""

    def __init__(self, chat_id: str, run_id: str, *, opening: str | None) -> None:
        self.chat_id, self.run_id = chat_id, run_id
        self.opening = opening  # a new thread's message: a pair journals it as its turn 1
        self.open: tuple[int, str] | None = None  # (turn, text streamed so far)
        self.done = False

    def _id(self, turn: int) -> str:
        return f"{self.chat_id}:{turn}"

    def events(self, kind: str, data: dict[str, Any]) -> list[BaseEvent]:
        from ag_ui import core

        if kind == "token":
            turn, out = int(data["turn"]), []
            if self.open is None or self.open[0] != turn:
                out.extend(self._close())
                out.append(
                    core.TextMessageStartEvent(
                        message_id=self._id(turn), role="assistant", name=data["speaker"]
                    )
                )
                self.open = (turn, "")
            if data["text"]:
                out.append(
                    core.TextMessageContentEvent(message_id=self._id(turn), delta=data["text"])
                )
                self.open = (turn, self.open[1] + data["text"])
            return out
        if kind == "turn":
            return self._turn(data)
        if kind == "code.run":
            return [core.CustomEvent(name="moot.code_run", value=data)]
        if kind == "input.asked":
            self.done = True
            reason = "approval" if data.get("approval") else "input"
            interrupt = core.Interrupt(id=str(data["token"]), reason=reason, message=data["prompt"])
            outcome = core.RunFinishedInterruptOutcome(interrupts=[interrupt])
            return [*self._close(), self._finished(outcome)]
        if kind == "status" and data.get("status") in ("finished", "failed"):
            self.done = True
            if data["status"] == "failed":
                return [*self._close(), core.RunErrorEvent(message="the chat failed")]
            return [*self._close(), self._finished(core.RunFinishedSuccessOutcome())]
        if kind == "cutoff":
            self.done = True
            message = f"the reader fell behind; resume after event {data['resume_after']}"
            return [core.RunErrorEvent(message=message, code="cutoff")]
        return []

    def _finished(self, outcome: Any) -> BaseEvent:
        from ag_ui import core

        return core.RunFinishedEvent(thread_id=self.chat_id, run_id=self.run_id, outcome=outcome)

    def _turn(self, data: dict[str, Any]) -> list[BaseEvent]:
        from ag_ui import core

        number = int(data.get("number", 0))
        message = data.get("message") or {}
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content or message)
        if number == 1 and text == self.opening:  # the client's own message, not echoed
            return []
        out: list[BaseEvent] = []
        if self.open is not None and self.open[0] == number:
            streamed = self.open[1]
            rest = text[len(streamed) :] if text.startswith(streamed) else ""
        else:
            out.extend(self._close())
            out.append(
                core.TextMessageStartEvent(
                    message_id=self._id(number), role="assistant", name=str(data.get("speaker"))
                )
            )
            rest = text
        if rest:
            out.append(core.TextMessageContentEvent(message_id=self._id(number), delta=rest))
        out.append(core.TextMessageEndEvent(message_id=self._id(number)))
        self.open = None
        return out

    def _close(self) -> list[BaseEvent]:
        """End a streamed message whose turn was never journaled (another speaker took over)."""
        from ag_ui import core

        if self.open is None:
            return []
        turn, self.open = self.open[0], None
        return [core.TextMessageEndEvent(message_id=self._id(turn))]


async def agui_stream(
    runner: ChatRunner,
    chat_id: str,
    run_id: str,
    *,
    after: int,
    buffer: int,
    opening: str | None,
) -> AsyncIterator[dict[str, str]]:
    """The run's AG-UI events as SSE `data:` lines, from the chat's events after `after`."""
    from ag_ui import core

    run = _Run(chat_id, run_id, opening=opening)
    started = core.RunStartedEvent(thread_id=chat_id, run_id=run_id)
    yield {"data": started.model_dump_json(by_alias=True, exclude_none=True)}
    async for item in feed(runner, chat_id, after, buffer=buffer):
        for event in run.events(item["event"], json.loads(item["data"])):
            yield {"data": event.model_dump_json(by_alias=True, exclude_none=True)}
        if run.done:
            return
