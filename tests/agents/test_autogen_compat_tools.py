"""Tools as AutoGen has them: `Tool`, stacked decorators, schemas in `llm_config`, the legacy
`functions` / `function_call` API, `execute_function`, and code executors by name."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import pytest

from moot.agents import (
    AgentConfigError,
    ConversableAgent,
    Tool,
    ToolRegistrationError,
    UserProxyAgent,
)
from moot.agents._code_execution import CodeExecution

if TYPE_CHECKING:
    from pathlib import Path

    from moot.testing import ScriptedModelServer

CELL = {"type": "string", "description": "Valid Python cell to execute."}


def _cfg(agent: ConversableAgent) -> dict[str, Any]:
    """The agent's llm_config dict (it has a model)."""
    config = agent.llm_config
    assert config is not False
    return config


def _python_schema(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": "run cell in ipython and return the execution result.",
        "parameters": {"type": "object", "properties": {"cell": CELL}, "required": ["cell"]},
    }


def _agents(llm_config: dict[str, Any], *names: str) -> list[ConversableAgent]:
    return [ConversableAgent(name, llm_config=llm_config) for name in names]


def test_tool_has_autogen_attributes_and_calls_its_function() -> None:
    def double(my_prop: str) -> str:
        return my_prop * 2

    tool = Tool(name="twice", description="Doubles a text.", func_or_tool=double)

    assert (tool.name, tool.description, tool.func) == ("twice", "Doubles a text.", double)
    assert tool("ab") == "abab"
    assert tool.tool_schema == {
        "type": "function",
        "function": {
            "name": "twice",
            "description": "Doubles a text.",
            "parameters": {
                "type": "object",
                "properties": {"my_prop": {"type": "string"}},
                "required": ["my_prop"],
            },
        },
    }
    with pytest.raises(ToolRegistrationError):
        Tool(func_or_tool="not a function")  # type: ignore[arg-type]


def test_stacked_register_for_llm_keep_the_inner_name_and_description(
    llm_config: dict[str, Any],
) -> None:
    agent1, agent2, agent3 = _agents(llm_config, "agent1", "agent2", "agent3")

    @agent3.register_for_llm()
    @agent2.register_for_llm(name="python")
    @agent1.register_for_llm(description="run cell in ipython and return the execution result.")
    def exec_python(cell: Annotated[str, "Valid Python cell to execute."]) -> str:
        return cell

    assert isinstance(exec_python, Tool)
    assert _cfg(agent1)["tools"] == [
        {"type": "function", "function": _python_schema("exec_python")}
    ]
    assert _cfg(agent2)["tools"] == [{"type": "function", "function": _python_schema("python")}]
    assert _cfg(agent3)["tools"] == _cfg(agent2)["tools"]
    assert [tool.name for tool in agent3.tools] == ["python"]


def test_api_style_function_lists_legacy_functions(llm_config: dict[str, Any]) -> None:
    (agent,) = _agents(llm_config, "agent")

    @agent.register_for_llm(
        description="run cell in ipython and return the execution result.", api_style="function"
    )
    def exec_python(cell: Annotated[str, "Valid Python cell to execute."]) -> str:
        return cell

    assert _cfg(agent)["functions"] == [_python_schema("exec_python")]
    assert "tools" not in _cfg(agent)
    with pytest.raises(ToolRegistrationError, match="api_style"):
        agent.register_for_llm(description="x", api_style="other")  # type: ignore[arg-type]


def test_register_for_execution_takes_and_returns_tools(llm_config: dict[str, Any]) -> None:
    (agent,) = _agents(llm_config, "agent")
    proxy_1, proxy_2 = UserProxyAgent("proxy_1"), UserProxyAgent("proxy_2")

    @proxy_2.register_for_execution(name="python")
    @agent.register_for_execution()
    @agent.register_for_llm(description="Run a cell.")
    @proxy_1.register_for_execution()
    def exec_python(cell: str) -> str:
        return cell

    assert agent.function_map == {"exec_python": exec_python.func}
    assert proxy_1.function_map == {"exec_python": exec_python.func}
    assert proxy_2.function_map == {"python": exec_python.func}
    assert _cfg(agent)["tools"][0]["function"]["description"] == "Run a cell."


