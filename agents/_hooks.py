"""AutoGen's hooks: functions an agent calls at fixed points of sending and replying.

- `process_message_before_send(sender=, message=, recipient=, silent=) -> message`: every message
  the agent sends (its first message and each reply) passes through these, in order.
- `update_agent_state(agent, messages) -> None`: before the agent replies (to update its system
  message from the conversation, say).
- `process_last_received_message(content) -> content`: the text of the last message, as the
  reply functions see it (the history itself keeps the original).
- `process_all_messages_before_reply(messages) -> messages`: the whole list the reply functions see.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._errors import AgentConfigError

if TYPE_CHECKING:
    from ._conversable import ConversableAgent
    from ._participant import Message

Hook = Callable[..., Any]
HOOKABLE = (
    "process_last_received_message",
    "process_all_messages_before_reply",
    "process_message_before_send",
    "update_agent_state",
)


def _takes_sender(hook: Hook) -> bool:
    """Older AutoGen called send hooks without `sender`; such a hook is called that way."""
    try:
        parameters = inspect.signature(hook).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "sender" or p.kind is p.VAR_KEYWORD for p in parameters)


class Hooks:
    """An agent's hooks by hookable point; empty lists cost a single check on the hot path."""

    __slots__ = ("_senders", "before_reply", "before_send", "lists")

    def __init__(self) -> None:
        self.lists: dict[str, list[Hook]] = {name: [] for name in HOOKABLE}
        self._senders: dict[int, bool] = {}
        self.before_send = False  # any send hooks (read on every turn, so kept as a flag)
        self.before_reply = False  # any of the three reply-side hooks

    def register(self, hookable_method: str, hook: Hook) -> None:
        """Raises:
        AgentConfigError: an unknown hookable point, a hook that is not callable, or one that is
            registered there already."""
        hooks = self.lists.get(hookable_method)
        if hooks is None:
            raise AgentConfigError(
                f"{hookable_method!r} is not a hookable method; choose one of {list(HOOKABLE)}"
            )
        if not callable(hook):
            raise AgentConfigError(f"a hook must be callable; got {type(hook).__name__}")
        if hook in hooks:
            raise AgentConfigError(f"{hook!r} is already registered for {hookable_method!r}")
        hooks.append(hook)
        if hookable_method == "process_message_before_send":
            self._senders[id(hook)] = _takes_sender(hook)
            self.before_send = True
        else:
            self.before_reply = True

    def process_before_send(
        self,
        sender: ConversableAgent,
        message: Any,
        recipient: ConversableAgent | None,
        silent: bool,
    ) -> Any:
        for hook in self.lists["process_message_before_send"]:
            if self._senders.get(id(hook), True):
                message = hook(sender=sender, message=message, recipient=recipient, silent=silent)
            else:
                message = hook(message=message, recipient=recipient, silent=silent)
        return message

    def process_before_reply(
        self, agent: ConversableAgent, messages: list[Message]
    ) -> list[Message]:
        """The messages the reply functions see, after the three reply-side hook points."""
        for update in self.lists["update_agent_state"]:
            update(agent, messages)
        messages = self._process_last(messages)
        for hook in self.lists["process_all_messages_before_reply"]:
            messages = hook(messages)
        return messages

    def _process_last(self, messages: list[Message]) -> list[Message]:
        hooks = self.lists["process_last_received_message"]
        if not hooks or not messages:
            return messages
        last = messages[-1]
        content = last.get("content")
        if "function_call" in last or not isinstance(content, str | list) or content == "exit":
            return messages
        processed = content
        for hook in hooks:
            processed = hook(processed)
        if processed == content:
            return messages
        return [*messages[:-1], {**last, "content": processed}]
