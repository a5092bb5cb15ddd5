"""The API's request bodies: validated by pydantic, refused with a clear 422 when wrong."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StartChat(BaseModel):
    """`POST /chats`: which team, the opening message, and limits."""

    model_config = ConfigDict(extra="forbid")
    team: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=100_000)
    max_turns: int | None = Field(default=None, ge=1, le=10_000)


class AnswerInput(BaseModel):
    """`POST /chats/{id}/input`: the human's answer (to the open question, or to `token`'s)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=100_000)
    token: str | None = Field(default=None, max_length=200)


class AnswerApproval(BaseModel):
    """`POST /chats/{id}/approval`: approve or deny the pending code run or tool calls."""

    model_config = ConfigDict(extra="forbid")
    approved: bool
    reason: str = Field(default="", max_length=2000)
    token: str | None = Field(default=None, max_length=200)