def test_a_tool_without_any_description_is_refused(llm_config: dict[str, Any]) -> None:
    (agent,) = _agents(llm_config, "agent")

    def undocumented(x: int) -> int:
        return x

    with pytest.raises(ToolRegistrationError, match="description") as caught:
        agent.register_for_llm()(undocumented)
    assert isinstance(caught.value, ValueError)


def test_remove_tool_for_llm_and_update_tool_signature(llm_config: dict[str, Any]) -> None:
    (agent,) = _agents(llm_config, "agent")
    first = Tool(name="tool1", description="A test tool", func_or_tool=lambda x: x)
    second = Tool(name="tool2", description="A test tool", func_or_tool=lambda x: x)
    agent.register_for_llm()(first)
    agent.register_for_llm()(second)

    agent.remove_tool_for_llm(first)
    assert [t.name for t in agent.tools] == ["tool2"]
    assert [t["function"]["name"] for t in _cfg(agent)["tools"]] == ["tool2"]
    with pytest.raises(ToolRegistrationError, match="tool1"):
        agent.remove_tool_for_llm(first)

    agent.update_tool_signature("tool2", is_remove=True)
    assert "tools" not in _cfg(agent)
    agent.update_tool_signature({"type": "function", "function": {"name": "yo"}}, is_remove=False)
    with pytest.warns(UserWarning, match="'yo'"):
        agent.update_tool_signature(
            {"type": "function", "function": {"name": "yo", "description": "again"}},
            is_remove=False,
        )
    assert _cfg(agent)["tools"] == [
        {"type": "function", "function": {"name": "yo", "description": "again"}}
    ]


def test_update_function_signature_and_register_function(llm_config: dict[str, Any]) -> None:
    (agent,) = _agents(llm_config, "agent")

    def exec_python(cell: str) -> None:
        return None

    agent.update_function_signature(_python_schema("python"), is_remove=False)
    agent.update_function_signature({"name": "sh", "parameters": {}}, is_remove=False)
    assert {f["name"] for f in _cfg(agent)["functions"]} == {"python", "sh"}
    agent.update_function_signature("sh", is_remove=True)
    assert [f["name"] for f in _cfg(agent)["functions"]] == ["python"]

    agent.register_function(function_map={"python": exec_python, "sh": exec_python})
    assert agent.function_map == {"python": exec_python, "sh": exec_python}
    with pytest.warns(UserWarning, match="'sh'"):
        agent.register_function(function_map={"sh": exec_python})
    agent.register_function(function_map={"python": None})
    assert set(agent.function_map) == {"sh"}
    with pytest.raises(ToolRegistrationError, match="no llm_config"):
        ConversableAgent("bare", llm_config=False).update_function_signature("x", is_remove=True)


def test_legacy_functions_reach_the_model_as_tools(
    server: ScriptedModelServer, llm_config: dict[str, Any]
) -> None:
    server.push("Done. TERMINATE")
    config = {**llm_config, "functions": [_python_schema("python")]}
    assistant = ConversableAgent("assistant", llm_config=config, human_input_mode="NEVER")
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER")

    user.initiate_chat(assistant, message="run it", silent=True)

    body = server.requests[0].body
    assert "functions" not in body
    assert body["tools"] == [{"type": "function", "function": _python_schema("python")}]


def test_a_function_call_is_answered_with_a_function_role_message() -> None:
    def add_num(num_to_be_added: int) -> int:
        return num_to_be_added + 10

    agent = ConversableAgent(
        "user_proxy", llm_config=False, human_input_mode="NEVER", function_map={"add_num": add_num}
    )
    messages = [
        {
            "role": "assistant",
            "function_call": {"name": "add_num", "arguments": '{ "num_to_be_added": 5 }'},
        }
    ]

    reply = agent.generate_reply(messages=messages, sender=None)

    assert reply == {"name": "add_num", "role": "function", "content": "15"}
    assert agent.generate_function_call_reply(messages) == (True, reply)


