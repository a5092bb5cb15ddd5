"""The OpenAPI document `GET /openapi.json` serves, built from the request models."""

from __future__ import annotations

from typing import Any

from ._models import AnswerApproval, AnswerInput, StartChat


def _body(model: type[Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": model.model_json_schema()}},
    }


def _op(summary: str, *, body: type[Any] | None = None, chat: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "OK"},
            "401": {"description": "no bearer token"},
            "403": {"description": "the token does not open this"},
        },
    }
    if body is not None:
        op["requestBody"] = _body(body)
        op["responses"]["422"] = {"description": "the body failed validation"}
        op["responses"]["413"] = {"description": "the body is too large"}
    if chat:
        op["parameters"] = [
            {"name": "chat_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ]
        op["responses"]["404"] = {"description": "no such chat"}
    return op


def openapi_schema() -> dict[str, Any]:
    """The API as OpenAPI 3.1."""
    events = _op("the chat's events as Server-Sent Events; resume with Last-Event-ID", chat=True)
    events["parameters"].append(
        {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}}
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "moot serve", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "liveness (no token)",
                    "responses": {"200": {"description": "OK"}},
                }
            },
            "/teams": {"get": _op("the registered teams (admin)")},
            "/metrics": {"get": _op("turns per second, p50/p99 turn latency (admin)")},
            "/chats": {
                "post": _op("start a chat of a team; returns its id and its token", body=StartChat),
                "get": _op("chats, newest first, paged by cursor; ?status=&limit=&cursor="),
            },
            "/chats/{chat_id}": {
                "get": _op("the chat: status, transcript, open questions", chat=True)
            },
            "/chats/{chat_id}/events": {"get": events},
            "/chats/{chat_id}/input": {
                "post": _op("answer the open human input", body=AnswerInput, chat=True)
            },
            "/chats/{chat_id}/approval": {
                "post": _op(
                    "approve or deny pending code or tool calls", body=AnswerApproval, chat=True
                )
            },
            "/chats/{chat_id}/stop": {"post": _op("stop the chat", chat=True)},
            "/agui": {"post": _agui()},
        },
    }


def _agui() -> dict[str, Any]:
    """`POST /agui`: its body is AG-UI's `RunAgentInput` (its schema when the extra is in)."""
    op = _op("an AG-UI run: a new threadId starts a chat, a known one resumes its interrupt")
    try:
        from ag_ui.core import RunAgentInput
    except ImportError:
        schema: dict[str, Any] = {"type": "object", "description": "AG-UI RunAgentInput"}
    else:
        schema = RunAgentInput.model_json_schema(by_alias=True)
    op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    op["responses"]["200"] = {
        "description": "the run's AG-UI events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
    op["responses"]["409"] = {"description": "the thread has no such interrupt to resume"}
    op["responses"]["501"] = {"description": "the agui extra is not installed"}
    return op
