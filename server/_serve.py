"""`moot serve`: open the journal, load the teams, check the bind, run uvicorn."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import sys
from typing import TYPE_CHECKING, Any

import uvicorn

from moot.journal import open_store

from ._app import ServerApp
from ._errors import ServerConfigError
from ._teams import load_setup

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from moot.runtime import Runtime

TOKEN_ENV = "MOOT_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.asynccontextmanager
async def chat_runtime(nats: str | None, **options: Any) -> AsyncIterator[Runtime | None]:
    """The runtime the server's chats run on: None (each chat its own, in this process), or a
    started client runtime on the NATS server `nats` (`options` go to `NatsTransport`)."""
    if nats is None:
        yield None
        return
    from moot.runtime import Runtime
    from moot.runtime.nats import NatsTransport

    async with Runtime(transport=NatsTransport(nats, name="moot-serve", **options)) as runtime:
        yield runtime


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
    nats: str | None = None,
) -> None:
    """Serve the teams `agents` (module:function) until interrupted; with `nats` (a server URL)
    the teams' chats run on `moot worker` processes that host their agents.

    Raises:
        ServerConfigError: bad --agents, or a public bind without a token.
        StoreUnavailableError: the journal cannot be opened.
        TransportUnavailableError: the NATS server cannot be reached.
    """
    secret, generated = admin_token(host, token)
    teams = load_setup(agents)
    async with await open_store(store_url) as store, chat_runtime(nats) as runtime:
        app = ServerApp(store, teams, admin_token=secret, runtime=runtime)
        shown = secret if generated else "(the one you gave)"
        sys.stderr.write(
            f"moot serve: teams {', '.join(teams.names())} on http://{host}:{port}/\n"
            f"  admin token: {shown}\n  console: http://{host}:{port}/#token=<admin token>\n"
        )
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        await uvicorn.Server(config).serve()
