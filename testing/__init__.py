"""moot.testing: fakes for testing moot programs without an LLM, a broker or real time:
`ScriptedModelServer` (a real OpenAI-compatible HTTP server on loopback), `ScriptedModelClient`
(the model seam faked in process, driven by the same script), `ModelClientServer` (any
`ModelClient` served over the same HTTP layer; `moot model serve` uses it), `LoopbackNetwork`
(runtimes joined in one process through the codec) and `ManualClock` (the one fake clock, for the
runtime's `Clock` seam and for retry and rate-limit sleeps)."""

from ._client import ScriptedModelClient
from ._clock import ManualClock
from ._http import LoopbackHTTPServer
from ._loopback import LoopbackNetwork, LoopbackTransport
from ._script import RecordedRequest, Reply, Responder, Rule
from ._serve import ModelClientServer
from ._server import ScriptedModelServer

__all__ = [
    "LoopbackHTTPServer",
    "LoopbackNetwork",
    "LoopbackTransport",
    "ManualClock",
    "ModelClientServer",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Rule",
    "ScriptedModelClient",
    "ScriptedModelServer",
]
