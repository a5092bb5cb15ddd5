"""moot.server: chats behind an HTTP API (`moot serve`), with resumable event streams, human
input and approvals over the web, and a live console page."""

from ._app import MAX_BODY, ServerApp
from ._errors import ServerConfigError, ServerError, UnknownTeamError
from ._runner import ChatRunner, JournalInputProvider
from ._serve import serve
from ._teams import Team, TeamBuilder, Teams, load_setup

__all__ = [
    "MAX_BODY",
    "ChatRunner",
    "JournalInputProvider",
    "ServerApp",
    "ServerConfigError",
    "ServerError",
    "Team",
    "TeamBuilder",
    "Teams",
    "UnknownTeamError",
    "load_setup",
    "serve",
]
