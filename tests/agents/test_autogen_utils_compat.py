"""AutoGen's utilities and chat-queue surface (issue 12): content helpers, usage summary,
runtime logging, IOStream, run(), sequential and nested chats — against the scripted server."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from moot.agents import (
    AgentConfigError,
    AssistantAgent,
    ConversableAgent,
    IOStream,
    UserProxyAgent,
    a_initiate_chats,
    content_str,
    gather_usage_summary,
    initiate_chats,
    parse_tags_from_content,
    runtime_logging,
)

if TYPE_CHECKING:
    from pathlib import Path

    from moot.testing import ScriptedModelServer


def fixed(name: str, reply: str) -> ConversableAgent:
    """An agent without a model that always answers `reply`."""
    made = ConversableAgent(name, llm_config=False, human_input_mode="NEVER")
    made.register_reply([ConversableAgent, None], lambda r, m, s, c: (True, reply))
    return made


def user() -> UserProxyAgent:
    return UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)


class Capture(IOStream):
    def __init__(self) -> None:
        self.printed: list[str] = []

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", flush: bool = False) -> None:
        self.printed.append(sep.join(map(str, objects)))

    def input(self, prompt: str = "", *, password: bool = False) -> str:
        return "typed"


def test_content_str_joins_text_and_marks_media() -> None:
    assert content_str(None) == ""
    assert content_str("plain") == "plain"
    parts = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "http://x/a.png"}},
        {"type": "text", "text": "here"},
    ]
    assert content_str(parts) == "look\n<image>\nhere"
    with pytest.raises(TypeError):
        content_str(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown"):
        content_str([{"type": "hologram"}])


def test_parse_tags_reads_sources_and_quoted_attributes() -> None:
    found = parse_tags_from_content("img", "see <img http://x/a.png> and <img /tmp/b c.png>")
    assert [tag["attr"] for tag in found] == [{"src": "http://x/a.png"}, {"src": "/tmp/b c.png"}]
    assert found[0]["tag"] == "img"
    assert found[0]["match"].group(0) == "<img http://x/a.png>"
    audio = parse_tags_from_content("audio", '<audio text="Hello there" voice="alto">')
    assert audio[0]["attr"] == {"text": "Hello there", "voice": "alto"}
    parts = [{"type": "text", "text": "<img a.png>"}, {"type": "image_url", "image_url": {}}]
    assert parse_tags_from_content("img", parts)[0]["attr"] == {"src": "a.png"}
    with pytest.raises(ValueError, match="str or a list"):
        parse_tags_from_content("img", 3)  # type: ignore[arg-type]


def test_gather_usage_summary_has_autogens_shape(server: ScriptedModelServer) -> None:
    empty = gather_usage_summary([fixed("a", "x")])
    assert empty == {
        "usage_including_cached_inference": {"total_cost": 0},
        "usage_excluding_cached_inference": {"total_cost": 0},
    }
    server.push("4. TERMINATE")
    config = {"config_list": server.config_list(model="gpt-4o", price=[0.01, 0.02])}
    assistant = AssistantAgent("a", llm_config=config)
    user().initiate_chat(assistant, message="2+2?", silent=True)
    summary = gather_usage_summary([assistant])
    model = summary["usage_including_cached_inference"]["gpt-4o"]
    assert set(model) == {"cost", "prompt_tokens", "completion_tokens", "total_tokens"}
    assert summary["usage_including_cached_inference"]["total_cost"] == pytest.approx(model["cost"])
    assert model["total_tokens"] > 0


def test_runtime_logging_to_sqlite_records_agents_completions_and_events(
    server: ScriptedModelServer,
) -> None:
    server.push("Hi. TERMINATE")
    session = runtime_logging.start(config={"dbname": ":memory:"})
    try:
        assistant = AssistantAgent(
            "helper", llm_config={"config_list": server.config_list(price=[0.01, 0.02])}
        )
        user().initiate_chat(assistant, message="hello", silent=True)
        db = runtime_logging.get_connection()
        assert db is not None
        agents = db.execute("SELECT name, class, session_id FROM agents").fetchall()
        assert ("helper", "AssistantAgent", session) in agents
        rows = db.execute("SELECT source_name, request, response, cost FROM chat_completions")
        source, request, response, cost = rows.fetchone()
        assert source == "helper"
        assert json.loads(request)["messages"][-1]["content"] == "hello"
        assert json.loads(response)["content"] == "Hi. TERMINATE"
        assert cost > 0
        events = db.execute("SELECT event_name, source_name, json_state FROM events").fetchall()
        assert ("received_message", "helper") in [row[:2] for row in events]
        assert json.loads(events[0][2])["message"] == "hello"
        (init_args,) = db.execute("SELECT init_args FROM agents WHERE name = 'helper'").fetchone()
        assert json.loads(init_args)["name"] == "helper"
        assert "api_key" not in init_args  # secrets stay out of the log
    finally:
        runtime_logging.stop()
    assert runtime_logging.get_connection() is None
    assert not runtime_logging.logging_enabled()


def test_a_file_logger_records_autogens_keys(tmp_path: Path) -> None:
    logger = runtime_logging.FileLogger({"filename": str(tmp_path / "own.log")})
    assert len(logger.start()) == 36
    source = fixed("tester", "x")
    logger.log_event(source, "checked", key="value")
    logger.log_function_use(source, sorted, {"x": 1}, [1])
    logger.log_chat_completion("inv", 1, 2, source, {"messages": []}, "ok", 0, 0.5, "t0")
    logger.stop()
    event, call, completion = [
        json.loads(line) for line in (tmp_path / "own.log").read_text().splitlines()
    ]
    assert (event["event_name"], event["json_state"]) == ("checked", json.dumps({"key": "value"}))
    assert (call["function_name"], call["input_args"]) == ("sorted", json.dumps({"x": 1}))
    assert (completion["source_name"], completion["cost"]) == ("tester", 0.5)


def test_runtime_logging_to_a_file_writes_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "runtime.log"
    runtime_logging.start(logger_type="file", config={"filename": str(path)})
    try:
        fixed("a", "x")
    finally:
        runtime_logging.stop()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["agent_name"] == "a"
    assert isinstance(lines[0]["thread_id"], int)
    with pytest.raises(AgentConfigError):
        runtime_logging.start(logger_type="carrier-pigeon")  # type: ignore[arg-type]


def test_iostream_set_default_captures_agent_output() -> None:
    capture = Capture()
    with IOStream.set_default(capture):
        assert IOStream.get_default() is capture
        user().initiate_chat(fixed("a", "hello back. TERMINATE"), message="hi", max_turns=1)
    assert any("hello back" in text for text in capture.printed)
    assert IOStream.get_default() is not capture


async def test_iostream_answers_console_input() -> None:
    asker = ConversableAgent("asker", llm_config=False, human_input_mode="ALWAYS")
    with IOStream.set_default(Capture()):
        answer = await asker.a_get_human_input("your name? ")
    assert answer == "typed"


def test_run_returns_messages_summary_and_process(server: ScriptedModelServer) -> None:
    server.push("Paris. TERMINATE")
    assistant = AssistantAgent("geo", llm_config={"config_list": server.config_list()})
    response = assistant.run(message="Capital of France?", max_turns=1)
    assert response.summary == "Paris."
    assert [m["content"] for m in response.messages] == ["Capital of France?", "Paris. TERMINATE"]
    capture = Capture()
    with IOStream.set_default(capture):
        response.process()
    assert any("Paris" in text for text in capture.printed)


def test_sequential_chats_take_per_entry_senders_and_exclusions() -> None:
    first, second, third = fixed("f", "one"), fixed("s", "two"), fixed("t", "three")
    me, other = user(), UserProxyAgent("other", human_input_mode="NEVER")
    results = initiate_chats(
        [
            {"sender": me, "recipient": first, "message": "a", "max_turns": 1, "silent": True},
            {"sender": other, "recipient": second, "message": "b", "max_turns": 1, "silent": True},
            {
                "sender": me,
                "recipient": third,
                "message": "c",
                "max_turns": 1,
                "silent": True,
                "carryover": "given",
                "finished_chat_indexes_to_exclude_from_carryover": [0],
            },
        ]
    )
    assert [r.summary for r in results] == ["one", "two", "three"]
    assert results[1].chat_history[0]["name"] == "other"
    assert results[2].chat_history[0]["content"] == "c\nContext: \ngiven\ntwo"
    with pytest.raises(AgentConfigError, match="no sender"):
        initiate_chats([{"recipient": first, "message": "x"}])


async def test_async_chats_follow_prerequisites_and_key_results_by_chat_id() -> None:
    me = user()
    a, b, c = fixed("a", "A"), fixed("b", "B"), fixed("c", "C")
    results = await me.a_initiate_chats(
        [
            {"chat_id": 1, "recipient": a, "message": "first", "max_turns": 1, "silent": True},
            {"chat_id": 2, "recipient": b, "message": "second", "max_turns": 1, "silent": True},
            {
                "chat_id": 3,
                "prerequisites": [1, 2],
                "recipient": c,
                "message": "third",
                "max_turns": 1,
                "silent": True,
            },
        ]
    )
    assert isinstance(results, dict)
    assert {key: r.summary for key, r in results.items()} == {1: "A", 2: "B", 3: "C"}
    assert results[3].chat_history[0]["content"] == "third\nContext: \nA\nB"
    with pytest.raises(AgentConfigError, match="cycle"):
        await a_initiate_chats(
            [
                {"sender": me, "chat_id": 1, "prerequisites": [2], "recipient": a},
                {"sender": me, "chat_id": 2, "prerequisites": [1], "recipient": b},
            ]
        )
    with pytest.raises(AgentConfigError, match="chat_id"):
        await a_initiate_chats(
            [{"sender": me, "recipient": a}, {"sender": me, "chat_id": 1, "recipient": b}]
        )


async def test_register_nested_chats_as_a_method_sync_and_async() -> None:
    critic, editor = fixed("critic", "too long"), fixed("editor", "cut it")
    writer = ConversableAgent("writer", llm_config=False, human_input_mode="NEVER")
    writer.register_nested_chats(
        [
            {"recipient": critic, "max_turns": 1, "summary_method": "last_msg"},
            {
                "recipient": editor,
                "message": lambda r, m, s, c: "fix: " + m[-1]["content"],
                "max_turns": 1,
            },
        ],
        trigger=lambda sender: sender is not None and sender.name == "user",
    )
    result = await user().a_initiate_chat(writer, message="my essay", max_turns=1, silent=True)
    assert result.chat_history[-1]["content"] == "cut it"

    reviewer = ConversableAgent("reviewer", llm_config=False, human_input_mode="NEVER")
    reviewer.register_nested_chats(
        [
            {"chat_id": 1, "recipient": critic, "max_turns": 1},
            {
                "chat_id": 2,
                "recipient": editor,
                "message": "tighten",
                "prerequisites": [1],
                "max_turns": 1,
            },
        ],
        trigger=UserProxyAgent,
        use_async=True,
    )
    result = await user().a_initiate_chat(reviewer, message="draft", max_turns=1, silent=True)
    assert result.chat_history[-1]["content"] == "cut it"
    with pytest.raises(AgentConfigError, match="chat_id"):
        reviewer.register_nested_chats([{"recipient": critic}], trigger=None, use_async=True)


def test_a_queue_with_an_unusable_summary_is_refused_before_any_chat_runs() -> None:
    me, answered = user(), fixed("a", "x")
    calls: list[str] = []

    def counted(r: Any, m: Any, s: Any, c: Any) -> tuple[bool, str]:
        calls.append("x")
        return True, "x"

    answered.register_reply([ConversableAgent, None], counted)
    first = {"recipient": answered, "message": "hi", "max_turns": 1, "silent": True}
    with pytest.raises(AgentConfigError, match="summary_method"):
        me.initiate_chats([first, {**first, "summary_method": "llm"}])
    with pytest.raises(AgentConfigError, match="needs a model"):
        me.initiate_chats([first, {**first, "summary_method": "reflection_with_llm"}])
    assert calls == []


async def test_a_run_gives_awaitable_fields_and_an_async_process(
    server: ScriptedModelServer,
) -> None:
    server.push("Rome. TERMINATE")
    assistant = AssistantAgent("geo", llm_config={"config_list": server.config_list()})
    response = await assistant.a_run(message="Capital of Italy?", max_turns=1)
    assert await response.summary == "Rome."
    assert [m["content"] for m in await response.messages][-1] == "Rome. TERMINATE"
    assert await response.last_speaker == "geo"
    capture = Capture()
    with IOStream.set_default(capture):
        await response.process()
    assert any("Rome" in text for text in capture.printed)
