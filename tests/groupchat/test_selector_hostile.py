"""Hostile selector answers (issue 17, item 10): deep JSON never raises, the chat goes on."""

from __future__ import annotations

from typing import Any

from moot.agents import ConversableAgent
from moot.groupchat import GroupChat, GroupChatManager, parse_names
from moot.testing import ScriptedModelServer

CANDIDATES = ["planner", "coder"]


def test_json_nested_a_hundred_thousand_levels_is_no_answer_not_a_recursion_error() -> None:
    deep_object = '{"speaker": ' * 100_000 + '"coder"' + "}" * 100_000
    deep_array = "{" + '"speaker": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert parse_names(deep_object, CANDIDATES) == ("coder",)  # read as text, name found
    assert parse_names(deep_array, CANDIDATES) == ()
    assert parse_names('```json\n{"speaker": "planner"}\n```', CANDIDATES) == ("planner",)


def test_brackets_inside_json_strings_do_not_count_as_depth() -> None:
    answer = '{"why": "' + "[{" * 500 + '\\"", "speaker": "coder"}'
    assert parse_names(answer, CANDIDATES) == ("coder",)


async def test_a_selector_answering_deep_json_does_not_kill_the_chat() -> None:
    deep = '{"speaker": ' * 100_000 + '"nobody"' + "}" * 100_000
    with ScriptedModelServer() as server:
        server.push(deep, deep, deep, "Code written. TERMINATE")  # 3 tries, then round robin
        config: dict[str, Any] = {"config_list": server.config_list()}
        planner = ConversableAgent("planner", llm_config=config, human_input_mode="NEVER")
        coder = ConversableAgent("coder", llm_config=config, human_input_mode="NEVER")
        group = GroupChat(agents=[planner, coder], max_round=3, speaker_selection_method="auto")
        manager = GroupChatManager(group, llm_config=config)

        result = await planner.a_initiate_chat(manager, message="Plan and code.", silent=True)

        server.assert_script_consumed()

    assert [m["content"] for m in result.chat_history] == [
        "Plan and code.",
        "Code written. TERMINATE",
    ]
    assert result.chat_history[1]["name"] == "coder"
