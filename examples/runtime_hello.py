"""A tour of the moot runtime in one screen: request/response, pub/sub, deadlines, supervision.

python examples/runtime_hello.py
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from moot.runtime import (
    Agent,
    AgentId,
    DeadlineExceededError,
    Envelope,
    HandlerError,
    Runtime,
    TopicId,
    TypeSubscription,
    handler,
)


@dataclass
class Question:
    text: str


@dataclass
class Announcement:
    text: str


@dataclass
class SlowQuestion:
    seconds: float


class Oracle(Agent):
    """Answers questions; an announcement on its topic makes it tell the scribe."""

    @handler
    async def on_question(self, message: Question, ctx: Envelope) -> str:
        if not message.text.endswith("?"):
            raise ValueError("that is not a question")
        return f"{self.id.key} says: 42 is the answer to {message.text!r}"

    @handler
    async def on_slow(self, message: SlowQuestion, ctx: Envelope) -> str:
        await asyncio.sleep(message.seconds)
        return "finally"

    @handler
    async def on_announcement(self, message: Announcement, ctx: Envelope) -> None:
        note = f"{self.id} heard {message.text!r} from {ctx.sender}"
        await self.context.tell(note, AgentId("scribe", "log"))


class Scribe(Agent):
    """Keeps a log of what it is told."""

    lines: list[str] = []  # noqa: RUF012

    @handler
    async def on_text(self, message: str, ctx: Envelope) -> None:
        Scribe.lines.append(message)

    @handler
    async def on_question(self, message: Question, ctx: Envelope) -> list[str]:
        return list(Scribe.lines)


async def main() -> None:
    async with Runtime() as rt:
        rt.register("oracle", Oracle)
        rt.register("scribe", Scribe)
        rt.subscribe(TypeSubscription("news", "oracle"))

        delphi = AgentId("oracle", "delphi")
        print("send  ->", await rt.send(Question("what is six times seven?"), delphi))
        try:
            await rt.send(Question("no question mark"), delphi)
        except HandlerError as exc:
            print("error ->", type(exc).__name__, "caused by", repr(exc.__cause__))
        try:
            await rt.send(SlowQuestion(5), delphi, timeout=0.05)
        except DeadlineExceededError as exc:
            print("late  ->", type(exc).__name__, exc)

        await rt.publish(Announcement("the library opens at nine"), TopicId("news", "delphi"))
        await rt.publish(Announcement("and closes at five"), TopicId("news", "dodona"))
        await asyncio.sleep(0.01)
        print("log   ->", await rt.send(Question("what happened?"), AgentId("scribe", "log")))
        stats = rt.statistics()
        print(
            f"stats -> accepted={stats.accepted} handled={stats.handled} errored={stats.errored}"
            f" dead_lettered={stats.dead_lettered} live_agents={stats.live_agents}"
        )


if __name__ == "__main__":
    asyncio.run(main())
