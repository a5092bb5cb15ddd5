"""Named teams: what `setup` registers and clients start by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import ServerConfigError, UnknownTeamError

if TYPE_CHECKING:
    from moot.agents import ConversableAgent

#: Builds a fresh pair for one chat: (the initiator, the recipient). A group chat is
#: (a user proxy, its GroupChatManager). The server sets every agent's input provider.
TeamBuilder = Callable[[], "tuple[ConversableAgent, ConversableAgent]"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Team:
    """One registered team: its name, a line about it, and its builder."""

    name: str
    description: str
    build: TeamBuilder


class Teams:
    """The registry `setup(teams)` fills: `teams.add("pair", build)`."""

    def __init__(self) -> None:
        self._teams: dict[str, Team] = {}

    def add(self, name: str, build: TeamBuilder, *, description: str = "") -> None:
        """Register `build` under `name`.

        Raises:
            ServerConfigError: the name is empty or taken.
        """
        if not name or name in self._teams:
            raise ServerConfigError(f"team name {name!r} is empty or registered already")
        self._teams[name] = Team(name=name, description=description, build=build)

    def get(self, name: str) -> Team:
        """Raises: UnknownTeamError: no team has that name."""
        try:
            return self._teams[name]
        except KeyError:
            known = ", ".join(sorted(self._teams)) or "none"
            raise UnknownTeamError(f"no team named {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._teams)


def load_setup(spec: str) -> Teams:
    """Import `module:function` and call it with a fresh `Teams`.

    Raises:
        ServerConfigError: the spec is malformed, the import fails or setup registers nothing.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ServerConfigError(f"--agents takes module:function, not {spec!r}")
    try:
        setup = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ServerConfigError(f"cannot load {spec!r}: {exc}") from exc
    teams = Teams()
    setup(teams)
    if not teams.names():
        raise ServerConfigError(f"{spec} registered no team")
    return teams
