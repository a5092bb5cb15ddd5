"""`moot serve`: open the journal, load the teams, check the bind, run uvicorn."""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys

import uvicorn

from moot.journal import open_store

from ._app import ServerApp
from ._errors import ServerConfigError
from ._teams import load_setup

TOKEN_ENV = "MOOT_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin_token(host: str, given: str | None) -> tuple[str, bool]:
    """The admin token (given, from $MOOT_SERVE_TOKEN, or generated) and whether it was made here.

    Raises:
        ServerConfigError: a non-loopback bind without a token given.
    """
    token = given or os.environ.get(TOKEN_ENV)
    if token:
        return token, False
    if not is_loopback(host):
        raise ServerConfigError(
            f"refusing to bind {host} (not loopback) without a token: pass --token or set"
            f" {TOKEN_ENV}"
        )
    return secrets.token_urlsafe(24), True


async def serve(
    agents: str,
    *,
    store_url: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
) -> None:
    """Serve the teams `agents` (module:function) until interrupted.

    Raises:
        ServerConfigError: bad --agents, or a public bind without a token.
        StoreUnavailableError: the journal cannot be opened.
    """
    secret, generated = admin_token(host, token)
    teams = load_setup(agents)
    async with await open_store(store_url) as store:
        app = ServerApp(store, teams, admin_token=secret)
        shown = secret if generated else "(the one you gave)"
        sys.stderr.write(
            f"moot serve: teams {', '.join(teams.names())} on http://{host}:{port}/\n"
            f"  admin token: {shown}\n  console: http://{host}:{port}/#token=<admin token>\n"
        )
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        await uvicorn.Server(config).serve()
