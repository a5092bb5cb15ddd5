"""`moot model serve`: the embedded model as an OpenAI-compatible chat-completions API on loopback.

The HTTP layer is moot.testing's (`ModelClientServer`), the one server implementation moot has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from moot.models import LOCAL_MODEL_NAME, LocalModelClient
from moot.testing import ModelClientServer

from ._errors import ExitCode, MissingError

if TYPE_CHECKING:
    from ._output import Output


def serve(port: int, out: Output) -> ExitCode:
    """Run the server until Ctrl-C."""
    from moot.models import cached_model

    if cached_model() is None:
        raise MissingError("the embedded model is not cached", hint="run `moot model fetch`")

    async def run() -> None:
        async with (
            LocalModelClient() as client,
            ModelClientServer(client, model=LOCAL_MODEL_NAME, port=port) as server,
        ):
            out.say(f"serving {LOCAL_MODEL_NAME} at {server.base_url} (Ctrl-C stops)")
            await anyio.sleep_forever()

    anyio.run(run)
    return ExitCode.OK
