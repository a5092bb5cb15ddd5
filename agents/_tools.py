"""Functions as tools: a JSON schema from type hints (via pydantic), and safe execution.

Execution never raises for the model's mistakes: an unknown or odd name, a malformed call,
arguments that are not a JSON object, too large, too deeply nested or do not validate, and
exceptions inside the function all become an "Error: ..." text that goes back to the model as
the tool's result. The calls of one answer run concurrently, `MAX_CONCURRENT_TOOL_CALLS` at most.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, get_args, get_origin

import pydantic

from moot import observability
from moot.models import InvalidJSONError, JSONDepthError, loads_bounded

from ._errors import ToolRegistrationError

ToolFunction = Callable[..., Any]

MAX_CONCURRENT_TOOL_CALLS = 16  # tool calls of one answer that run at once; the rest wait
MAX_ARGUMENT_CHARS = 1 << 20  # a tool's JSON arguments longer than this are refused unparsed
MAX_ARGUMENT_DEPTH = 64  # arrays and objects nested deeper than this are refused unparsed


class Tool:
    """A function the model may call: its name, description, function and argument model.

    Built as AutoGen builds it, `Tool(name=..., description=..., func_or_tool=f)`; another `Tool`
    as `func_or_tool` lends its name, description and function where these are not given, so
    stacked `register_for_llm` / `register_for_execution` decorators keep what the inner one said.
    Calling a tool calls its function.

    Raises:
        ToolRegistrationError: `func_or_tool` is not callable, has no name, or has a parameter
            that cannot come from JSON (positional-only or variadic).
    """

    __slots__ = ("_schema", "arguments", "description", "func", "name")

    def __init__(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        func_or_tool: ToolFunction | Tool,
    ) -> None:
        if isinstance(func_or_tool, Tool):
            name = name or func_or_tool.name
            description = description if description else func_or_tool.description
            function = func_or_tool.func
        elif callable(func_or_tool):
            function = func_or_tool
        else:
            raise ToolRegistrationError(
                f"a tool needs a function or a Tool; got {type(func_or_tool).__name__}"
            )
        tool_name = name or getattr(function, "__name__", None)
        if not tool_name:
            raise ToolRegistrationError(f"{function!r} has no __name__; pass name=")
        self.name: str = tool_name
        self.description: str = (description or "").strip()
        self.func: ToolFunction = function
        self.arguments: type[pydantic.BaseModel] = (
            func_or_tool.arguments
            if isinstance(func_or_tool, Tool)
            else _argument_model(function, tool_name)
        )
        self._schema: dict[str, Any] | None = None

    @classmethod
    def from_function(
        cls, function: ToolFunction, *, name: str | None = None, description: str | None = None
    ) -> Tool:
        """Build a tool from `function`'s signature; `Annotated[T, "text"]` describes a parameter.

        Raises:
            ToolRegistrationError: a parameter is positional-only or variadic, or no description.
        """
        text = description or inspect.getdoc(function)
        if not text:
            tool_name = name or getattr(function, "__name__", repr(function))
            raise ToolRegistrationError(
                f"tool {tool_name!r} needs a description (pass description= or a docstring)"
            )
        return cls(name=name, description=text, func_or_tool=function)

    @property
    def function(self) -> ToolFunction:
        """The function itself (AutoGen calls it `func`)."""
        return self.func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, description={self.description!r})"

    @property
    def function_schema(self) -> dict[str, Any]:
        """The legacy `functions` entry: name, description and JSON-schema parameters."""
        if self._schema is None:
            parameters = self.arguments.model_json_schema()
            parameters.pop("title", None)
            parameters.pop("additionalProperties", None)
            for prop in parameters.get("properties", {}).values():
                prop.pop("title", None)
            parameters.setdefault("properties", {})
            self._schema = {
                "name": self.name,
                "description": self.description,
                "parameters": parameters,
            }
        return copy.deepcopy(self._schema)

    @property
    def tool_schema(self) -> dict[str, Any]:
        """The OpenAI `tools` entry for this function."""
        return {"type": "function", "function": self.function_schema}

    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools` entry for this function (same as `tool_schema`)."""
        return self.tool_schema

    async def run(self, arguments: str | Mapping[str, Any] | Any) -> tuple[bool, str]:
        """Validate `arguments` (JSON text or a mapping), call the function, and return whether
        it succeeded with its result as text; a failure is an "Error: ..." text, never raised."""
        if isinstance(arguments, str):
            if len(arguments) > MAX_ARGUMENT_CHARS:
                return False, (
                    f"Error: the arguments for {self.name} are {len(arguments)} characters long,"
                    f" over the limit of {MAX_ARGUMENT_CHARS}"
                )
            try:
                parsed = (
                    loads_bounded(arguments, max_depth=MAX_ARGUMENT_DEPTH)
                    if arguments.strip()
                    else {}
                )
            except JSONDepthError:
                return False, (
                    f"Error: the arguments for {self.name} nest deeper than"
                    f" {MAX_ARGUMENT_DEPTH} levels"
                )
            except InvalidJSONError as exc:
                return False, f"Error: the arguments for {self.name} are not valid JSON: {exc}"
        elif isinstance(arguments, Mapping):
            parsed = dict(arguments)
        else:
            parsed = arguments
        if not isinstance(parsed, dict):
            return False, f"Error: the arguments for {self.name} must be a JSON object"
        try:
            validated = self.arguments.model_validate(parsed)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
                for error in exc.errors()
            )
            return False, f"Error: invalid arguments for {self.name}: {problems}"
        kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
        try:
            result = self.func(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return False, f"Error: {type(exc).__name__}: {exc}"
        return True, _as_text(result)

    async def call(self, arguments: str | Mapping[str, Any] | Any) -> str:
        """`run`'s text only: the result, or an "Error: ..." text."""
        return (await self.run(arguments))[1]


async def run_tool_calls(lookup: Callable[[str], Tool | None], calls: Sequence[Any]) -> list[str]:
    """Run the tool calls of one answer, at most `MAX_CONCURRENT_TOOL_CALLS` at once: one result
    text per call, in order; a bad call (malformed, unknown tool, bad arguments) gets an error.
    `lookup` finds the tool of a name (None: no such tool)."""
    results = [""] * len(calls)
    room = asyncio.Semaphore(MAX_CONCURRENT_TOOL_CALLS)

    async def one(position: int, call: Any) -> None:
        async with room:
            results[position] = await _run_tool_call(lookup, call)

    async with asyncio.TaskGroup() as group:
        for position, call in enumerate(calls):
            group.create_task(one(position, call))
    return results


def tool_call_id(call: Any) -> Any:
    """The id of a tool call entry, or None when the entry is not a mapping."""
    return call.get("id") if isinstance(call, Mapping) else None


async def _run_tool_call(lookup: Callable[[str], Tool | None], call: Any) -> str:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping):
        return "Error: a tool call needs a 'function' object with a name and arguments"
    name = function.get("name")
    tool = lookup(name) if isinstance(name, str) else None
    if tool is None:
        shown = str(name)[:100]  # an odd name is named, not echoed whole
        return f"Error: Function {shown!r} not found"
    arguments = function.get("arguments")
    call_id = call.get("id")
    with observability.tool_call(tool.name, call_id if isinstance(call_id, str) else None):
        return await tool.call("{}" if arguments is None or arguments == "" else arguments)


def _as_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, pydantic.BaseModel):
        return result.model_dump_json()
    try:
        return json.dumps(result)
    except (TypeError, ValueError):
        return str(result)


def _argument_model(function: ToolFunction, name: str) -> type[pydantic.BaseModel]:
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise ToolRegistrationError(f"cannot read the signature of tool {name!r}: {exc}") from exc
    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ToolRegistrationError(
                f"tool {name!r}: parameter {param.name!r} must be an ordinary named parameter"
            )
        hint = hints.get(param.name, Any)
        hint, text = _description(hint)
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hint, pydantic.Field(default, description=text))
    model: type[pydantic.BaseModel] = pydantic.create_model(
        f"{name}_arguments", __config__=pydantic.ConfigDict(extra="forbid"), **fields
    )
    return model


def _description(hint: Any) -> tuple[Any, str | None]:
    """Split `Annotated[T, "text", ...]` into T and its first string (AutoGen's convention)."""
    if get_origin(hint) is Annotated:
        base, *extras = get_args(hint)
        texts = [extra for extra in extras if isinstance(extra, str)]
        others = [extra for extra in extras if not isinstance(extra, str)]
        if others:
            base = Annotated[(base, *others)]
        return base, texts[0] if texts else None
    return hint, None
