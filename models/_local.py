"""`LocalModelClient`: the embedded GGUF model behind moot's `ModelClient` interface.

One model, many chats: generations run one at a time on a single worker thread that takes jobs
in arrival order (fair FIFO), so the event loop never blocks and no chat jumps the queue. A job
streams its tokens back to the loop; a cancelled caller stops its generation at the next token.
The engine seam (`Engine`) keeps llama.cpp optional: tests drive the client with a fake engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import BadRequestError, ModelError, ModelTimeoutError, ProviderUnavailableError
from ._types import ModelClient, ModelResponse, Usage

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from ._types import ModelRequest

LOCAL_MODEL_NAME = "qwen2.5-coder-0.5b-instruct"
DEFAULT_MAX_TOKENS = 512


class Engine(Protocol):
    """What generates text: llama.cpp for real, a script in tests.

    An engine may also have `stream_json(messages, *, schema, max_tokens, temperature, stop)`,
    generating under a grammar built from `schema`; requests with a JSON `response_format` use it.
    """

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str],
    ) -> Iterator[str]:
        """Yield the answer's text pieces, formatting `messages` with the model's chat template."""
        ...

    def count_tokens(self, text: str) -> int: ...


class LlamaEngine:
    """llama-cpp-python over a GGUF file; the chat template comes from the GGUF's metadata."""

    def __init__(
        self, model_path: Path, *, n_ctx: int = 4096, n_threads: int | None = None, seed: int = 0
    ) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise ProviderUnavailableError(
                "The embedded model needs llama-cpp-python: `make demo` builds it once, or"
                " pip install 'moot[local]'.",
                model=LOCAL_MODEL_NAME,
            ) from exc
        self._llm: Any = llama_cpp.Llama(
            model_path=str(model_path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            seed=seed,
            verbose=False,
        )

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        stop: list[str],
    ) -> Iterator[str]:
        chunks = self._llm.create_chat_completion(
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop or None,
            stream=True,
        )
        for chunk in chunks:
            piece = chunk["choices"][0].get("delta", {}).get("content")
            if piece:
                yield str(piece)

    def stream_json(
        self,
        messages: list[dict[str, str]],
        *,
        schema: Mapping[str, Any] | None,
        max_tokens: int,
        temperature: float,
        stop: list[str],
    ) -> Iterator[str]:
        """`stream_chat` held by a grammar: llama.cpp builds it from `schema` (any JSON object
        when None), so every token keeps the answer valid."""
        response_format: dict[str, Any] = {"type": "json_object"}
        if schema is not None:
            response_format["schema"] = dict(schema)
        chunks = self._llm.create_chat_completion(
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop or None,
            stream=True,
            response_format=response_format,
        )
        for chunk in chunks:
            piece = chunk["choices"][0].get("delta", {}).get("content")
            if piece:
                yield str(piece)

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))


