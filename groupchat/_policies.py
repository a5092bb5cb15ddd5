"""Speaker-selection policies: who speaks next in a group chat.

Every policy implements one method, `select(chat, candidates)`, and answers a candidate's name or
`NoSpeaker(reason)` to end the chat. `candidates` is who may legally speak now; a policy that
restricts it (`TransitionGraph`, `Handoffs`) narrows the list and asks the policy it wraps, so
`TransitionGraph(graph, then=LLMSelector())` means "the graph decides who may, the model picks".

Policy objects hold no per-chat state of their own: what they remember for one chat lives in
`chat.scratch`, so one policy object serves any number of concurrent chats.
"""

from __future__ import annotations

import abc
import inspect
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import structlog

from ._errors import GroupChatConfigError, SpeakerSelectionError
from ._state import (
    HANDOFF_PREFIX,
    GroupChatState,
    NoSpeaker,
    content_text,
    handoff_target,
)

log = structlog.get_logger("moot.agents.groupchat")

Selection = str | NoSpeaker
AskHuman = Callable[[str], Awaitable[str]]


class SpeakerPolicy(abc.ABC):
    """Picks the next speaker among `candidates` (names, in the group's order, never empty)."""

    @abc.abstractmethod
    async def select(self, chat: GroupChatState, candidates: Sequence[str]) -> Selection:
        """A name from `candidates`, or `NoSpeaker` to end the chat."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def next_in_order(
    participants: Sequence[str], last: str | None, candidates: Sequence[str]
) -> str | None:
    """The first candidate after `last` in the group's order, wrapping around.

    When `last` is not a participant (say, the user who opened the chat), the first candidate.
    """
    if not candidates:
        return None
    allowed = candidates if len(candidates) < 8 else frozenset(candidates)
    try:
        start = participants.index(last) + 1 if last is not None else 0
    except ValueError:
        start = 0
    count = len(participants)
    for offset in range(count):
        name = participants[(start + offset) % count]
        if name in allowed:
            return name
    return candidates[0]


class RoundRobin(SpeakerPolicy):
    """Each participant in turn, in the group's order, skipping those who may not speak."""

    async def select(self, chat: GroupChatState, candidates: Sequence[str]) -> Selection:
        name = next_in_order(chat.participants, chat.last_speaker, candidates)
        return NoSpeaker("no participant may speak") if name is None else name


class RandomPolicy(SpeakerPolicy):
    """A uniformly random candidate. With `seed`, each chat draws the same sequence on every run
    (the chat id is mixed into the seed, so concurrent chats do not share one generator)."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    async def select(self, chat: GroupChatState, candidates: Sequence[str]) -> Selection:
        rng = chat.scratch.get(self)
        if rng is None:
            rng = random.Random(None if self.seed is None else f"{self.seed}:{chat.chat_id}")
            chat.scratch[self] = rng
        choice: str = rng.choice(list(candidates))
        return choice

    def __repr__(self) -> str:
        return f"RandomPolicy(seed={self.seed!r})"


class ScriptedPolicy(SpeakerPolicy):
    """A fake for tests: the speakers in the order given, then `NoSpeaker`.

    Raises (from `select`):
        SpeakerSelectionError: the script names someone who may not speak now.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)

    async def select(self, chat: GroupChatState, candidates: Sequence[str]) -> Selection:
        position: int = chat.scratch.get(self, 0)
        if position >= len(self.names):
            return NoSpeaker(f"the script of {len(self.names)} speakers is used up")
        chat.scratch[self] = position + 1
        name = self.names[position]
        if name not in candidates:
            raise SpeakerSelectionError(
                f"ScriptedPolicy step {position} names {name!r}, who may not speak now;"
                f" candidates are {list(candidates)}"
            )
        return name

    def __repr__(self) -> str:
        return f"ScriptedPolicy({list(self.names)!r})"


