"""moot.testing: fakes for testing moot programs without an LLM, a broker or real time:
`ScriptedModelServer` (a real OpenAI-compatible HTTP server on loopback), `LoopbackNetwork`
(runtimes joined in one process through the codec) and the fake clock."""

from ._clock import FakeClock
from ._loopback import LoopbackNetwork, LoopbackTransport
from ._script import RecordedRequest, Reply, Responder, Rule
from ._server import ScriptedModelServer

__all__ = [
    "FakeClock",
    "LoopbackNetwork",
    "LoopbackTransport",
    "RecordedRequest",
    "Reply",
    "Responder",
    "Rule",
    "ScriptedModelServer",
]
