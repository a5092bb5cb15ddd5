"""The LLM speaker selector, and the tolerant reading of a model's answer.

One clear answer costs one model call. The selector asks for JSON with the candidates as an
enum when the server accepts `response_format`, and reads plain answers tolerantly: case,
spaces, underscores, a "Next speaker:" prefix, quotes, markdown, or the name inside a sentence.
Only an answer that names nobody legal, or several candidates, earns a corrective retry; after
the retries, the fallback picks among the legal candidates only.
"""

from __future__ import annotations

import re
import weakref
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import structlog

from moot.models import BadRequestError, InvalidJSONError, ModelRequest, loads_bounded

from ._errors import GroupChatConfigError, GroupChatError
from ._events import SpeakerSelectedEvent
from ._policies import RoundRobin, Selection, SpeakerPolicy, describe
from ._state import GroupChatState, NoSpeaker

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from moot.models import ModelClient, ModelResponse

log = structlog.get_logger("moot.agents.groupchat")

SELECT_SPEAKER_MESSAGE_TEMPLATE = (
    "You coordinate a conversation between these participants:\n{roles}\n\n"
    "Read the conversation, then decide who of {agentlist} should speak next."
    " Answer with that one name and nothing else."
)
SELECT_SPEAKER_PROMPT_TEMPLATE = (
    "Given the conversation above, who of {agentlist} should speak next?"
    " Answer with that one name and nothing else."
)
_JSON_KEYS = ("speaker", "next_speaker", "name", "agent", "role", "next")


@lru_cache(maxsize=1024)
def _name_pattern(name: str) -> re.Pattern[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)  # CodeWriter -> Code Writer
    tokens = re.findall(r"[^\W_]+", spaced)
    body = r"[\s_\-.]*".join(map(re.escape, tokens)) if tokens else re.escape(name)
    return re.compile(r"(?<![^\W_])" + body + r"(?![^\W_])", re.IGNORECASE)


def _find(text: str, names: Sequence[str]) -> list[str]:
    """Distinct names mentioned in `text`, in order of first mention; longer names win overlaps."""
    spans: list[tuple[int, int, str]] = []
    for name in sorted(set(names), key=len, reverse=True):
        for match in _name_pattern(name).finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e, _ in spans):
                continue
            spans.append((start, end, name))
    seen: dict[str, None] = {}
    for _, _, name in sorted(spans):
        seen[name] = None
    return list(seen)


def _json_answer(text: str) -> str | None:
    stripped = text.strip().strip("`")
    if stripped.startswith("json"):
        stripped = stripped[4:]
    if not stripped.lstrip().startswith("{"):
        return None
    data = _loads_shallow(stripped)
    if isinstance(data, dict):
        for key in _JSON_KEYS:
            value = data.get(key)
            if isinstance(value, str):
                return value
    return None


_MAX_ANSWER_DEPTH = 16  # a speaker answer is `{"speaker": "name"}`; deeper JSON is read as text


def _loads_shallow(text: str) -> Any:
    """The JSON value of `text`, or None when it is not JSON or nests deeper than
    `_MAX_ANSWER_DEPTH` (so a hostile answer is read as text, never recursed into)."""
    try:
        return loads_bounded(text, max_depth=_MAX_ANSWER_DEPTH)
    except InvalidJSONError:
        return None


def parse_names(text: str | None, candidates: Sequence[str]) -> tuple[str, ...]:
    """The candidates an answer names: one for a clear answer, none or several otherwise.

    Reads JSON (`{"speaker": "..."}`), then the whole answer, then looks for names inside it;
    when a sentence names several, a final "...: name" or a first line naming one settles it.
    """
    if not text or not text.strip():
        return ()
    inner = _json_answer(text)
    if inner is not None:
        text = inner
    found = _find(text, candidates)
    if len(found) <= 1:
        return tuple(found)
    for part in (text.rsplit(":", 1)[-1], text.strip().splitlines()[0]):
        narrowed = _find(part, candidates)
        if len(narrowed) == 1:
            return tuple(narrowed)
    return tuple(found)


def _speaker_schema(candidates: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "next_speaker",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"speaker": {"type": "string", "enum": list(candidates)}},
                "required": ["speaker"],
                "additionalProperties": False,
            },
        },
    }


_NAME_RE = re.compile(r"[^a-zA-Z0-9_-]")


def _wire_name(name: str) -> str:
    return _NAME_RE.sub("_", name)[:64] or "participant"


