"""`GeminiClient`: Gemini's `generateContent` / `streamGenerateContent` over httpx, behind the seam.

OpenAI-shaped messages become `contents` (roles `user` and `model`, `functionCall` and
`functionResponse` parts), the system prompt `systemInstruction`; streaming reads SSE
(`alt=sse`), each event a partial `GenerateContentResponse`.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pydantic

from ._errors import (
    InvalidJSONError,
    MalformedResponseError,
    StreamInterruptedError,
)
from ._json import loads_bounded
from ._openai import OpenAIClient, StreamEvents
from ._types import ModelRequest, ModelResponse, ToolCall, Usage

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

    from ._config import ModelConfig
    from ._http import ConnectionPool

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


def gemini_endpoint(config: ModelConfig) -> tuple[str, str, dict[str, str]]:
    """The base URL, the model's URL prefix (`.../models/NAME`) and the headers for one entry."""
    base = config.base_url or GEMINI_BASE_URL
    root = base if base.rstrip("/").endswith(("/v1beta", "/v1")) else f"{base}/v1beta"
    headers = {"content-type": "application/json", **config.default_headers}
    key = config.api_key
    if key is None and config.base_url is None:
        key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if key:
        headers["x-goog-api-key"] = key
    return base, f"{root}/models/{config.model}", headers


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))


