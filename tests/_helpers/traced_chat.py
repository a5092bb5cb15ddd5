"""The client side of the cross-process group-chat trace test:
`python traced_chat.py <nats url> <model url> [chat id]` runs classic_app's group chat (its
agents live on `moot worker` processes) inside the user's own span, exports its spans from the
`OTEL_*` environment, and prints the chat's message count.
"""

from __future__ import annotations

import asyncio
import sys

from classic_app import build
from opentelemetry import trace

from moot import observability
from moot.runtime import Runtime
from moot.runtime.nats import NatsTransport

CHAT_ID = "traced-group"


async def client(nats_url: str, model_url: str, chat_id: str = CHAT_ID) -> None:
    telemetry = observability.configure_from_env(service_name="client")
    assert telemetry is not None, "the test sets OTEL_EXPORTER_OTLP_ENDPOINT"
    app = build(model_url)  # stand-ins: the chat runs on the workers
    runtime = Runtime(transport=NatsTransport(nats_url))
    try:
        async with runtime:
            # The user's own span, with the user's own tracer: moot's spans nest under it.
            with trace.get_tracer("traced_chat").start_as_current_span("plan a launch"):
                result = await app.manager.a_run("plan a launch", runtime=runtime, chat_id=chat_id)
    finally:
        telemetry.shutdown()
    print(len(result.chat_history))  # noqa: T201 - the test reads it


if __name__ == "__main__":
    asyncio.run(client(*sys.argv[1:4]))
