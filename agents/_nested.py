"""Nested chats: an agent answers by running a queue of chats of its own (AutoGen's
`register_nested_chats`), for example asking a critic, or a whole group, before it replies.

The queue runs as sequential chats, so each chat gets the earlier summaries as carryover, and
the agent's reply is the last chat's summary.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import AgentConfigError
from ._sequential import run_by_prerequisites, run_in_order

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
    *,
    use_async: bool | None = None,
) -> None:
    """Make `agent` answer senders matching `trigger` by running `chat_queue` (each entry has a
    `recipient` and `a_initiate_chat`'s options; its `sender` defaults to `agent`). The first
    chat's `message` defaults to the message being answered; a callable `message` gets
    `(recipient, messages, sender, config)`; a chat whose message comes out empty is skipped.
    With `use_async` the entries need `chat_id`s and run by their `prerequisites`.
    The reply is the last chat's summary.

    Raises:
        AgentConfigError: the queue is empty, an entry has no recipient, or `use_async` is set
            and an entry has no chat_id.
    """
    queue = [dict(entry) for entry in chat_queue]
    if not queue:
        raise AgentConfigError("register_nested_chats needs at least one chat in the queue")
    for number, entry in enumerate(queue):
        if "recipient" not in entry:
            raise AgentConfigError(f"nested chat #{number} has no recipient")
        if use_async and "chat_id" not in entry:
            raise AgentConfigError(
                f"chat_id is required for async nested chats (nested chat #{number} has none)"
            )
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
        chats = await _chats_to_run(queue, recipient, messages, sender, config)
        if not chats:
            return True, None
        if use_async:
            by_id = await run_by_prerequisites(chats, sender=recipient)
            return True, by_id[chats[-1]["chat_id"]].summary
        results = await run_in_order(chats, sender=recipient)
        return True, results[-1].summary

    agent.register_reply(trigger, summary_from_nested_chats, position=position)


async def _chats_to_run(
    queue: Sequence[Mapping[str, Any]],
    recipient: ConversableAgent,
    messages: list[dict[str, Any]],
    sender: ConversableAgent | None,
    config: Any,
) -> list[dict[str, Any]]:
    """The queue's chats with their messages made; chats left without a message are dropped."""
    last = messages[-1].get("content") if messages else None
    chats = []
    for number, entry in enumerate(queue):
        chat = dict(entry)
        message = chat.get("message")
        if message is None and number == 0:
            message = last
        if callable(message):
            made = message(recipient, messages, sender, config)
            message = await made if inspect.isawaitable(made) else made
        if message:
            chat["message"] = message
            chats.append(chat)
    return chats