class ManualPolicy(SpeakerPolicy):
    """A human picks, by number or name, through the chat's human input provider (or `ask`).

    An empty answer or "q" hands the choice to `fallback`; so do `max_attempts` answers that name
    nobody. The default fallback is `RoundRobin`, which is also what
    `GroupChat(speaker_selection_method="manual")` uses, as AutoGen's next agent in order.
    """

    def __init__(
        self,
        ask: AskHuman | None = None,
        *,
        fallback: SpeakerPolicy | None = None,
        max_attempts: int = 3,
    ) -> None:
        self.ask = ask
        self.fallback = fallback or RoundRobin()
        self.max_attempts = max_attempts

    async def select(self, chat: GroupChatState, candidates: Sequence[str]) -> Selection:
        from ._selector import parse_names

        ask = self.ask or chat.ask_human
        if ask is None:
            raise SpeakerSelectionError(
                "manual speaker selection needs a human input provider: give the manager one,"
                " or pass `ask=` to ManualPolicy"
            )
        menu = "\n".join(f"{i}: {name}" for i, name in enumerate(candidates, start=1))
        prompt = (
            f"Choose who speaks next:\n{menu}\n"
            "Enter a number or a name (nothing or 'q' lets the group decide): "
        )
        for _ in range(self.max_attempts):
            answer = (await ask(prompt)).strip()
            if answer in ("", "q", "Q"):
                break
            if answer.isdigit() and 1 <= int(answer) <= len(candidates):
                return candidates[int(answer) - 1]
            named = parse_names(answer, candidates)
            if len(named) == 1:
                return named[0]
            prompt = f"{answer!r} is not one of the choices. " + prompt
        return await self.fallback.select(chat, candidates)


class CallablePolicy(SpeakerPolicy):
    """AutoGen's callable `speaker_selection_method`: `fn(last_speaker, groupchat)` returns an
    agent, a method name ("auto", "round_robin", ...) to delegate to, or None to end the chat.

    The callable sees every participant, as in AutoGen; the methods it delegates to see only the
    legal candidates.
    """

    def __init__(
        self,
        fn: Callable[[Any, Any], Any],
        *,
        methods: Mapping[str, SpeakerPolicy] | None = None,
    ) -> None:
        self.fn = fn
        self.methods = dict(methods or {})

    async def select(self, chat: GroupChatState, candidates: Sequence[str]) -> Selection:
        last = chat.agents.get(chat.last_speaker) if chat.last_speaker is not None else None
        chosen = self.fn(last, chat.groupchat)
        if inspect.isawaitable(chosen):
            chosen = await chosen
        if chosen is None:
            return NoSpeaker("the speaker selection function returned None")
        if isinstance(chosen, str):
            policy = self.methods.get(chosen.lower())
            if policy is None:
                raise SpeakerSelectionError(
                    f"the speaker selection function returned {chosen!r}, which is not a method"
                    f" ({sorted(self.methods)}); return an agent, a method name, or None"
                )
            return await policy.select(chat, candidates)
        name = getattr(chosen, "name", None)
        if name not in chat.participants:
            raise SpeakerSelectionError(
                f"the speaker selection function returned {chosen!r}, which is not in the group"
            )
        return str(name)

    def __repr__(self) -> str:
        return f"CallablePolicy({getattr(self.fn, '__name__', self.fn)!r})"