def test_function_call_history_goes_to_the_model(server: ScriptedModelServer) -> None:
    server.push("It is 15. TERMINATE")
    config = {"config_list": server.config_list()}
    assistant = ConversableAgent("assistant", llm_config=config, human_input_mode="NEVER")
    runner = ConversableAgent(
        "runner",
        llm_config=False,
        human_input_mode="NEVER",
        max_consecutive_auto_reply=1,
        function_map={"add_num": lambda num_to_be_added: num_to_be_added + 10},
    )
    call = {"name": "add_num", "arguments": json.dumps({"num_to_be_added": 5})}

    assistant.initiate_chat(
        runner, message={"content": None, "function_call": call}, silent=True, max_turns=2
    )

    sent = server.requests[0].body["messages"]
    assert sent[1]["function_call"] == call
    assert sent[2] == {"role": "function", "name": "add_num", "content": "15"}


def test_execute_function_reports_success_and_failure() -> None:
    agent = ConversableAgent("agent", llm_config=False, function_map={"add": lambda a, b: a + b})

    ok, answer = agent.execute_function({"name": "add", "arguments": '{"a": 1, "b": 2}'})
    assert (ok, answer) == (True, {"name": "add", "role": "function", "content": "3"})

    ok, answer = agent.execute_function({"name": "missing", "arguments": "{}"}, call_id="c1")
    assert not ok
    assert answer["content"].startswith("Error:")
    assert answer["tool_call_id"] == "c1"

    ok, answer = agent.execute_function({"name": "add", "arguments": "not json"})
    assert not ok
    assert "not valid JSON" in answer["content"]


async def test_a_execute_function_runs_async_functions() -> None:
    async def fetch(key: str) -> str:
        return key.upper()

    agent = ConversableAgent("agent", llm_config=False, function_map={"fetch": fetch})
    ok, answer = await agent.a_execute_function({"name": "fetch", "arguments": '{"key": "k"}'})
    assert ok
    assert answer["content"] == "K"


def test_named_executors_and_their_options(tmp_path: Path) -> None:
    local = CodeExecution.from_config(
        {"executor": "commandline-local", "commandline-local": {"work_dir": str(tmp_path)}}
    )
    assert local is not None
    assert (local.use_docker, local.executor, local.work_dir) == (False, None, str(tmp_path))
    docker = CodeExecution.from_config({"executor": "docker"})
    assert docker is not None
    assert docker.use_docker
    with pytest.raises(AgentConfigError, match="unknown code executor"):
        CodeExecution.from_config({"executor": "jupyter-somewhere"})
    with pytest.raises(AgentConfigError, match="unknown option"):
        CodeExecution.from_config({"executor": "docker", "docker": {"image": "x"}})


