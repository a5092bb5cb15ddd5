"""The server's errors: each maps to one HTTP status and a JSON body, never a traceback."""

from __future__ import annotations

from moot.runtime import ConfigError, MootError


class ServerError(MootError):
    """A request the server refuses; `status` is the HTTP status it answers with."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UnknownTeamError(ServerError):
    """`POST /chats` named a team that `setup` did not register."""

    status = 404


class ServerConfigError(ServerError, ConfigError):
    """`moot serve` cannot start as asked (a public bind without a token, a bad --agents)."""

    status = 500

    def __init__(self, message: str, *, status: int | None = None) -> None:
        ServerError.__init__(self, message, status=status)
        self.setting = None
