"""What an agent offers its model: tool schemas (`tools`) and legacy function signatures
(`functions`), kept in one place and mirrored into the agent's `llm_config` dict, as AutoGen code
reads them there.

Both kinds go to the model as `tools`; a model that answers with a legacy `function_call` is still
understood (see `ConversableAgent.generate_function_call_reply`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ._errors import ToolRegistrationError

if TYPE_CHECKING:
    from moot.models import LLMConfig

    from ._tools import Tool

ApiStyle = Literal["tool", "function"]


def take_legacy_functions(config: LLMConfig) -> tuple[LLMConfig, list[dict[str, Any]]]:
    """Take AutoGen's `functions` key out of the parameters sent verbatim."""
    functions = config.params.get("functions")
    if functions is None:
        return config, []
    if not isinstance(functions, list | tuple) or not all(
        isinstance(each, Mapping) for each in functions
    ):
        raise ToolRegistrationError("llm_config['functions'] must be a list of dicts")
    params = {key: value for key, value in config.params.items() if key != "functions"}
    return config.model_copy(update={"params": params}), [dict(each) for each in functions]


def _signature_name(signature: Mapping[str, Any], style: ApiStyle) -> str:
    inner = signature.get("function") if style == "tool" else signature
    name = inner.get("name") if isinstance(inner, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ToolRegistrationError(f"a {style} signature needs a name; got {dict(signature)!r}")
    return name


class ToolRegistry:
    """An agent's tool and function signatures, and the `Tool` objects registered for them."""

    __slots__ = ("_functions", "_llm_config", "_objects", "_tools", "request")

    def __init__(self) -> None:
        self._tools: dict[str, dict[str, Any]] = {}
        self._functions: dict[str, dict[str, Any]] = {}
        self._objects: dict[str, Tool] = {}
        self._llm_config: dict[str, Any] | None = None
        # The `tools` of a model request (None when there are none), built once per change.
        self.request: list[dict[str, Any]] | None = None

    def start(
        self,
        llm_config: dict[str, Any],
        tools: Sequence[Mapping[str, Any]],
        functions: Sequence[Mapping[str, Any]],
    ) -> None:
        """Attach to the agent's `llm_config` dict, with the signatures it was built with."""
        self._llm_config = llm_config
        for tool in tools:
            self._tools[_signature_name(tool, "tool")] = dict(tool)
        for function in functions:
            self._functions[_signature_name(function, "function")] = dict(function)
        self._changed()

    @property
    def attached(self) -> bool:
        return self._llm_config is not None

    @property
    def objects(self) -> list[Tool]:
        return list(self._objects.values())

    def add_tool(self, tool: Tool, api_style: ApiStyle) -> None:
        if api_style == "function":
            self._put(self._functions, tool.name, tool.function_schema)
        else:
            self._put(self._tools, tool.name, tool.tool_schema)
        self._objects[tool.name] = tool
        self._changed()

    def remove_tool(self, tool: Tool | str) -> None:
        """Raises:
        ToolRegistrationError: no tool of that name is offered."""
        name = tool if isinstance(tool, str) else tool.name
        if name not in self._tools and name not in self._functions:
            raise ToolRegistrationError(f"no tool named {name!r} is offered to the model")
        self._tools.pop(name, None)
        self._functions.pop(name, None)
        self._objects.pop(name, None)
        self._changed()

    def update(
        self, signature: Mapping[str, Any] | str, *, is_remove: bool, style: ApiStyle
    ) -> None:
        """Add or replace a signature (a dict), or remove one (a dict or its name).

        Raises:
            ToolRegistrationError: a signature without a name.
        """
        table = self._functions if style == "function" else self._tools
        name = signature if isinstance(signature, str) else _signature_name(signature, style)
        if is_remove:
            table.pop(name, None)
            self._objects.pop(name, None)
        elif isinstance(signature, str):
            raise ToolRegistrationError(f"to add a {style} signature, give a dict, not a name")
        else:
            self._put(table, name, dict(signature))
        self._changed()

    @staticmethod
    def _put(table: dict[str, dict[str, Any]], name: str, signature: dict[str, Any]) -> None:
        if name in table:
            warnings.warn(
                f"the signature of {name!r} replaces an earlier one", UserWarning, stacklevel=4
            )
        table[name] = signature

    def _changed(self) -> None:
        config = self._llm_config
        if config is not None:
            for key, table in (("tools", self._tools), ("functions", self._functions)):
                if table:
                    config[key] = list(table.values())
                else:
                    config.pop(key, None)
        request = list(self._tools.values())
        request += [{"type": "function", "function": sig} for sig in self._functions.values()]
        self.request = request or None