class LLMSelector(SpeakerPolicy):
    """The model picks the next speaker from the conversation and the roster's descriptions.

    `client` defaults to the manager's model client. `structured_output`: True always asks for
    JSON, False never, None (the default) asks and stops asking a server that refuses it.
    After `max_retries` corrective retries, `fallback` (round robin) picks among the candidates.
    """

    def __init__(
        self,
        client: ModelClient | None = None,
        *,
        structured_output: bool | None = None,
        max_retries: int = 2,
        message_template: str = SELECT_SPEAKER_MESSAGE_TEMPLATE,
        prompt_template: str | None = SELECT_SPEAKER_PROMPT_TEMPLATE,
        role_for_prompt: str = "system",
        fallback: SpeakerPolicy | None = None,
        multiple_template: str | None = None,
        none_template: str | None = None,
    ) -> None:
        if max_retries < 0:
            raise GroupChatConfigError(
                f"max_retries must be 0 or more, got {max_retries}", setting="max_retries"
            )
        self.client = client
        self.structured_output = structured_output
        self.max_retries = max_retries
        self.message_template = message_template
        self.prompt_template = prompt_template
        self.role_for_prompt = role_for_prompt
        self.fallback = fallback or RoundRobin()
        self.multiple_template = multiple_template  # the retry prompt after several names
        self.none_template = none_template  # the retry prompt after no name
        self._refused: weakref.WeakSet[ModelClient] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"LLMSelector(max_retries={self.max_retries})"

    def prompt(self, chat: GroupChatState, candidates: Sequence[str]) -> list[dict[str, Any]]:
        """The messages the model is asked with: roster, conversation, question."""
        roles = "\n".join(
            f"{name}: {chat.descriptions.get(name) or 'a participant'}" for name in candidates
        )
        agentlist = str(list(candidates))
        messages: list[dict[str, Any]] = [
            {
                "role": "system",
                "content": self.message_template.format(roles=roles, agentlist=agentlist),
            }
        ]
        for message in chat.messages:
            text = describe(message)
            if not text:
                continue
            entry: dict[str, Any] = {"role": "user", "content": text}
            name = message.get("name")
            if isinstance(name, str) and name:
                entry["name"] = _wire_name(name)
            messages.append(entry)
        if self.prompt_template:
            messages.append(
                {
                    "role": self.role_for_prompt,
                    "content": self.prompt_template.format(agentlist=agentlist),
                }
            )
        return messages

    async def select(self, chat: GroupChatState, candidates: Sequence[str]) -> Selection:
        if not candidates:
            return NoSpeaker("no participant may speak")
        if len(candidates) == 1:
            return candidates[0]  # nothing to ask
        client = self.client or chat.model_client
        if client is None:
            raise GroupChatError(
                "speaker_selection_method='auto' needs a model, and the speaker selector has no LLM"
                " configuration: give the GroupChatManager an llm_config, or pass"
                " select_speaker_auto_llm_config to the GroupChat"
            )
        messages = self.prompt(chat, candidates)
        shortlist: tuple[str, ...] = ()  # the first answer that named several candidates
        for attempt in range(self.max_retries + 1):
            response = await self._ask(client, messages, candidates)
            await chat.record_usage("selector", response)
            named = parse_names(response.content, candidates)
            if len(named) == 1:
                return named[0]
            shortlist = shortlist or named
            log.info(
                "groupchat.selector_unclear",
                chat=chat.chat_id,
                attempt=attempt,
                named=len(named),
            )
            messages = [
                *messages,
                {"role": "assistant", "content": response.content or ""},
                {"role": "user", "content": self._correction(chat, response, named, candidates)},
            ]
        if shortlist:
            return shortlist[0]  # the model did name legal speakers: take its first
        return await self.fallback.select(chat, candidates)

    def _correction(
        self,
        chat: GroupChatState,
        response: ModelResponse,
        named: Sequence[str],
        candidates: Sequence[str],
    ) -> str:
        choices = ", ".join(candidates)
        agentlist = str(list(candidates))
        if named and self.multiple_template:
            return self.multiple_template.replace("{agentlist}", agentlist)
        if named:
            return (
                f"That names more than one participant ({', '.join(named)})."
                f" Reply with exactly one name from: {choices}."
            )
        others = [n for n in _find(response.content or "", chat.participants) if n not in named]
        if others:
            return (
                f"{', '.join(others)} may not speak now."
                f" Reply with exactly one name from: {choices}."
            )
        if self.none_template:
            return self.none_template.replace("{agentlist}", agentlist)
        return f"That names no participant. Reply with exactly one name from: {choices}."

    async def _ask(
        self, client: ModelClient, messages: list[dict[str, Any]], candidates: Sequence[str]
    ) -> ModelResponse:
        wants_json = self.structured_output is not False and client not in self._refused
        plain = ModelRequest(messages=messages)
        if not wants_json:
            return await client.create(plain)
        try:
            return await client.create(
                plain.with_options(response_format=_speaker_schema(candidates))
            )
        except BadRequestError:
            if self.structured_output:
                raise
            self._refused.add(client)
            log.info("groupchat.selector_plain_text", client=repr(client))
            return await client.create(plain)


def selected_event(chat: GroupChatState, speaker: str, policy: object) -> SpeakerSelectedEvent:
    """The event for a decided turn (built only when someone listens)."""
    return SpeakerSelectedEvent(
        chat_id=chat.chat_id, turn=chat.turns + 1, speaker=speaker, policy=_policy_name(policy)
    )


def _policy_name(policy: object) -> str:
    inner = getattr(policy, "then", None)
    if isinstance(inner, SpeakerPolicy):
        return f"{type(policy).__name__}>{_policy_name(inner)}"
    return type(policy).__name__


def roster(descriptions: Mapping[str, str]) -> str:
    """The "name: description" lines of a group, as `{roles}` in the templates."""
    return "\n".join(f"{name}: {text}" for name, text in descriptions.items())
