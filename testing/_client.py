"""`ScriptedModelClient`: the model seam faked in process, driven by the same script as the server.

No HTTP, no sockets: a request picks its `Reply` by `Rule`s, then the sequence, then `default`,
exactly as `ScriptedModelServer` does, and the answer has the same usage, tool-call ids and
streamed pieces. Errors come back as the typed `ModelError` the HTTP client would raise.
"""

from __future__ import annotations

import http
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from moot.models import (
    MalformedResponseError,
    ModelClient,
    ModelError,
    ModelRequest,
    ModelResponse,
    ModelTimeoutError,
    StreamInterruptedError,
    ToolCall,
    Usage,
    error_for_status,
)

from ._script import RecordedRequest, Reply, Responder, Rule, completion, resolve, tokens

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

ScriptEntry = Responder | ModelError
"""A script entry: a reply (or its text, or a function making one), or an error to raise."""


class ScriptedModelClient(ModelClient):
    """An in-process `ModelClient` for tests: scripted replies, tool calls, errors and streaming.

    Every `ModelRequest` is kept in `requests` (its `RecordedRequest` view, as the server would
    see it, in `recorded`). With no reply left it raises `AssertionError`, so the test fails loudly.
    """

    def __init__(
        self,
        script: Iterable[ScriptEntry] = (),
        *,
        rules: Sequence[Rule] = (),
        default: Responder | None = None,
        model: str = "scripted",
    ) -> None:
        self._script: deque[ScriptEntry] = deque(script)
        self.rules = list(rules)
        self.default = default
        self.model = model
        self.requests: list[ModelRequest] = []
        self.recorded: list[RecordedRequest] = []
        self.closed = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ScriptedModelClient(model={self.model!r})"

    def push(self, *entries: ScriptEntry) -> None:
        """Append entries to the sequence script."""
        with self._lock:
            self._script.extend(entries)

    @property
    def pending(self) -> int:
        """How many sequence entries have not been used yet."""
        return len(self._script)

    def _record(self, request: ModelRequest) -> RecordedRequest:
        body: dict[str, Any] = {"model": self.model, "messages": list(request.messages)}
        if request.tools:
            body["tools"] = [dict(tool) for tool in request.tools]
        if request.stream:
            body["stream"] = True
        with self._lock:
            recorded = RecordedRequest(
                "POST", "/v1/chat/completions", {}, body, index=len(self.recorded)
            )
            self.requests.append(request)
            self.recorded.append(recorded)
        return recorded

    def _pick(self, recorded: RecordedRequest) -> Reply | ModelError:
        with self._lock:
            for rule in self.rules:
                if rule.matches(recorded):
                    if rule.times is not None:
                        rule.times -= 1
                    return resolve(rule.reply, recorded)
            if self._script:
                entry = self._script.popleft()
                return entry if isinstance(entry, ModelError) else resolve(entry, recorded)
        if self.default is not None:
            return resolve(self.default, recorded)
        raise AssertionError(
            f"ScriptedModelClient: the script has no reply left for request #{recorded.index}"
            f" (last message: {recorded.last_text[:80]!r})"
        )

    async def create(self, request: ModelRequest) -> ModelResponse:
        """Answer from the script.

        Raises:
            ModelError: the scripted error (an entry that is one, or a reply with `status` >= 400,
                `malformed`, `cut_stream`, or `stream_error`).
            AssertionError: nothing in the script answers this request.
        """
        recorded = self._record(request)
        reply = self._pick(recorded)
        if isinstance(reply, ModelError):
            raise reply
        if not request.timeout:
            return await self._answer(request, recorded, reply)
        try:
            with anyio.fail_after(request.timeout):
                return await self._answer(request, recorded, reply)
        except TimeoutError as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelTimeoutError(
                f"no complete answer within the {request.timeout} s deadline", model=self.model
            ) from exc

    async def _answer(
        self, request: ModelRequest, recorded: RecordedRequest, reply: Reply
    ) -> ModelResponse:
        if reply.latency:
            await anyio.sleep(reply.latency)
        if reply.hang:
            await anyio.sleep_forever()
        if reply.status >= 400:
            text = reply.error or http.HTTPStatus(reply.status).phrase
            raise error_for_status(
                reply.status,
                f"HTTP {reply.status}: {text}",
                code=reply.error_code,
                retry_after=reply.retry_after,
                model=self.model,
            )
        if reply.malformed:
            raise MalformedResponseError("not a chat completion (scripted)", model=self.model)
        answer = completion(reply, recorded)
        delivered = False
        if request.stream and reply.stream_error is not None:
            raise _stream_error(reply.stream_error, self.model)
        if request.stream:
            pieces = tokens(answer.content)
            if reply.cut_stream:
                pieces = pieces[: len(pieces) // 2]
            for piece in pieces:
                if request.on_token is not None:
                    delivered = True
                    result = request.on_token(piece)
                    if result is not None:
                        await result
        if reply.cut_stream:
            raise StreamInterruptedError(
                "the stream broke off (scripted)", model=self.model, retryable=not delivered
            )
        usage = answer.usage
        return ModelResponse(
            content=answer.content,
            tool_calls=tuple(
                ToolCall(
                    id=call["id"],
                    name=call["function"]["name"],
                    arguments=call["function"]["arguments"],
                )
                for call in answer.tool_calls
            ),
            finish_reason=answer.finish_reason,
            model=answer.model,
            usage=Usage(
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"],
                total_tokens=usage["total_tokens"],
            ),
        )

    async def aclose(self) -> None:
        self.closed += 1


def _stream_error(error: Any, model: str) -> ModelError:
    """As the HTTP client reads an error event: typed by its status when it names one."""
    detail = dict(error) if isinstance(error, dict) else {"message": error}
    message = f"the stream sent an error: {detail.get('message') or detail}"
    status = detail.get("status") or detail.get("code")
    if isinstance(status, int) and 400 <= status < 600:
        return error_for_status(status, message, model=model)
    return StreamInterruptedError(message, model=model, retryable=True)
