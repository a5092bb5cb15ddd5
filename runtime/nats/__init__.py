"""moot.runtime.nats: scale the runtime out over NATS with JetStream (the `[nats]` extra).

`NatsTransport` carries envelopes between processes, places each key on one live worker by
rendezvous hashing, and sends tells through JetStream so a killed worker loses none. Run a worker
with `python -m moot.runtime.nats --nats URL --agents module:setup` (or `moot worker`).
"""

from ._errors import NoRespondersError, PayloadTooLargeError, TransportUnavailableError
from ._transport import NatsTransport
from ._worker import run_worker

__all__ = [
    "NatsTransport",
    "NoRespondersError",
    "PayloadTooLargeError",
    "TransportUnavailableError",
    "run_worker",
]