class TransitionGraph(SpeakerPolicy):
    """Restricts who may follow whom, then lets `then` pick among the rest.

    `allowed` maps a speaker to those who may follow it (a speaker missing from the map may be
    followed by nobody); `disallowed` maps a speaker to those who may not. `allow_repeat` is
    True, False, or the names that may speak twice in a row. The opening turn, after someone
    outside the group, is unrestricted by the graph.
    """

    def __init__(
        self,
        allowed: Mapping[str, Iterable[str]] | None = None,
        *,
        disallowed: Mapping[str, Iterable[str]] | None = None,
        allow_repeat: bool | Iterable[str] = True,
        then: SpeakerPolicy | None = None,
    ) -> None:
        if allowed is not None and disallowed is not None:
            raise GroupChatConfigError(
                "give either allowed or disallowed transitions, not both", setting="disallowed"
            )
        self.allowed = None if allowed is None else {k: frozenset(v) for k, v in allowed.items()}
        self.disallowed = (
            None if disallowed is None else {k: frozenset(v) for k, v in disallowed.items()}
        )
        self.allow_repeat: bool | frozenset[str] = (
            allow_repeat if isinstance(allow_repeat, bool) else frozenset(allow_repeat)
        )
        self.then = then or RoundRobin()

    def restrict(self, chat: GroupChatState, candidates: Sequence[str]) -> list[str]:
        """The candidates the graph and the repeat rule allow after the last speaker."""
        last = chat.last_speaker
        if last is None or last not in chat.participants:
            return list(candidates)
        out = list(candidates)
        if self.allowed is not None:
            following = self.allowed.get(last, frozenset())
            out = [name for name in out if name in following]
        elif self.disallowed is not None:
            banned = self.disallowed.get(last, frozenset())
            out = [name for name in out if name not in banned]
        repeat = self.allow_repeat
        if repeat is False or (isinstance(repeat, frozenset) and last not in repeat):
            out = [name for name in out if name != last]
        return out

    async def select(self, chat: GroupChatState, candidates: Sequence[str]) -> Selection:
        legal = self.restrict(chat, candidates)
        if not legal:
            return NoSpeaker(
                f"no participant may speak after {chat.last_speaker}"
                " (the transition graph and repeat rule leave nobody)"
            )
        return await self.then.select(chat, legal)

    def __repr__(self) -> str:
        return f"TransitionGraph(then={self.then!r})"


class Handoffs(SpeakerPolicy):
    """The swarm pattern: an agent hands the turn to another by calling `transfer_to_<name>`.

    When the last message hands off to a legal candidate, that candidate speaks. Otherwise
    `then` decides; without `then`, the last speaker keeps the turn (or, if it may not, the
    next in order).
    """

    def __init__(self, then: SpeakerPolicy | None = None) -> None:
        self.then = then

    async def select(self, chat: GroupChatState, candidates: Sequence[str]) -> Selection:
        target = handoff_target(chat.last_message)
        if target is not None:
            if target in candidates:
                return target
            log.warning(
                "groupchat.handoff_refused",
                chat=chat.chat_id,
                target=target,
                candidates=len(candidates),
            )
        if self.then is not None:
            return await self.then.select(chat, candidates)
        last = chat.last_speaker
        if last is not None and last in candidates:
            return last
        name = next_in_order(chat.participants, last, candidates)
        return NoSpeaker("no participant may speak") if name is None else name


class FunctionCallFilter(SpeakerPolicy):
    """AutoGen's `func_call_filter`: after a tool call, only agents that can run it may speak."""

    def __init__(self, can_run: Mapping[str, Callable[[str], bool]], then: SpeakerPolicy) -> None:
        self.can_run = dict(can_run)
        self.then = then

    async def select(self, chat: GroupChatState, candidates: Sequence[str]) -> Selection:
        message = chat.last_message
        if not message or not (message.get("tool_calls") or message.get("function_call")):
            return await self.then.select(chat, candidates)  # the common case: no tool call
        calls = {c for c in _tool_names(message) if not c.startswith(HANDOFF_PREFIX)}
        if calls:
            able = [
                name
                for name in candidates
                if name in self.can_run and all(self.can_run[name](call) for call in calls)
            ]
            if not able:
                return NoSpeaker(
                    f"nobody can run the requested tool call(s) {sorted(calls)}"
                    f" among {list(candidates)}"
                )
            candidates = able
        return await self.then.select(chat, candidates)


def _tool_names(message: Mapping[str, Any] | None) -> set[str]:
    if not message:
        return set()
    names = set()
    for call in message.get("tool_calls") or ():
        function = call.get("function", call) if isinstance(call, Mapping) else {}
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            names.add(function["name"])
    function_call = message.get("function_call")
    if isinstance(function_call, Mapping) and isinstance(function_call.get("name"), str):
        names.add(function_call["name"])
    return names


def describe(message: Mapping[str, Any]) -> str:
    """A one-line text of a message, for prompts: its content or the tools it calls."""
    text = content_text(message)
    if text:
        return text
    names = _tool_names(message)
    return f"(calls {', '.join(sorted(names))})" if names else ""
