"""The names moot's spans, events and metrics carry: the OpenTelemetry GenAI semantic conventions
plus moot's own, in one place so every layer spells them the same way.

`OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` switches the few names the GenAI
conventions renamed (the provider, recorded content) to their latest experimental spelling; by
default the older, widely supported spelling is used.
"""

from __future__ import annotations

import os

# ----------------------------------------------------------------- span names and operations
OP_INVOKE_WORKFLOW = "invoke_workflow"
OP_INVOKE_AGENT = "invoke_agent"
OP_CHAT = "chat"
OP_EXECUTE_TOOL = "execute_tool"
SPAN_EXECUTE_CODE = "execute_code"  # moot's own: one code block run by an executor
SPAN_SELECT_SPEAKER = "select_speaker"  # moot's own: a group chat picks the next speaker

# ----------------------------------------------------------------- GenAI attributes
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_SYSTEM = "gen_ai.system"  # the provider, before the conventions renamed it
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"  # the provider, latest experimental spelling
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_AGENT_ID = "gen_ai.agent.id"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"  # content, only when the user opts in
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"  # content, only when the user opts in
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

# ----------------------------------------------------------------- moot's own attributes
MOOT_COST = "moot.cost.usd"
MOOT_CACHED = "moot.model.cached"
MOOT_TURN = "moot.chat.turn"
MOOT_WORKFLOW_KIND = "moot.chat.kind"  # "group_chat" or "two_agent_chat"
MOOT_STOP_REASON = "moot.chat.stop_reason"
MOOT_SELECTION_POLICY = "moot.speaker.policy"
MOOT_SELECTION_CANDIDATES = "moot.speaker.candidates"
MOOT_SELECTION_CHOSEN = "moot.speaker.chosen"
MOOT_SELECTION_SELECTOR_CALLS = "moot.speaker.selector_calls"  # model calls made to choose
MOOT_CODE_LANGUAGE = "moot.code.language"
MOOT_CODE_EXIT_CODE = "moot.code.exit_code"
MOOT_CODE_TIMED_OUT = "moot.code.timed_out"
MOOT_CODE_OOM_KILLED = "moot.code.oom_killed"
MOOT_CODE_DURATION = "moot.code.duration_s"
MOOT_SANDBOX_SLOT = "moot.sandbox.slot"
MOOT_EXECUTOR = "moot.executor"

# ----------------------------------------------------------------- span events
EVENT_RETRY = "moot.model.retry"  # a failed model attempt that will be tried again
EVENT_RATE_LIMIT_WAIT = "moot.model.rate_limit_wait"  # waited for the client-side budget
EVENT_CANCELLED = "moot.cancelled"

# ----------------------------------------------------------------- metrics
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_TURNS = "moot.chat.turns"
METRIC_CHATS_RUNNING = "moot.chats.running"
METRIC_COST = "moot.cost"
METRIC_DEAD_LETTERS = "moot.runtime.dead_letters"
METRIC_MAILBOX_DEPTH = "moot.runtime.mailbox.depth"
METRIC_MAILBOX_WAITING = "moot.runtime.mailbox.waiting_senders"
METRIC_EXECUTOR_POOL = "moot.executor.pool.size"
METRIC_EXECUTOR_FREE = "moot.executor.pool.free"
METRIC_EXECUTOR_BUSY = "moot.executor.pool.busy"
METRIC_SANDBOX_RUN_DURATION = "moot.sandbox.run.duration"

# ----------------------------------------------------------------- the stability switch
_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_EXPERIMENTAL = "gen_ai_latest_experimental"


def latest_experimental() -> bool:
    """True when `OTEL_SEMCONV_STABILITY_OPT_IN` lists `gen_ai_latest_experimental`."""
    values = os.environ.get(_OPT_IN, "")
    return LATEST_EXPERIMENTAL in {v.strip() for v in values.split(",")}


def provider_attribute() -> str:
    """The provider's attribute name under the conventions the user opted into."""
    return GEN_AI_PROVIDER_NAME if latest_experimental() else GEN_AI_SYSTEM
