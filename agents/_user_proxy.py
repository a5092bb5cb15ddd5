"""`UserProxyAgent`: stands in for the user, runs the code it receives and asks a human."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ._conversable import ConversableAgent, HumanInputMode

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from moot.executors import Executor
    from moot.models import LLMConfig, ModelClient

    from ._human_input import InputProvider

_DESCRIPTIONS = {
    "ALWAYS": "An attentive human user who runs the code it is given and reports the results.",
    "TERMINATE": "A user who runs the code it is given, reports the results and may step in at"
    " the end.",
    "NEVER": "A computer terminal that runs the Python and shell code it is given and reports"
    " the output; it does not write code or speak otherwise.",
}


class UserProxyAgent(ConversableAgent):
    """A `ConversableAgent` that asks a human every turn (ALWAYS) and runs code by default; it
    has no model unless given an `llm_config`."""

    def __init__(
        self,
        name: str,
        is_termination_msg: Callable[[Mapping[str, Any]], bool] | None = None,
        max_consecutive_auto_reply: int | None = None,
        human_input_mode: HumanInputMode = "ALWAYS",
        function_map: Mapping[str, Callable[..., Any]] | None = None,
        code_execution_config: Mapping[str, Any] | Executor | Literal[False] | None = None,
        default_auto_reply: str | Mapping[str, Any] = "",
        llm_config: Mapping[str, Any] | LLMConfig | Literal[False] | None = False,
        system_message: str | None = "",
        description: str | None = None,
        *,
        input_provider: InputProvider | None = None,
        model_client: ModelClient | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            name,
            system_message=system_message,
            is_termination_msg=is_termination_msg,
            max_consecutive_auto_reply=max_consecutive_auto_reply,
            human_input_mode=human_input_mode,
            function_map=function_map,
            code_execution_config={} if code_execution_config is None else code_execution_config,
            llm_config=llm_config,
            default_auto_reply=default_auto_reply,
            description=description
            if description is not None
            else _DESCRIPTIONS.get(human_input_mode, ""),
            input_provider=input_provider,
            model_client=model_client,
            **kwargs,
        )
