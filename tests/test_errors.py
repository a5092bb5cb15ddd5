"""One error tree: every exception class of every `moot.*` module sits under `MootError`, and the
drawing in `moot.runtime._errors` names each public one."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import TYPE_CHECKING

import pytest

import moot.runtime._errors as errors_module
from moot.agents import AgentConfigError
from moot.bench import BenchConfigError
from moot.executors import ExecutorConfigError
from moot.groupchat import (
    AgentNameConflictError,
    GroupChatConfigError,
    GroupChatError,
    NoEligibleSpeakerError,
    SpeakerSelectionError,
    UndefinedNextAgentError,
)
from moot.models import LLMConfigError
from moot.runtime import ConfigError, MootError

if TYPE_CHECKING:
    from types import ModuleType

PACKAGES = (
    "moot.runtime",
    "moot.models",
    "moot.agents",
    "moot.groupchat",
    "moot.executors",
    "moot.journal",
    "moot.testing",
    "moot.cli",
    "moot.bench",
    "moot.observability",
    "moot.server",
)


def _modules() -> list[ModuleType]:
    found: list[ModuleType] = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, prefix=name + "."):
            if info.name.rsplit(".", 1)[-1] == "__main__":  # importing it would run it
                continue
            found.append(importlib.import_module(info.name))
    return found


def _exception_classes() -> list[type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for module in _modules():
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                classes[f"{value.__module__}.{value.__qualname__}"] = value
    return list(classes.values())


def test_the_walk_finds_the_errors_of_every_package() -> None:
    modules = {cls.__module__.split(".")[1] for cls in _exception_classes()}
    assert modules == {name.split(".")[1] for name in PACKAGES} - {"testing"}


def test_every_exception_class_is_under_moot_error() -> None:
    outside = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _exception_classes()
        if not issubclass(cls, MootError)
    )
    assert not outside, f"these exception classes are outside the MootError tree: {outside}"


def test_the_one_drawing_names_every_public_error() -> None:
    drawing = errors_module.__doc__ or ""
    missing = sorted(
        cls.__name__
        for cls in _exception_classes()
        if not cls.__name__.startswith("_") and f" {cls.__name__}" not in drawing
    )
    assert not missing, f"draw these in moot.runtime._errors' docstring: {missing}"


def test_no_other_module_draws_a_tree() -> None:
    drawers = sorted(
        module.__name__
        for module in _modules()
        if module is not errors_module and "├──" in (module.__doc__ or "")
    )
    assert not drawers, f"the error tree is drawn once, in moot.runtime._errors: {drawers}"


def test_every_configuration_error_is_a_config_error_and_a_value_error() -> None:
    config_errors = [cls for cls in _exception_classes() if cls.__name__.endswith("ConfigError")]
    assert set(config_errors) >= {
        AgentConfigError,
        BenchConfigError,
        ExecutorConfigError,
        GroupChatConfigError,
        LLMConfigError,
    }
    for cls in config_errors:
        assert issubclass(cls, ConfigError), cls
        assert issubclass(cls, ValueError), cls


@pytest.mark.parametrize(
    "cls",
    [
        GroupChatError,
        AgentNameConflictError,
        UndefinedNextAgentError,
        NoEligibleSpeakerError,
        SpeakerSelectionError,
    ],
)
def test_group_chat_errors_are_value_errors_as_autogen_users_catch_them(
    cls: type[GroupChatError],
) -> None:
    assert issubclass(cls, GroupChatError)
    assert issubclass(cls, ValueError)


def test_a_config_error_names_its_setting() -> None:
    from moot.runtime import AgentId, Mailbox

    with pytest.raises(ConfigError, match="capacity") as caught:
        Mailbox(0, AgentId("a", "b"))
    assert caught.value.setting == "capacity"


def test_two_agents_of_one_name_in_a_group_are_an_agent_name_conflict() -> None:
    from moot.agents import ConversableAgent
    from moot.groupchat import GroupChat

    first = ConversableAgent("ann", llm_config=False)
    second = ConversableAgent("ann", llm_config=False)
    with pytest.raises(AgentNameConflictError, match="ann"):
        GroupChat(agents=[first, second])


def test_next_agent_among_outsiders_is_an_undefined_next_agent() -> None:
    from moot.agents import ConversableAgent
    from moot.groupchat import GroupChat

    ann, bob = ConversableAgent("ann", llm_config=False), ConversableAgent("bob", llm_config=False)
    outsider = ConversableAgent("eve", llm_config=False)
    group = GroupChat(agents=[ann, bob])
    assert group.next_agent(ann) is bob
    with pytest.raises(UndefinedNextAgentError):
        group.next_agent(ann, [outsider])
