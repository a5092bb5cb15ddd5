"""`GroupChat`: who takes part and how the next speaker is chosen, with AutoGen's parameters,
meanings and construction-time checks.

A `GroupChat` is shared by every chat that uses it; the running chat keeps its own state (see
`_state.GroupChatState`). Besides the policy the manager runs, it offers AutoGen's helpers
(`select_speaker`, `manual_select_speaker`, `next_agent`, `agent_by_name`, `nested_agents`...).
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from moot.agents import ConversableAgent, InputRequest, IOStream, run_sync

from ._errors import (
    AgentNameConflictError,
    GroupChatConfigError,
    NoEligibleSpeakerError,
    UndefinedNextAgentError,
)
from ._policies import (
    CallablePolicy,
    FunctionCallFilter,
    ManualPolicy,
    RandomPolicy,
    RoundRobin,
    SpeakerPolicy,
    TransitionGraph,
)
from ._selector import (
    SELECT_SPEAKER_MESSAGE_TEMPLATE,
    SELECT_SPEAKER_PROMPT_TEMPLATE,
    LLMSelector,
)
from ._state import GroupChatState, NoSpeaker

if TYPE_CHECKING:
    from moot.models import LLMConfig

Message = dict[str, Any]
SelectionMethod = Literal["auto", "round_robin", "random", "manual"] | Callable[..., Any]
AutoLLMConfig = "Mapping[str, Any] | LLMConfig | Literal[False] | None"
METHODS = ("auto", "round_robin", "random", "manual")

INTRODUCTION = "Hello everyone. This group is here to work on the task together. Its members:"
SELECT_SPEAKER_AUTO_MULTIPLE_TEMPLATE = (
    "Your answer named more than one participant. Reply with the one name, from {agentlist},"
    " of who should speak next, and nothing else."
)
SELECT_SPEAKER_AUTO_NONE_TEMPLATE = (
    "Your answer named no participant. Reply with the one name, from {agentlist}, of who"
    " should speak next, and nothing else."
)
_MANUAL_TRIES = 3


def name_of(agent: Any) -> str:
    """An agent's name; a string is taken as a name already."""
    return agent if isinstance(agent, str) else str(agent.name)


def _non_empty(value: str | None, what: str) -> str:
    if not value:
        raise GroupChatConfigError(f"{what} cannot be empty or None.")
    return value


