"""moot.testing: fakes to test moot programs without a real LLM, starting with a scripted server."""

from ._clock import FakeClock
from ._script import RecordedRequest, Reply, Responder, Rule
from ._server import ScriptedModelServer

__all__ = ["FakeClock", "RecordedRequest", "Reply", "Responder", "Rule", "ScriptedModelServer"]
