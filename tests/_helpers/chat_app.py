"""A small turn-taking chat for the multi-process tests, loaded by workers as `chat_app:setup`.

A chat `chat/<id>` starts when told `StartChat`; its players `player/<id>.<seat>` take turns,
each appending one line and telling the next seat. The whole transcript travels with the
messages, so a turn redelivered to a new owner after a crash carries everything it needs.
After the last turn the player tells `collector/<reply_to>` the transcript.
"""

from __future__ import annotations

import asyncio

import pydantic

from moot.runtime import Agent, AgentId, Envelope, Runtime, handler


class StartChat(pydantic.BaseModel):
    chat: str
    turns: int
    seats: int
    reply_to: str


class Turn(pydantic.BaseModel):
    chat: str
    n: int
    turns: int
    seats: int
    reply_to: str
    lines: list[str]


class ChatDone(pydantic.BaseModel):
    chat: str
    lines: list[str]
    worker: str


def expected_lines(chat: str, turns: int, seats: int) -> list[str]:
    """The transcript a chat must end with: every turn once, in order."""
    return [f"{n}:{chat}.{n % seats}" for n in range(turns)]


def register_messages(runtime: Runtime) -> None:
    for message_type in (StartChat, Turn, ChatDone):
        runtime.codec.register(message_type, name=f"chat.{message_type.__name__}")


class Chat(Agent):
    @handler
    async def on_start(self, message: StartChat, ctx: Envelope) -> None:
        first = Turn(
            chat=message.chat,
            n=0,
            turns=message.turns,
            seats=message.seats,
            reply_to=message.reply_to,
            lines=[],
        )
        await self.context.tell(first, AgentId("player", f"{message.chat}.0"))


class Player(Agent):
    def __init__(self, context: object, worker: str, think: float) -> None:
        super().__init__(context)  # type: ignore[arg-type]
        self.worker = worker
        self.think = think

    @handler
    async def on_turn(self, message: Turn, ctx: Envelope) -> None:
        if self.think:
            await asyncio.sleep(self.think)  # stands in for the model call
        lines = [*message.lines, f"{message.n}:{self.id.key}"]
        n = message.n + 1
        if n == message.turns:
            done = ChatDone(chat=message.chat, lines=lines, worker=self.worker)
            await self.context.tell(done, AgentId("collector", message.reply_to))
            return
        turn = message.model_copy(update={"n": n, "lines": lines})
        await self.context.tell(turn, AgentId("player", f"{message.chat}.{n % message.seats}"))


def setup(runtime: Runtime) -> None:
    """Worker side: host chats and players."""
    import os

    register_messages(runtime)
    runtime.register("chat", Chat)
    worker = str(os.getpid())
    runtime.register("player", lambda ctx: Player(ctx, worker, 0.002))
