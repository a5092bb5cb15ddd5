"""moot.testing: fakes to test moot programs without a real LLM, starting with a scripted server."""

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