class GroupChat:
    """Who takes part and how the next speaker is chosen; AutoGen's parameters and meanings.

    `speaker_selection_method` is "auto" (a model picks), "round_robin", "random", "manual" (a
    human picks; no answer gives the next agent in order), a callable
    `(last_speaker, groupchat) -> agent | method name | None`, or any `SpeakerPolicy`.
    `allow_repeat_speaker` and `allowed_or_disallowed_speaker_transitions` (mutually exclusive,
    as in AutoGen) restrict every method except a callable's own picks.
    `select_speaker_auto_llm_config` gives "auto" its own model instead of the manager's.

    A group may be built without agents (a chat then refuses to start), and "auto" without a
    model fails when a choice actually needs one, as in AutoGen.

    Raises:
        GroupChatConfigError: an unknown method, an inconsistent repeat rule or transitions, an
            empty template, or a negative retry count.
        AgentNameConflictError: two agents share a name.
    """

    def __init__(
        self,
        agents: Sequence[ConversableAgent],
        messages: list[Message] | None = None,
        max_round: int = 10,
        admin_name: str = "Admin",
        func_call_filter: bool = True,
        speaker_selection_method: SelectionMethod | SpeakerPolicy = "auto",
        max_retries_for_selecting_speaker: int = 2,
        allow_repeat_speaker: bool | Sequence[ConversableAgent | str] | None = None,
        allowed_or_disallowed_speaker_transitions: Mapping[Any, Sequence[Any]] | None = None,
        speaker_transitions_type: Literal["allowed", "disallowed"] | None = None,
        enable_clear_history: bool = False,
        send_introductions: bool = False,
        select_speaker_message_template: str = SELECT_SPEAKER_MESSAGE_TEMPLATE,
        select_speaker_prompt_template: str | None = SELECT_SPEAKER_PROMPT_TEMPLATE,
        select_speaker_auto_multiple_template: str = SELECT_SPEAKER_AUTO_MULTIPLE_TEMPLATE,
        select_speaker_auto_none_template: str = SELECT_SPEAKER_AUTO_NONE_TEMPLATE,
        select_speaker_auto_verbose: bool = False,
        select_speaker_auto_llm_config: Mapping[str, Any]
        | LLMConfig
        | Literal[False]
        | None = None,
        role_for_select_speaker_messages: str = "system",
    ) -> None:
        self.agents = list(agents)
        names = [agent.name for agent in self.agents]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise AgentNameConflictError(
                f"Duplicate agent names found: {duplicates}; names must be unique in a group",
                names=duplicates,
            )
        if max_round < 1:
            raise GroupChatConfigError(f"max_round must be at least 1, got {max_round}")
        method = speaker_selection_method
        if isinstance(method, str) and method.lower() not in METHODS:
            raise GroupChatConfigError(
                f"speaker_selection_method must be one of {list(METHODS)}, a callable or a"
                f" SpeakerPolicy; got {method!r}"
            )
        if not isinstance(max_retries_for_selecting_speaker, int) or (
            max_retries_for_selecting_speaker < 0
        ):
            raise GroupChatConfigError(
                "max_retries_for_selecting_speaker must be an int of 0 or more;"
                f" got {max_retries_for_selecting_speaker!r}"
            )
        if not isinstance(select_speaker_auto_verbose, bool):
            raise GroupChatConfigError("select_speaker_auto_verbose must be a bool")
        self.messages: list[Message] = [] if messages is None else messages
        self.max_round = max_round
        self.admin_name = admin_name
        self.func_call_filter = func_call_filter
        self.speaker_selection_method = method
        self.max_retries_for_selecting_speaker = max_retries_for_selecting_speaker
        self.speaker_transitions_type = _transitions_type(speaker_transitions_type)
        self.allowed_or_disallowed_speaker_transitions = allowed_or_disallowed_speaker_transitions
        self.allow_repeat_speaker = self._check_repeat(allow_repeat_speaker)
        self.allowed_speaker_transitions_dict = self._transitions_dict()
        self.enable_clear_history = enable_clear_history
        self.send_introductions = send_introductions
        self.select_speaker_message_template = _non_empty(
            select_speaker_message_template, "select_speaker_message_template"
        )
        self.select_speaker_prompt_template = select_speaker_prompt_template or None
        self.select_speaker_auto_multiple_template = _non_empty(
            select_speaker_auto_multiple_template, "select_speaker_auto_multiple_template"
        )
        self.select_speaker_auto_none_template = _non_empty(
            select_speaker_auto_none_template, "select_speaker_auto_none_template"
        )
        self.role_for_select_speaker_messages = _non_empty(
            role_for_select_speaker_messages, "role_for_select_speaker_messages"
        )
        self.select_speaker_auto_verbose = select_speaker_auto_verbose
        self.select_speaker_auto_llm_config = select_speaker_auto_llm_config
        self._selector_agent: ConversableAgent | None = None
        if select_speaker_auto_llm_config:
            self._selector_agent = ConversableAgent(
                "speaker_selection_agent",
                llm_config=select_speaker_auto_llm_config,
                human_input_mode="NEVER",
            )
        self._policy: SpeakerPolicy | None = None

    # -- construction checks -----------------------------------------------------------------

    def _member(self, agent: Any, what: str) -> ConversableAgent:
        """The group's agent that `agent` (an agent or a name) stands for."""
        name = name_of(agent) if isinstance(agent, str) or hasattr(agent, "name") else None
        found = self.agent_by_name(name) if name is not None else None
        if found is None:
            raise GroupChatConfigError(f"{what} names {agent!r}, who is not in the group")
        return found

    def _check_repeat(
        self, repeat: bool | Sequence[ConversableAgent | str] | None
    ) -> bool | list[Any] | None:
        transitions = self.allowed_or_disallowed_speaker_transitions
        if repeat is not None and transitions is not None:
            raise GroupChatConfigError(
                "allow_repeat_speaker and allowed_or_disallowed_speaker_transitions are mutually"
                " exclusive; leave one of them None"
            )
        if repeat is None:
            return True if transitions is None else None
        if isinstance(repeat, bool):
            return repeat
        if not isinstance(repeat, list | tuple):
            raise GroupChatConfigError(
                f"allow_repeat_speaker takes True, False, or a list of agents (the bool or a list"
                f" of Agents AutoGen accepts); got {type(repeat).__name__}"
            )
        for each in repeat:
            self._member(each, "allow_repeat_speaker")
        return list(repeat)

    def _transitions_dict(self) -> dict[ConversableAgent, list[ConversableAgent]]:
        """AutoGen's `allowed_speaker_transitions_dict`: who may follow whom, as agents."""
        graph = self.allowed_or_disallowed_speaker_transitions
        if graph is None:
            repeat = self.allow_repeat_speaker
            may_repeat = {
                agent.name
                for agent in self.agents
                if repeat is True
                or (isinstance(repeat, list) and agent.name in map(name_of, repeat))
            }
            return {
                agent: [
                    other for other in self.agents if other is not agent or agent.name in may_repeat
                ]
                for agent in self.agents
            }
        if self.speaker_transitions_type is None:
            raise GroupChatConfigError(
                "allowed_or_disallowed_speaker_transitions needs speaker_transitions_type"
                " 'allowed' or 'disallowed'"
            )
        if not isinstance(graph, Mapping):
            raise GroupChatConfigError("allowed_or_disallowed_speaker_transitions must be a dict")
        table: dict[ConversableAgent, list[ConversableAgent]] = {}
        for key, values in graph.items():
            if isinstance(values, str) or not isinstance(values, Sequence):
                raise GroupChatConfigError("each value of the speaker transitions must be a list")
            source = self._member(key, "the speaker transitions")
            table[source] = [self._member(value, "the speaker transitions") for value in values]
        if self.speaker_transitions_type == "allowed":
            return table
        return {
            agent: [other for other in self.agents if other not in table.get(agent, [])]
            for agent in self.agents
        }

    # -- AutoGen's helpers -------------------------------------------------------------------

    @property
    def agent_names(self) -> list[str]:
        return [agent.name for agent in self.agents]

    def nested_agents(self) -> list[ConversableAgent]:
        """The participants, then those of every group a participant manages, recursively."""
        found = list(self.agents)
        for agent in self.agents:
            inner = getattr(agent, "groupchat", None)
            if isinstance(inner, GroupChat):
                found.extend(inner.nested_agents())
        return found

    def agent_by_name(
        self, name: str, recursive: bool = False, raise_on_name_conflict: bool = False
    ) -> ConversableAgent | None:
        """The participant called `name` (with `recursive`, in nested groups too), or None.

        Raises:
            AgentNameConflictError: `raise_on_name_conflict` and several agents have the name.
        """
        pool = self.nested_agents() if recursive else self.agents
        matches = [agent for agent in pool if agent.name == name]
        if raise_on_name_conflict and len(matches) > 1:
            raise AgentNameConflictError(f"{len(matches)} agents are called {name!r}", names=[name])
        return matches[0] if matches else None

    def next_agent(
        self, agent: ConversableAgent, agents: Sequence[ConversableAgent] | None = None
    ) -> ConversableAgent:
        """The participant after `agent` in order, among `agents` (default: everyone).

        Raises:
            UndefinedNextAgentError: `agents` holds someone outside the group, or is empty.
        """
        pool = self.agents if agents is None else list(agents)
        if not pool or any(all(each is not a for a in self.agents) for each in pool):
            raise UndefinedNextAgentError(
                "next_agent needs a non-empty list of agents that are all in the group",
                names=[each.name for each in pool],
            )
        names = self.agent_names
        start = names.index(agent.name) + 1 if agent.name in names else 0
        for offset in range(len(names)):
            candidate = self.agents[(start + offset) % len(names)]
            if any(candidate is each for each in pool):
                return candidate
        raise UndefinedNextAgentError("no agent of the list follows in the group")  # unreachable

    def append(self, message: Mapping[str, Any], speaker: ConversableAgent) -> None:
        """Add a message to the shared `messages` list under the speaker's name."""
        entry = dict(message)
        if entry.get("role") != "function":
            entry["name"] = speaker.name
        entry.setdefault("role", "user")
        self.messages.append(entry)

    def reset(self) -> None:
        """Forget the messages."""
        self.messages.clear()

    def _roles(self, agents: Sequence[ConversableAgent]) -> str:
        return "\n".join(f"{agent.name}: {agent.description}".strip() for agent in agents)

    def select_speaker_msg(self, agents: Sequence[ConversableAgent] | None = None) -> str:
        """The selector's system message for `agents` (default: everyone)."""
        pool = list(agents) if agents is not None else self.agents
        return self.select_speaker_message_template.format(
            roles=self._roles(pool), agentlist=str([agent.name for agent in pool])
        )

    def select_speaker_prompt(self, agents: Sequence[ConversableAgent] | None = None) -> str | None:
        """The selector's closing question for `agents` (default: everyone); None without a
        prompt template."""
        if self.select_speaker_prompt_template is None:
            return None
        pool = list(agents) if agents is not None else self.agents
        agentlist = str([agent.name for agent in pool])
        return self.select_speaker_prompt_template.replace("{agentlist}", agentlist)

    def introductions_msg(self, agents: Sequence[ConversableAgent] | None = None) -> str:
        """What the manager tells everyone first when `send_introductions` is on."""
        pool = list(agents) if agents is not None else self.agents
        return f"{INTRODUCTION}\n\n{self._roles(pool)}\n"

    def manual_select_speaker(
        self, agents: Sequence[ConversableAgent] | None = None
    ) -> ConversableAgent | None:
        """Ask the default `IOStream` for the next speaker's number; None when the answer is
        empty or "q", or after three answers that are not a number on the list."""
        pool = list(agents) if agents is not None else self.agents
        stream = IOStream.get_default()
        menu = "\n".join(f"{i}: {agent.name}" for i, agent in enumerate(pool, start=1))
        stream.print(f"Please select the next speaker from the following list:\n{menu}")
        for _ in range(_MANUAL_TRIES):
            answer = stream.input(
                "Enter the number of the next speaker (nothing or 'q' lets the group decide): "
            ).strip()
            if answer in ("", "q"):
                return None
            if answer.isdigit() and 1 <= int(answer) <= len(pool):
                return pool[int(answer) - 1]
            stream.print(f"Invalid input. Please enter a number between 1 and {len(pool)}.")
        return None

    def random_select_speaker(
        self, agents: Sequence[ConversableAgent] | None = None
    ) -> ConversableAgent:
        """A participant chosen at random among `agents` (default: everyone)."""
        return random.choice(list(agents) if agents is not None else self.agents)

    async def a_select_speaker(
        self, last_speaker: ConversableAgent | None, selector: ConversableAgent
    ) -> ConversableAgent:
        """The next speaker after `last_speaker` over `messages`, chosen as the chat would;
        "auto" asks `selector`'s model (or `select_speaker_auto_llm_config`'s).

        Raises:
            NoEligibleSpeakerError: nobody may speak next (the callable returned None, or the
                transitions leave nobody).
            GroupChatError: "auto" has no model to ask.
        """
        chat = GroupChatState(
            "select_speaker",
            tuple(self.agent_names),
            messages=list(self.messages),
            descriptions={agent.name: agent.description for agent in self.agents},
            clock=time.monotonic,
            groupchat=self,
            agents={agent.name: agent for agent in self.agents},
            ask_human=_asker(selector),
        )
        chat.last_speaker = None if last_speaker is None else last_speaker.name
        lease = self.selection_lease(selector)
        if lease is not None:
            chat.model_client = await lease.acquire()
        try:
            choice = await self.policy.select(chat, chat.participants)
        finally:
            if lease is not None:
                await lease.release()
        if isinstance(choice, NoSpeaker):
            raise NoEligibleSpeakerError(choice.reason)
        chosen = self.agent_by_name(choice)
        assert chosen is not None  # policies choose among the participants
        return chosen

    def select_speaker(
        self, last_speaker: ConversableAgent | None, selector: ConversableAgent
    ) -> ConversableAgent:
        """Blocking `a_select_speaker`, for plain scripts."""
        return run_sync(
            lambda: self.a_select_speaker(last_speaker, selector),
            "select_speaker",
            "a_select_speaker",
        )

    def selection_lease(self, manager: ConversableAgent) -> Any:
        """The model lease "auto" asks: `select_speaker_auto_llm_config`'s, else the manager's."""
        if self._selector_agent is not None:
            return self._selector_agent._model_lease
        return manager._model_lease

    @property
    def selector_agent(self) -> ConversableAgent | None:
        """The hidden agent holding `select_speaker_auto_llm_config`'s model, if given."""
        return self._selector_agent

    def for_chat(self, messages: list[Message]) -> GroupChat:
        """A view of this group for one chat: same settings and agents, that chat's messages."""
        view = copy.copy(self)
        view.messages = messages
        return view

    # -- the policy --------------------------------------------------------------------------

    @property
    def policy(self) -> SpeakerPolicy:
        """The speaker-selection policy these settings describe (built once)."""
        if self._policy is None:
            self._policy = self._build_policy()
        return self._policy

    def _restrict(self, inner: SpeakerPolicy) -> SpeakerPolicy:
        graph = self.allowed_or_disallowed_speaker_transitions
        repeat = self.allow_repeat_speaker
        policy: SpeakerPolicy
        if graph is None and repeat in (True, None):
            policy = inner
        else:
            table = (
                None
                if graph is None
                else {name_of(k): [name_of(v) for v in vs] for k, vs in graph.items()}
            )
            policy = TransitionGraph(
                table if self.speaker_transitions_type == "allowed" else None,
                disallowed=table if self.speaker_transitions_type == "disallowed" else None,
                allow_repeat=(
                    repeat
                    if isinstance(repeat, bool)
                    else True
                    if repeat is None
                    else [name_of(a) for a in repeat]
                ),
                then=inner,
            )
        if self.func_call_filter:
            policy = FunctionCallFilter(
                {agent.name: agent.can_execute_function for agent in self.agents}, policy
            )
        return policy

    def _selector(self) -> LLMSelector:
        return LLMSelector(
            max_retries=self.max_retries_for_selecting_speaker,
            message_template=self.select_speaker_message_template,
            prompt_template=self.select_speaker_prompt_template,
            role_for_prompt=self.role_for_select_speaker_messages,
            multiple_template=self.select_speaker_auto_multiple_template,
            none_template=self.select_speaker_auto_none_template,
        )

    def _build_policy(self) -> SpeakerPolicy:
        method = self.speaker_selection_method
        if isinstance(method, SpeakerPolicy):
            return self._restrict(method)
        methods: dict[str, SpeakerPolicy] = {
            "auto": self._restrict(self._selector()),
            "round_robin": self._restrict(RoundRobin()),
            "random": self._restrict(RandomPolicy()),
            "manual": self._restrict(ManualPolicy(fallback=RoundRobin())),
        }
        if callable(method):
            return CallablePolicy(method, methods=methods)
        return methods[method.lower()]


def _transitions_type(value: str | None) -> Literal["allowed", "disallowed"] | None:
    if value is None:
        return None
    lowered = value.lower() if isinstance(value, str) else value
    if lowered == "allowed":
        return "allowed"
    if lowered == "disallowed":
        return "disallowed"
    raise GroupChatConfigError(
        f"speaker_transitions_type must be 'allowed', 'disallowed' or None; got {value!r}"
    )


def _asker(agent: ConversableAgent) -> Callable[[str], Any]:
    async def ask(prompt: str) -> str:
        request = InputRequest(prompt=prompt, agent=agent.name, chat_id=None)
        return await agent.input_provider.get_input(request)

    return ask
