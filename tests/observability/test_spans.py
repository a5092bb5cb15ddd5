"""The span tree of a scripted group chat (real HTTP model server, local code execution), read
back from the SDK's in-memory exporter; errors, cancellations and a 429 retry."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.trace import StatusCode

from moot.agents import AssistantAgent, UserProxyAgent, register_function
from moot.groupchat import GroupChat, GroupChatManager
from moot.models import (
    AuthenticationError,
    InMemoryCache,
    ModelRequest,
    client_from_llm_config,
)
from moot.observability import semconv as sc
from moot.testing import Reply, ScriptedModelServer

if TYPE_CHECKING:
    from pathlib import Path

    from opentelemetry.sdk.trace import ReadableSpan

    from .conftest import Captured


def add(a: int, b: int) -> int:
    return a + b


def _by_name(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def _parent(span: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next((s for s in spans if s.context.span_id == span.parent.span_id), None)


async def test_a_group_chat_is_one_trace_of_turns_model_calls_tools_and_code(
    otel: Captured, tmp_path: Path
) -> None:
    with ScriptedModelServer() as server:
        server.push(
            Reply(tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}]),
            "```python\nprint('ran')\n```",
            "All done. TERMINATE",
        )
        llm_config: dict[str, Any] = {"config_list": server.config_list(model="gpt-4o")}
        coder = AssistantAgent("coder", llm_config=llm_config)
        user = UserProxyAgent(
            "user",
            human_input_mode="NEVER",
            code_execution_config={"work_dir": str(tmp_path), "use_docker": False},
        )
        register_function(add, caller=coder, executor=user, description="add two numbers")
        group = GroupChat(
            [user, coder], messages=[], max_round=7, speaker_selection_method="round_robin"
        )
        manager = GroupChatManager(group, llm_config=False)
        await user.a_initiate_chat(manager, message="add 2 and 3, then print", silent=True)

    spans = otel.spans.get_finished_spans()
    assert len({s.context.trace_id for s in spans}) == 1
    # The user's chat with the manager is the root; the group chat it starts is its child.
    (outer,) = _by_name(spans, "invoke_workflow user")
    assert outer.parent is None
    (workflow,) = _by_name(spans, "invoke_workflow chat_manager")
    assert _parent(workflow, spans) is outer
    assert workflow.attributes is not None
    assert workflow.attributes[sc.MOOT_WORKFLOW_KIND] == "group_chat"
    assert workflow.attributes[sc.GEN_AI_OPERATION_NAME] == "invoke_workflow"
    conversation = workflow.attributes[sc.GEN_AI_CONVERSATION_ID]
    assert workflow.status.status_code is StatusCode.UNSET

    turns = _by_name(spans, "invoke_agent")
    assert {t.name for t in turns} == {"invoke_agent coder", "invoke_agent user"}
    for turn in turns:
        assert _parent(turn, spans) is workflow
        assert turn.attributes is not None
        assert turn.attributes[sc.GEN_AI_CONVERSATION_ID] == conversation

    calls = _by_name(spans, "chat gpt-4o")
    assert len(calls) == 3
    for call in calls:
        parent = _parent(call, spans)
        assert parent is not None
        assert parent.name == "invoke_agent coder"
        attrs = call.attributes
        assert attrs is not None
        assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
        assert attrs[sc.GEN_AI_SYSTEM] == "openai"
        assert attrs[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o"
        assert attrs[sc.SERVER_ADDRESS] == "127.0.0.1"
        assert isinstance(attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], int)
        assert sc.GEN_AI_USAGE_OUTPUT_TOKENS in attrs
        assert sc.GEN_AI_RESPONSE_FINISH_REASONS in attrs
        assert sc.MOOT_COST in attrs

    (tool,) = _by_name(spans, "execute_tool")
    assert tool.name == "execute_tool add"
    tool_parent = _parent(tool, spans)
    assert tool_parent is not None
    assert tool_parent.name == "invoke_agent user"

    (code,) = _by_name(spans, "execute_code")
    assert code.attributes is not None
    assert code.attributes[sc.MOOT_CODE_LANGUAGE] == "python"
    assert code.attributes[sc.MOOT_CODE_EXIT_CODE] == 0
    assert code.attributes[sc.MOOT_CODE_TIMED_OUT] is False
    code_parent = _parent(code, spans)
    assert code_parent is not None
    assert code_parent.name == "invoke_agent user"

    # Round robin calls no model: no `select_speaker` span, the policy is on the workflow.
    assert not _by_name(spans, "select_speaker")
    assert workflow.attributes[sc.MOOT_SELECTION_POLICY]  # the policy type, e.g. a wrapper

    # No message content unless the user opts in.
    for span in spans:
        assert span.attributes is not None
        assert sc.GEN_AI_INPUT_MESSAGES not in span.attributes
        assert sc.GEN_AI_OUTPUT_MESSAGES not in span.attributes
        assert "add 2 and 3" not in repr(dict(span.attributes))

    data = otel.metrics.get_metrics_data()
    assert data is not None
    names = {
        metric.name
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert {sc.METRIC_TOKEN_USAGE, sc.METRIC_OPERATION_DURATION, sc.METRIC_TURNS} <= names
    assert {sc.METRIC_CHATS_RUNNING, sc.METRIC_SANDBOX_RUN_DURATION} <= names


async def test_a_failed_model_call_ends_its_spans_with_an_error(otel: Captured) -> None:
    with ScriptedModelServer() as server:
        server.push(Reply(status=401, error="bad key"))
        llm_config: dict[str, Any] = {"config_list": server.config_list(model="gpt-4o")}
        coder = AssistantAgent("coder", llm_config=llm_config)
        user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
        with pytest.raises(AuthenticationError):
            await user.a_initiate_chat(coder, message="hi", silent=True)

    spans = otel.spans.get_finished_spans()
    (call,) = _by_name(spans, "chat gpt-4o")
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes is not None
    assert call.attributes[sc.ERROR_TYPE] == "AuthenticationError"
    (turn,) = _by_name(spans, "invoke_agent coder")
    assert turn.status.status_code is StatusCode.ERROR
    (workflow,) = _by_name(spans, "invoke_workflow")
    assert workflow.status.status_code is StatusCode.ERROR
    assert workflow.attributes is not None
    assert workflow.attributes[sc.MOOT_WORKFLOW_KIND] == "two_agent_chat"


async def test_a_429_retry_shows_as_an_event_on_the_model_span(otel: Captured) -> None:
    with ScriptedModelServer() as server:
        server.push(Reply(status=429, error="slow down", retry_after=0), "fine. TERMINATE")
        llm_config: dict[str, Any] = {"config_list": server.config_list(model="gpt-4o")}
        coder = AssistantAgent("coder", llm_config=llm_config)
        user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
        await user.a_initiate_chat(coder, message="hi", max_turns=1, silent=True)

    (call,) = _by_name(otel.spans.get_finished_spans(), "chat gpt-4o")
    assert call.status.status_code is StatusCode.UNSET
    (retry,) = [e for e in call.events if e.name == sc.EVENT_RETRY]
    assert retry.attributes is not None
    assert retry.attributes["http.response.status_code"] == 429
    assert retry.attributes[sc.ERROR_TYPE] == "RateLimitError"


async def test_a_cancelled_chat_ends_its_spans_with_an_error(otel: Captured) -> None:
    async with ScriptedModelServer() as server:
        server.push(Reply(hang=True))
        llm_config: dict[str, Any] = {"config_list": server.config_list(model="gpt-4o")}
        coder = AssistantAgent("coder", llm_config=llm_config)
        user = UserProxyAgent("user", human_input_mode="NEVER", code_execution_config=False)
        chat = asyncio.ensure_future(user.a_initiate_chat(coder, message="hi", silent=True))
        await server.wait_for(lambda s: len(s.requests) >= 1)
        chat.cancel()
        with pytest.raises(asyncio.CancelledError):
            await chat

    spans = otel.spans.get_finished_spans()
    for name in ("chat gpt-4o", "invoke_agent coder", "invoke_workflow"):
        (span,) = _by_name(spans, name)
        assert span.status.status_code is StatusCode.ERROR, name
        assert span.attributes is not None
        assert span.attributes[sc.ERROR_TYPE] == "cancelled"


async def test_an_llm_selection_is_a_span_counting_its_model_calls(otel: Captured) -> None:
    with ScriptedModelServer() as server:
        # The selector answers with a name, then each speaker answers once.
        server.push("bob", "bob here", "alice", "alice here. TERMINATE")
        llm_config: dict[str, Any] = {"config_list": server.config_list(model="gpt-4o")}
        alice = AssistantAgent("alice", llm_config=llm_config)
        bob = AssistantAgent("bob", llm_config=llm_config)
        group = GroupChat([alice, bob], messages=[], max_round=3, speaker_selection_method="auto")
        manager = GroupChatManager(group, llm_config=llm_config)
        await manager.a_run("who goes first?")

    spans = otel.spans.get_finished_spans()
    (workflow,) = _by_name(spans, "invoke_workflow")
    selections = _by_name(spans, "select_speaker")
    assert len(selections) == 2
    chosen = []
    for selection in selections:
        assert _parent(selection, spans) is workflow
        attrs = selection.attributes
        assert attrs is not None
        assert attrs[sc.MOOT_SELECTION_SELECTOR_CALLS] == 1
        assert attrs[sc.MOOT_SELECTION_CANDIDATES] == ("alice", "bob")
        chosen.append(attrs[sc.MOOT_SELECTION_CHOSEN])
        (call,) = [s for s in spans if _parent(s, spans) is selection]
        assert call.name == "chat gpt-4o"
        assert call.start_time is not None
        assert selection.start_time is not None
        assert selection.start_time <= call.start_time
    assert chosen == ["bob", "alice"]
    turns = [_parent(s, spans) for s in _by_name(spans, "chat gpt-4o")]
    assert [t.name for t in turns if t is not None and t.name.startswith("invoke_agent")] == [
        "invoke_agent bob",
        "invoke_agent alice",
    ]


async def test_a_cache_hit_is_a_model_span_marked_cached(otel: Captured) -> None:
    with ScriptedModelServer() as server:
        server.push("the answer")
        llm_config: dict[str, Any] = {"config_list": server.config_list(model="gpt-4o")}
        request = ModelRequest(messages=[{"role": "user", "content": "q"}])
        async with client_from_llm_config(llm_config, cache=InMemoryCache()) as client:
            first = await client.create(request)
            second = await client.create(request)
        assert len(server.requests) == 1
    assert second.cached
    assert second.content == first.content

    calls = _by_name(otel.spans.get_finished_spans(), "chat gpt-4o")
    assert len(calls) == 2
    fresh, hit = calls
    assert fresh.attributes is not None
    assert hit.attributes is not None
    assert sc.MOOT_CACHED not in fresh.attributes
    assert hit.attributes[sc.MOOT_CACHED] is True
    assert hit.attributes[sc.GEN_AI_SYSTEM] == "openai"
    assert hit.attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert hit.attributes[sc.MOOT_COST] == 0.0
    assert sc.SERVER_ADDRESS not in hit.attributes
    assert sc.SERVER_PORT not in hit.attributes
    assert hit.status.status_code is StatusCode.UNSET
