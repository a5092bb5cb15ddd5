"""The group chat's errors: `GroupChatError` and its branch, all `ValueError`s as AutoGen's are.

The whole tree is drawn once, in `moot.runtime._errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moot.runtime import ConfigError, MootError

if TYPE_CHECKING:
    from collections.abc import Sequence


class GroupChatError(MootError, ValueError):
    """A group chat cannot be built or run as configured."""


class GroupChatConfigError(GroupChatError, ConfigError):
    """A `GroupChat`, policy, selector or termination setting has an unusable value."""


class AgentNameConflictError(GroupChatError):
    """Two or more agents of one group share a name, so a name cannot pick one of them."""

    def __init__(self, message: str, *, names: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.names = tuple(names)


class UndefinedNextAgentError(GroupChatError):
    """The agents offered as next speakers are none of the group's agents."""

    def __init__(self, message: str, *, names: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.names = tuple(names)


class NoEligibleSpeakerError(GroupChatError):
    """Nobody may speak next (the transitions or the policy leave no candidate); the chat ends."""


class SpeakerSelectionError(GroupChatError):
    """A policy named a speaker that is not a candidate (a bug in the policy or its config)."""


class ChatAlreadyFinishedError(GroupChatError):
    """The journaled chat has finished: there is nothing to resume (read its transcript)."""

    def __init__(self, message: str, *, chat_id: str) -> None:
        super().__init__(message)
        self.chat_id = chat_id


class ChatWaitingForInputError(GroupChatError):
    """The journaled chat asked a human and no answer is here: it waits in the journal.

    Answer it from any process (`moot chats answer ID TEXT`, or `answer_input(token, text)`
    on the store), then resume the chat by its id.
    """

    def __init__(self, message: str, *, chat_id: str, token: str, prompt: str) -> None:
        super().__init__(message)
        self.chat_id = chat_id
        self.token = token
        self.prompt = prompt
