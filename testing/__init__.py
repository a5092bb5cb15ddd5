"""moot.testing: fakes for testing moot programs without an LLM, a broker or real time:
`ScriptedModelServer` (a real OpenAI-compatible HTTP server on loopback), `LoopbackNetwork`
(runtimes joined in one process through the codec) and `ManualClock` (the one fake clock, for the
runtime's `Clock` seam and for retry and rate-limit sleeps)."""

from ._clock import ManualClock
from ._loopback import LoopbackNetwork, LoopbackTransport
from ._script import RecordedRequest, Reply, Responder, Rule
from ._server import ScriptedModelServer

__all__ = [
    "LoopbackNetwork",
    "LoopbackTransport",
    "ManualClock",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Rule",
    "ScriptedModelServer",
]
