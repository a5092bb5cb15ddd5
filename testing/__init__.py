"""moot.testing: fakes to test moot programs without a real LLM, starting with a scripted server."""

from ._script import RecordedRequest, Reply, Responder, Rule
from ._server import ScriptedModelServer

__all__ = ["RecordedRequest", "Reply", "Responder", "Rule", "ScriptedModelServer"]
