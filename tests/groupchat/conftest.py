"""Fixtures for the group-chat tests: chat states to run policies and terminations against."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from moot.groupchat import GroupChatState

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


@pytest.fixture
def make_chat() -> Callable[..., GroupChatState]:
    """Build a chat's state with a history of (speaker, content) pairs."""

    def make(
        participants: Sequence[str] = ("planner", "coder", "reviewer"),
        history: Sequence[tuple[str, str]] = (),
        *,
        last_speaker: str | None = None,
        chat_id: str = "chat-1",
        **kwargs: Any,
    ) -> GroupChatState:
        chat = GroupChatState(chat_id, tuple(participants), clock=time.monotonic, **kwargs)
        for name, content in history:
            chat.messages.append({"role": "user", "name": name, "content": content})
        if history:
            chat.last_speaker = history[-1][0]
        if last_speaker is not None:
            chat.last_speaker = last_speaker
        return chat

    return make