@pytest.mark.parametrize(
    ("value", "docker"),
    [
        ("1", True),
        ("True", True),
        ("yes", True),
        ("t", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("F", False),
        ("None", False),
    ],
)
def test_autogen_use_docker_decides_when_use_docker_is_not_given(
    value: str, docker: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOGEN_USE_DOCKER", value)
    code = CodeExecution.from_config({"work_dir": "w"})
    assert code is not None
    assert code.use_docker is docker
    explicit = CodeExecution.from_config({"work_dir": "w", "use_docker": not docker})
    assert explicit is not None
    assert explicit.use_docker is not docker


def test_autogen_use_docker_defaults_to_docker_and_refuses_other_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AUTOGEN_USE_DOCKER", raising=False)
    code = CodeExecution.from_config({})
    assert code is not None
    assert code.use_docker
    monkeypatch.setenv("AUTOGEN_USE_DOCKER", "maybe")
    with pytest.raises(AgentConfigError, match="AUTOGEN_USE_DOCKER"):
        UserProxyAgent("user")


def test_generate_code_execution_reply_with_a_config_for_the_call(tmp_path: Path) -> None:
    agent = ConversableAgent("agent", llm_config=False, code_execution_config=False)
    plain = [{"content": "no code block", "role": "user"}] * 2
    code = {"content": '```python\nprint("hello world")\n```', "role": "user"}
    local = {"executor": "commandline-local", "commandline-local": {"work_dir": str(tmp_path)}}

    assert agent.generate_code_execution_reply(plain, config=False) == (False, None)
    assert agent.generate_code_execution_reply(plain) == (False, None)
    assert agent.generate_code_execution_reply(plain, config=local) == (False, None)
    assert agent.generate_code_execution_reply(
        [code, *plain], config={**local, "last_n_messages": 1}
    ) == (False, None)
    final, output = agent.generate_code_execution_reply(
        [code, *plain], config={**local, "last_n_messages": 3}
    )
    assert final
    assert output is not None
    assert "exitcode: 0" in output
    assert "hello world" in output


def _tool_calls(*names: str) -> dict[str, Any]:
    calls = [
        {
            "id": str(number),
            "type": "function",
            "function": {"name": name, "arguments": json.dumps({"a": "x", "b": "y"})},
        }
        for number, name in enumerate(names, 1)
    ]
    return {"role": "assistant", "content": None, "function_call": None, "tool_calls": calls}


def _join(a: str, b: str) -> str:
    return f"{a}+{b}"


async def _a_join(a: str, b: str) -> str:
    return f"{a}-{b}"


def test_function_call_and_tool_call_replies_each_answer_their_own_kind() -> None:
    agent = ConversableAgent(
        "agent", llm_config=False, function_map={"join": _join, "a_join": _a_join}
    )
    function_call = {
        "role": "assistant",
        "content": None,
        "function_call": {"name": "join", "arguments": json.dumps({"a": "x", "b": "y"})},
    }
    text = {"role": "user", "content": "Hi!"}

    assert agent.generate_function_call_reply([function_call]) == (
        True,
        {"name": "join", "role": "function", "content": "x+y"},
    )
    assert agent.generate_function_call_reply([_tool_calls("join")]) == (False, None)
    assert agent.generate_function_call_reply([text]) == (False, None)
    assert agent.generate_tool_calls_reply([function_call]) == (False, None)
    assert agent.generate_tool_calls_reply([text]) == (False, None)
    assert agent.generate_tool_calls_reply([_tool_calls("join", "a_join")]) == (
        True,
        {
            "role": "tool",
            "tool_responses": [
                {"tool_call_id": "1", "role": "tool", "content": "x+y"},
                {"tool_call_id": "2", "role": "tool", "content": "x-y"},
            ],
            "content": "x+y\n\nx-y",
        },
    )


async def test_the_async_forms_and_failing_calls() -> None:
    def broken(a: str, b: str) -> str:
        raise RuntimeError("tool broke")

    agent = ConversableAgent("agent", llm_config=False, function_map={"join": broken})
    final, reply = await agent.a_generate_tool_calls_reply([_tool_calls("join", "missing")])
    assert final
    assert reply is not None
    first, second = (each["content"] for each in reply["tool_responses"])
    assert "tool broke" in first
    assert first.startswith("Error:")
    assert "missing" in second
    assert second.startswith("Error:")
    final, reply = await agent.a_generate_function_call_reply(
        [{"role": "assistant", "function_call": {"name": "join", "arguments": "{,}"}}]
    )
    assert final
    assert reply is not None
    assert reply["content"].startswith("Error:")


def test_a_bare_function_put_in_the_map_is_run_as_a_tool() -> None:
    agent = ConversableAgent("agent", llm_config=False)
    agent._function_map = {"join": _join}  # type: ignore[dict-item]
    assert agent.function_map == {"join": _join}
    final, reply = agent.generate_tool_calls_reply([_tool_calls("join")])
    assert final
    assert reply is not None
    assert reply["content"] == "x+y"
