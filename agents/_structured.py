"""Structured output: an agent's answer validated against a pydantic model or a JSON schema.

Each model call asks for the strongest mode the endpoint takes: a `json_schema` response format,
then `json_object` with the schema in the prompt, then the schema in the prompt alone. A server
that refuses a mode (400) is remembered per client, as the speaker selector does, and not asked
that way again. An answer that does not validate goes back to the model with the error, up to
`max_repairs` times; then `StructuredOutputError`.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import pydantic
import structlog

from moot.models import (
    BadRequestError,
    InvalidJSONError,
    ModelRequest,
    StructuredOutputError,
    loads_bounded,
)

from ._errors import AgentConfigError

if TYPE_CHECKING:
    from moot.models import ModelClient, ModelResponse

log = structlog.get_logger("moot.agents.structured")

Mode = Literal["json_schema", "json_object", "prompt"]
MODES: tuple[Mode, ...] = ("json_schema", "json_object", "prompt")
DEFAULT_MAX_REPAIRS = 2

_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.DOTALL)
_NAME = re.compile(r"[^a-zA-Z0-9_-]")


class StructuredOutput:
    """The response format of one agent: how to ask for it and how to check an answer.

    `response_format` is a pydantic model class (answers become its instances) or a JSON schema
    dict (answers stay parsed JSON, checked against the schema's common keywords: type,
    properties, required, additionalProperties, items, enum).

    Raises:
        AgentConfigError: `response_format` is neither, or `max_repairs` is negative.
    """

    def __init__(
        self,
        response_format: type[pydantic.BaseModel] | Mapping[str, Any],
        *,
        max_repairs: int = DEFAULT_MAX_REPAIRS,
    ) -> None:
        if max_repairs < 0:
            raise AgentConfigError(f"max_format_repairs must be 0 or more, got {max_repairs}")
        self.model: type[pydantic.BaseModel] | None = None
        if isinstance(response_format, type) and issubclass(response_format, pydantic.BaseModel):
            self.model = response_format
            self.schema: dict[str, Any] = response_format.model_json_schema()
            self.name = _NAME.sub("_", response_format.__name__)[:64]
        elif isinstance(response_format, Mapping):
            self.schema = dict(response_format)
            self.name = _NAME.sub("_", str(self.schema.get("title") or "answer"))[:64]
        else:
            raise AgentConfigError(
                "response_format must be a pydantic model class or a JSON schema dict,"
                f" not {response_format!r}"
            )
        self.max_repairs = max_repairs
        self._refused: dict[Mode, weakref.WeakSet[ModelClient]] = {
            mode: weakref.WeakSet() for mode in MODES
        }

    def __repr__(self) -> str:
        return f"StructuredOutput({self.name}, max_repairs={self.max_repairs})"

    def mode_for(self, client: ModelClient) -> Mode:
        """The strongest mode `client` has not refused."""
        for mode in MODES[:-1]:
            if client not in self._refused[mode]:
                return mode
        return "prompt"

    def request_for(self, request: ModelRequest, mode: Mode) -> ModelRequest:
        """`request` asking for this format in `mode`."""
        if mode == "json_schema":
            return request.with_options(
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": self.name, "schema": self.schema},
                }
            )
        instruction = {
            "role": "system",
            "content": "Answer with one JSON object that matches this JSON schema, and nothing"
            " else:\n" + json.dumps(self.schema, sort_keys=True),
        }
        messages = [*request.messages, instruction]
        if mode == "json_object":
            return request.with_options(messages=messages, response_format={"type": "json_object"})
        return request.with_options(messages=messages)

    async def create(
        self,
        client: ModelClient,
        request: ModelRequest,
        record: Callable[[ModelResponse], None],
    ) -> tuple[ModelResponse, Any]:
        """Ask `client` until an answer validates; returns it and the typed output (None for a
        tool-call answer, which is passed through unchecked). `record` sees every response.

        Raises:
            StructuredOutputError: still invalid after `max_repairs` repairs.
            ModelError: the call itself failed (a 400 in the prompt mode included).
        """
        errors: list[str] = []
        for attempt in range(self.max_repairs + 1):
            response = await self._ask(client, request)
            record(response)
            if response.tool_calls:
                return response, None
            text = response.content or ""
            try:
                return response, self.validate(text)
            except StructuredOutputError as exc:
                errors.append(str(exc))
                log.info("agent.structured_output_invalid", attempt=attempt, format=self.name)
                request = request.with_options(
                    messages=[
                        *request.messages,
                        {"role": "assistant", "content": text},
                        {
                            "role": "user",
                            "content": f"That answer is not valid: {exc}. Reply again with only"
                            " the corrected JSON object, matching this JSON schema:\n"
                            + json.dumps(self.schema, sort_keys=True),
                        },
                    ]
                )
        raise StructuredOutputError(
            f"the model's answer did not match {self.name} after {self.max_repairs} repairs:"
            f" {errors[-1]}",
            errors=tuple(errors),
            model=response.model or None,
        )

    async def _ask(self, client: ModelClient, request: ModelRequest) -> ModelResponse:
        while True:
            mode = self.mode_for(client)
            try:
                return await client.create(self.request_for(request, mode))
            except BadRequestError:
                if mode == "prompt":
                    raise
                self._refused[mode].add(client)
                log.info("agent.structured_output_mode_refused", mode=mode, client=repr(client))

    def validate(self, text: str) -> Any:
        """The typed output of `text` (a pydantic instance or the parsed JSON).

        Raises:
            StructuredOutputError: the text is not JSON, or does not match the schema; its
                message is what the model is told in a repair.
        """
        match = _FENCE.search(text)
        if match is not None:
            text = match.group(1)
        try:
            data = loads_bounded(text.strip())
        except InvalidJSONError as exc:
            raise StructuredOutputError(f"it is not JSON ({exc})") from None
        if self.model is not None:
            try:
                return self.model.model_validate(data)
            except pydantic.ValidationError as exc:
                raise StructuredOutputError(_pydantic_errors(exc)) from None
        problem = _check(data, self.schema, "$")
        if problem is not None:
            raise StructuredOutputError(problem)
        return data

    def dump(self, output: Any) -> str:
        """The reply text for a validated output: canonical JSON."""
        if isinstance(output, pydantic.BaseModel):
            return output.model_dump_json()
        return json.dumps(output)


def _pydantic_errors(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or '$'}: {error['msg']}"
        for error in exc.errors()[:10]
    )


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _check(value: Any, schema: Mapping[str, Any], where: str) -> str | None:
    """The first mismatch of `value` against the common keywords of `schema`, or None."""
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if not any(_TYPES.get(k, lambda _v: True)(value) for k in kinds):
            return f"{where}: expected {' or '.join(kinds)}, got {type(value).__name__}"
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        return f"{where}: {value!r} is not one of {enum!r}"
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name in schema.get("required") or ():
            if name not in value:
                return f"{where}: missing required property {name!r}"
        for name, item in value.items():
            if name in properties:
                problem = _check(item, properties[name], f"{where}.{name}")
                if problem is not None:
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{where}: unexpected property {name!r}"
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            problem = _check(item, schema["items"], f"{where}[{index}]")
            if problem is not None:
                return problem
    return None
