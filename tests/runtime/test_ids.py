"""AgentId and TopicId validate their parts and behave as values."""

from __future__ import annotations

import pytest

from moot.runtime import AgentId, InvalidIdError, TopicId


def test_agent_id_round_trips_through_str() -> None:
    agent_id = AgentId("coder", "chat/1")
    assert str(agent_id) == "coder/chat/1"
    assert AgentId.parse(str(agent_id)) == agent_id
    assert hash(agent_id) == hash(AgentId("coder", "chat/1"))


@pytest.mark.parametrize("bad", ["", "1abc", "has space", "a*b", 3])
def test_invalid_agent_type_is_a_typed_error(bad: object) -> None:
    with pytest.raises(InvalidIdError, match="agent type"):
        AgentId(bad, "k")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "line\nbreak"])
def test_invalid_key_is_a_typed_error(bad: str) -> None:
    with pytest.raises(InvalidIdError, match="key"):
        AgentId("ok", bad)


def test_parse_needs_a_slash() -> None:
    with pytest.raises(InvalidIdError, match="type/key"):
        AgentId.parse("nokey")


def test_topic_id_validates() -> None:
    assert str(TopicId("news", "chat-1")) == "news/chat-1"
    with pytest.raises(InvalidIdError):
        TopicId("", "x")
    with pytest.raises(InvalidIdError):
        TopicId("news", "")
