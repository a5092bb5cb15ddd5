"""Nested chats: an agent answers by running a queue of chats of its own (AutoGen's
`register_nested_chats`), for example asking a critic, or a whole group, before it replies.

The queue runs with `a_initiate_chats`, so each chat gets the earlier summaries as carryover,
and the agent's reply is the last chat's summary.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import AgentConfigError

if TYPE_CHECKING:
    from ._conversable import ConversableAgent, Trigger

NestedReply = Callable[..., Any]
"""`fn(chat_queue, recipient, messages, sender, config) -> (final, reply)`, sync or async."""


def register_nested_chats(
    agent: ConversableAgent,
    chat_queue: Sequence[Mapping[str, Any]],
    trigger: Trigger,
    reply_func_from_nested_chats: str | NestedReply = "summary_from_nested_chats",
    position: int = 2,
) -> None:
    """Make `agent` answer senders matching `trigger` by running `chat_queue` (each entry has a
    `recipient` and `a_initiate_chat`'s options). The first chat's `message` defaults to the
    message being answered; a callable `message` gets `(recipient, messages, sender, config)`.

    Raises:
        AgentConfigError: the queue is empty or an entry has no recipient.
    """
    queue = [dict(entry) for entry in chat_queue]
    if not queue:
        raise AgentConfigError("register_nested_chats needs at least one chat in the queue")
    for number, entry in enumerate(queue):
        if "recipient" not in entry:
            raise AgentConfigError(f"nested chat #{number} has no recipient")
    if callable(reply_func_from_nested_chats):
        custom = reply_func_from_nested_chats
    elif reply_func_from_nested_chats == "summary_from_nested_chats":
        custom = None
    else:
        raise AgentConfigError(
            "reply_func_from_nested_chats must be 'summary_from_nested_chats' or a callable;"
            f" got {reply_func_from_nested_chats!r}"
        )

    async def summary_from_nested_chats(
        recipient: ConversableAgent,
        messages: list[dict[str, Any]],
        sender: ConversableAgent | None,
        config: Any,
    ) -> tuple[bool, Any]:
        if custom is not None:
            made = custom(queue, recipient, messages, sender, config)
            result: tuple[bool, Any] = await made if inspect.isawaitable(made) else made
            return result
        chats = [dict(entry) for entry in queue]
        first = chats[0].get("message")
        if first is None:
            chats[0]["message"] = (messages[-1].get("content") if messages else "") or ""
        elif callable(first):
            made = first(recipient, messages, sender, config)
            chats[0]["message"] = await made if inspect.isawaitable(made) else made
        results = await recipient.a_initiate_chats(chats)
        return True, results[-1].summary if results else None

    agent.register_reply(trigger, summary_from_nested_chats, position=position)