@dataclass(slots=True, kw_only=True)
class _Job:
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    stop: list[str]
    loop: asyncio.AbstractEventLoop
    pieces: asyncio.Queue[str | BaseException | None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    json_only: bool = False  # the request asked for JSON: a grammar holds the engine to it
    schema: Mapping[str, Any] | None = None  # ... matching this schema


def _to_chat(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Plain role/content messages the chat template understands (tool output becomes user text)."""
    out: list[dict[str, str]] = []
    for message in messages:
        role = str(message.get("role") or "user")
        content = message.get("content")
        text = "" if content is None else str(content)
        if role not in ("system", "user", "assistant"):
            role = "user"
        out.append({"role": role, "content": text})
    return out


def _json_request(response_format: Any) -> tuple[bool, Mapping[str, Any] | None]:
    """Whether `response_format` asks for JSON, and the schema it names (None for any object)."""
    if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
        return True, response_format.model_json_schema()  # a pydantic model class
    if not isinstance(response_format, dict):
        return False, None
    if response_format.get("type") == "json_schema":
        inner = response_format.get("json_schema")
        schema = inner.get("schema") if isinstance(inner, dict) else None
        return True, schema if isinstance(schema, dict) else None
    return response_format.get("type") == "json_object", None


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the first stop sequence, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class LocalModelClient(ModelClient):
    """The embedded model as a `ModelClient` (no server, no network).

    Pass `engine` to use another engine (tests); otherwise the GGUF at `model_path` (default: the
    verified cached model) is loaded on first use, on the worker thread.

    Raises (from `create`):
        ProviderUnavailableError: llama-cpp-python or the model file is missing.
        BadRequestError: the call asked for tools, which the embedded model does not do.
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        engine: Engine | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 0,
        temperature: float = 0.0,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self._engine = engine
        self._engine_options = {"n_ctx": n_ctx, "n_threads": n_threads, "seed": seed}
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.generations = 0

    def __repr__(self) -> str:
        return f"LocalModelClient({str(self.model_path or LOCAL_MODEL_NAME)!r})"

    # -- the worker thread --------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="moot-local-model", daemon=True
                )
                self._thread.start()

    def _load(self) -> Engine:
        if self._engine is None:
            from ._model_store import cached_model

            path = self.model_path or cached_model()
            if path is None or not path.is_file():
                raise ProviderUnavailableError(
                    "The embedded model is not cached; run `moot model fetch`.",
                    model=LOCAL_MODEL_NAME,
                )
            self._engine = LlamaEngine(path, **self._engine_options)  # type: ignore[arg-type]
        return self._engine

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._run(job)

    def _run(self, job: _Job) -> None:
        def send(item: str | BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                job.loop.call_soon_threadsafe(job.pieces.put_nowait, item)

        if job.cancelled.is_set():
            send(None)
            return
        try:
            engine = self._load()
            self.generations += 1
            stream_json = getattr(engine, "stream_json", None)  # an optional capability
            if job.json_only and stream_json is not None:
                pieces = stream_json(
                    job.messages,
                    schema=job.schema,
                    max_tokens=job.max_tokens,
                    temperature=job.temperature,
                    stop=job.stop,
                )
            else:
                pieces = engine.stream_chat(
                    job.messages,
                    max_tokens=job.max_tokens,
                    temperature=job.temperature,
                    stop=job.stop,
                )
            for piece in pieces:
                if job.cancelled.is_set():
                    break
                send(piece)
        except BaseException as exc:
            send(exc)
            return
        send(None)

    # -- ModelClient --------------------------------------------------------------------------

    async def create(self, request: ModelRequest) -> ModelResponse:
        """Generate the next assistant message; waits its turn behind earlier calls.

        Raises:
            ProviderUnavailableError: llama-cpp-python or the model is missing, or it failed.
            BadRequestError: tools were asked for.
            ModelTimeoutError: `timeout` passed (the generation is stopped).
        """
        if request.tools:
            raise BadRequestError(
                "The embedded model does not support tool calls; use a server model for tools.",
                model=LOCAL_MODEL_NAME,
            )
        stop, on_token, timeout = request.stop, request.on_token, request.timeout
        stops = [stop] if isinstance(stop, str) else list(stop or ())
        job = _Job(
            messages=_to_chat(request.messages),
            max_tokens=request.max_tokens or self.max_tokens,
            temperature=self.temperature if request.temperature is None else request.temperature,
            stop=stops,
            loop=asyncio.get_running_loop(),
            pieces=asyncio.Queue(),
        )
        job.json_only, job.schema = _json_request(request.response_format)
        self._ensure_worker()
        self._jobs.put(job)
        text = ""
        stopped = False
        count = 0
        try:
            async with asyncio.timeout(timeout):
                while (item := await job.pieces.get()) is not None:
                    if isinstance(item, BaseException):
                        raise _as_model_error(item)
                    count += 1
                    if stopped:
                        continue  # drain the rest of a generation cut by a stop sequence
                    text, stopped = _cut_at_stop(text + item, stops)
                    piece = text[len(text) - len(item) :] if not stopped else ""
                    if stopped:
                        job.cancelled.set()
                    if on_token is not None and request.stream and piece:
                        result = on_token(piece)
                        if result is not None:
                            await result
        except TimeoutError as exc:
            raise ModelTimeoutError(
                f"The embedded model did not finish within {timeout} s.", model=LOCAL_MODEL_NAME
            ) from exc
        finally:
            job.cancelled.set()
        prompt = self._count("\n".join(m["content"] for m in job.messages))
        return ModelResponse(
            content=text,
            finish_reason="stop" if stopped or count < job.max_tokens else "length",
            model=LOCAL_MODEL_NAME,
            usage=Usage(prompt_tokens=prompt, completion_tokens=count, total_tokens=prompt + count),
        )

    def _count(self, text: str) -> int:
        engine = self._engine
        if engine is None:
            return max(1, len(text) // 4)
        try:
            return engine.count_tokens(text)
        except Exception:
            return max(1, len(text) // 4)

    async def aclose(self) -> None:
        """Stop the worker thread after the jobs already queued; it restarts on the next call."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._jobs.put(None)
            await asyncio.to_thread(thread.join, 30)
        self._thread = None


def _as_model_error(exc: BaseException) -> BaseException:
    if isinstance(exc, ModelError):
        return exc
    error = ProviderUnavailableError(
        f"The embedded model failed: {type(exc).__name__}: {exc}", model=LOCAL_MODEL_NAME
    )
    error.__cause__ = exc
    return error