def convert_contents(messages: Any) -> tuple[str, list[dict[str, Any]]]:
    """OpenAI-shaped messages as Gemini's `(system text, contents)`; one role per turn, merged."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for functionResponse parts
    for message in messages:
        role = message.get("role", "user")
        if role in ("system", "developer") and not contents:
            system.append(_text(message.get("content")))
            continue
        parts: list[dict[str, Any]] = []
        if role == "assistant":
            wire_role = "model"
            if _text(message.get("content")):
                parts.append({"text": _text(message.get("content"))})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                names[str(call.get("id", ""))] = str(function.get("name", ""))
                try:
                    args = loads_bounded(function.get("arguments") or "{}")
                except InvalidJSONError:
                    args = {"_raw_arguments": function.get("arguments")}
                parts.append({"functionCall": {"name": function.get("name", ""), "args": args}})
        elif role in ("tool", "function"):
            wire_role = "user"
            name = message.get("name") or names.get(str(message.get("tool_call_id", "")), "")
            output = {"output": _text(message.get("content"))}
            parts.append({"functionResponse": {"name": name, "response": output}})
        else:
            wire_role = "user"
            if _text(message.get("content")):
                parts.append({"text": _text(message.get("content"))})
        if not parts:
            continue
        if contents and contents[-1]["role"] == wire_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": wire_role, "parts": parts})
    return "\n\n".join(text for text in system if text), contents


class _Candidate(pydantic.BaseModel):
    content: dict[str, Any] = pydantic.Field(default_factory=dict)
    finishReason: str | None = None


class _Answer(pydantic.BaseModel):
    candidates: list[_Candidate] = pydantic.Field(default_factory=list)
    usageMetadata: dict[str, Any] = pydantic.Field(default_factory=dict)
    modelVersion: str = ""


class GeminiClient(OpenAIClient):
    """One Gemini config entry (`api_type="gemini"`): one `generateContent` attempt per call.

    It shares the OpenAI client's transport (byte caps, deadline, typed errors) and sits under
    the same wrappers. `usageMetadata.cachedContentTokenCount` is reported as cache reads.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        http: httpx.AsyncClient | ConnectionPool | None = None,
    ) -> None:
        super().__init__(config, http=http)
        self._base_url, self._model_url, self._headers = gemini_endpoint(config)
        self._url = f"{self._model_url}:generateContent"

    def __repr__(self) -> str:
        return f"GeminiClient(model={self.config.model!r}, base_url={self._base_url!r})"

    def body(self, request: ModelRequest) -> dict[str, Any]:
        """The `generateContent` body for `request`, with the config's defaults filled in."""
        config = self.config
        system, contents = convert_contents(request.messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        generation: dict[str, Any] = dict(config.params.get("generationConfig") or {})
        temperature = config.temperature if request.temperature is None else request.temperature
        if temperature is not None:
            generation["temperature"] = temperature
        max_tokens = config.max_tokens if request.max_tokens is None else request.max_tokens
        if max_tokens is not None:
            generation["maxOutputTokens"] = max_tokens
        if request.stop is not None:
            stop = request.stop
            generation["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        if request.response_format is not None:
            generation["responseMimeType"] = "application/json"
        if generation:
            body["generationConfig"] = generation
        if request.tools:
            declarations = []
            for tool in request.tools:
                function = tool.get("function", tool)
                declaration = {"name": function["name"]}
                if function.get("description"):
                    declaration["description"] = function["description"]
                if function.get("parameters"):
                    declaration["parameters"] = function["parameters"]
                declarations.append(declaration)
            body["tools"] = [{"functionDeclarations": declarations}]
            mode = _tool_mode(request.tool_choice)
            if mode is not None:
                body["toolConfig"] = {"functionCallingConfig": mode}
        for key, value in config.params.items():
            body.setdefault(key, value)
        return body

    def _answer(self, answer: _Answer) -> ModelResponse:
        texts: list[str] = []
        calls: list[ToolCall] = []
        finish = None
        if answer.candidates:
            candidate = answer.candidates[0]
            finish = candidate.finishReason
            for part in candidate.content.get("parts") or ():
                if "text" in part and not part.get("thought"):
                    texts.append(str(part["text"]))
                elif "functionCall" in part:
                    call = part["functionCall"]
                    calls.append(
                        ToolCall(
                            id=str(call.get("id") or f"call_gemini_{len(calls)}"),
                            name=str(call.get("name", "")),
                            arguments=json.dumps(call.get("args") or {}),
                        )
                    )
        meta = answer.usageMetadata
        prompt = int(meta.get("promptTokenCount") or 0)
        completion = int(meta.get("candidatesTokenCount") or 0) + int(
            meta.get("thoughtsTokenCount") or 0
        )
        read = int(meta.get("cachedContentTokenCount") or 0)
        price = self._price
        reason = (
            "tool_calls" if calls else (_FINISH.get(finish, finish.lower()) if finish else None)
        )
        return ModelResponse(
            content="".join(texts) if texts else None,
            tool_calls=tuple(calls),
            finish_reason=reason,
            model=answer.modelVersion or self.config.model,
            usage=Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=prompt + completion,
                cache_read_tokens=read,
            ),
            cost=price.cost(prompt, completion, cache_read_tokens=read) if price else 0.0,
        )

    def _parse(self, response: httpx.Response, content: bytes) -> ModelResponse:
        try:
            answer = _Answer.model_validate_json(content)
        except pydantic.ValidationError as exc:
            raise self._error(
                MalformedResponseError,
                f"not a generateContent answer: {content[:200]!r}",
                status=response.status_code,
            ) from exc
        if not answer.candidates:
            raise self._error(
                MalformedResponseError, "the answer has no candidates", status=response.status_code
            )
        return self._answer(answer)

    def _stream_url(self) -> str:
        return f"{self._model_url}:streamGenerateContent?alt=sse"

    def _events(self) -> StreamEvents:
        return _ChunkEvents(self)


class _ChunkEvents(StreamEvents):
    """Partial `GenerateContentResponse`s: parts appended in order, the last chunk's
    `finishReason` and usage taken; thought parts are kept but not streamed as text."""

    def __init__(self, client: GeminiClient) -> None:
        self.client = client
        self.parts: list[dict[str, Any]] = []
        self.last = _Answer()

    def take(self, event: str, data: str, *, status: int | None, delivered: bool) -> str | None:
        try:
            chunk = _Answer.model_validate_json(data)
        except pydantic.ValidationError as exc:
            raise self.client._error(
                MalformedResponseError,
                f"not a generateContent chunk: {data[:200]!r}",
                status=status,
            ) from exc
        self.last = chunk
        texts: list[str] = []
        for candidate in chunk.candidates[:1]:
            for part in candidate.content.get("parts") or ():
                self.parts.append(part)
                text = part.get("text")
                if text and not part.get("thought"):
                    texts.append(str(text))
        return "".join(texts) or None

    def finish(self, *, status: int | None, delivered: bool) -> ModelResponse:
        last = self.last
        finish = last.candidates[0].finishReason if last.candidates else None
        if finish is None:
            raise self.client._error(
                StreamInterruptedError,
                "the stream ended before a finishReason",
                status=status,
                retryable=not delivered,
            )
        merged = _Candidate(content={"role": "model", "parts": self.parts}, finishReason=finish)
        whole = _Answer(
            candidates=[merged], usageMetadata=last.usageMetadata, modelVersion=last.modelVersion
        )
        return self.client._answer(whole)


def _tool_mode(choice: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice, "AUTO")
        return {"mode": mode}
    name = (choice.get("function") or {}).get("name")
    return {"mode": "ANY", "allowedFunctionNames": [name]} if name else None
