"""`AssistantAgent`: a model-backed agent that answers with code to run and says TERMINATE."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ._conversable import ConversableAgent, HumanInputMode

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from moot.executors import Executor
    from moot.models import LLMConfig, ModelClient

    from ._human_input import InputProvider

ASSISTANT_SYSTEM_MESSAGE = """You are a capable assistant who solves tasks with code and reasoning.
When a task needs information or computation, write Python (in a ```python block) or shell \
(in a ```sh block) code for the user to run; the user can only run code you write in full, and \
reports back its exit code and output. Write each program completely, without placeholders for \
the user to fill in, and put one program per code block. To save the code to a file before it \
runs, make `# filename: <name>` its first line. Print results instead of asking the user to look \
at them.
If the code fails, read the error, fix the problem and send the corrected code in full. If it \
keeps failing, rethink the approach.
Work step by step and explain your plan briefly when it helps. When the task is done and the \
results are confirmed, reply with a short answer that ends with the word TERMINATE."""

ASSISTANT_DESCRIPTION = (
    "A helpful assistant that solves problems with Python and shell code and general knowledge."
)


class AssistantAgent(ConversableAgent):
    """A `ConversableAgent` with a model, no human input and no code execution by default."""

    DEFAULT_SYSTEM_MESSAGE = ASSISTANT_SYSTEM_MESSAGE
    DEFAULT_DESCRIPTION = ASSISTANT_DESCRIPTION

    def __init__(
        self,
        name: str,
        system_message: str | None = ASSISTANT_SYSTEM_MESSAGE,
        llm_config: Mapping[str, Any] | LLMConfig | Literal[False] | None = None,
        is_termination_msg: Callable[[Mapping[str, Any]], bool] | None = None,
        max_consecutive_auto_reply: int | None = None,
        human_input_mode: HumanInputMode = "NEVER",
        description: str | None = None,
        *,
        function_map: Mapping[str, Callable[..., Any]] | None = None,
        code_execution_config: Mapping[str, Any] | Executor | Literal[False] | None = False,
        default_auto_reply: str | Mapping[str, Any] = "",
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
            code_execution_config=code_execution_config,
            llm_config=llm_config,
            default_auto_reply=default_auto_reply,
            description=description
            if description is not None
            else (ASSISTANT_DESCRIPTION if system_message == ASSISTANT_SYSTEM_MESSAGE else None),
            input_provider=input_provider,
            model_client=model_client,
            **kwargs,
        )

    @property
    def writes_code(self) -> bool:
        """An assistant's code runs under the default `execute_from`, with or without a model."""
        return True
