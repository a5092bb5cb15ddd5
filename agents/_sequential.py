"""Sequential chats (AutoGen's `initiate_chats` / `a_initiate_chats`) and their carryover.

Each entry of a chat queue holds `initiate_chat`'s options plus `sender` and `recipient`.
Run in order, a chat gets the summaries of the chats before it as carryover (except those
listed in `finished_chat_indexes_to_exclude_from_carryover`). Entries with a `chat_id` run
concurrently instead, each once its `prerequisites` (chat ids) have finished, with their
summaries as carryover; the result is then a dict by chat id, as AutoGen's.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ._chat import runtime_scope
from ._errors import AgentConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from moot.runtime import Runtime

    from ._chat import ChatResult
    from ._conversable import ConversableAgent

_QUEUE_ONLY = ("sender", "recipient", "chat_id", "prerequisites")
_EXCLUDE = "finished_chat_indexes_to_exclude_from_carryover"


def _entries(
    chat_queue: Sequence[Mapping[str, Any]], sender: ConversableAgent | None
) -> list[dict[str, Any]]:
    entries = []
    for number, entry in enumerate(chat_queue):
        options = dict(entry)
        if sender is not None:
            options.setdefault("sender", sender)
        if options.get("sender") is None:
            raise AgentConfigError(f"chat #{number} of the queue has no sender")
        if options.get("recipient") is None:
            raise AgentConfigError(f"chat #{number} of the queue has no recipient")
        _check_summary(number, options)
        entries.append(options)
    return entries


def _check_summary(number: int, options: Mapping[str, Any]) -> None:
    """Refuse, before any chat runs, a summary the queue could not make (as AutoGen does)."""
    method = options.get("summary_method", "last_msg")
    if not (method is None or callable(method) or method in ("last_msg", "reflection_with_llm")):
        raise AgentConfigError(
            f"chat #{number}: summary_method must be 'last_msg', 'reflection_with_llm', a"
            f" callable or None; got {method!r}"
        )
    if method == "reflection_with_llm" and not any(
        getattr(options[side], "_model_lease", None) is not None for side in ("sender", "recipient")
    ):
        raise AgentConfigError(
            f"chat #{number}: summary_method='reflection_with_llm' needs a model on the sender"
            " or the recipient"
        )


def _own_carryover(options: dict[str, Any]) -> list[Any]:
    carryover = options.pop("carryover", [])
    if isinstance(carryover, str):
        return [carryover]
    if not isinstance(carryover, list):
        raise AgentConfigError(
            f"carryover must be a str or a list of str; got {type(carryover).__name__}"
        )
    return list(carryover)


async def _one(options: dict[str, Any], carryover: list[Any], rt: Runtime) -> ChatResult:
    for key in (*_QUEUE_ONLY, _EXCLUDE):
        options.pop(key, None)
    if carryover:
        options["carryover"] = carryover
    return await _start(options, rt)


async def _start(options: dict[str, Any], rt: Runtime) -> ChatResult:
    sender: ConversableAgent = options.pop("_sender")
    recipient: ConversableAgent = options.pop("_recipient")
    return await sender.a_initiate_chat(recipient, runtime=rt, **options)


async def run_in_order(
    chat_queue: Sequence[Mapping[str, Any]],
    *,
    sender: ConversableAgent | None = None,
    runtime: Runtime | None = None,
) -> list[ChatResult]:
    """Run the chats one after another, carrying the earlier summaries over."""
    entries = _entries(chat_queue, sender)
    results: list[ChatResult] = []
    async with runtime_scope(runtime) as rt:
        for options in entries:
            excluded = set(options.get(_EXCLUDE) or ())
            carryover = _own_carryover(options) + [
                result.summary for index, result in enumerate(results) if index not in excluded
            ]
            options["_sender"], options["_recipient"] = options["sender"], options["recipient"]
            results.append(await _one(options, carryover, rt))
    return results


async def run_by_prerequisites(
    chat_queue: Sequence[Mapping[str, Any]],
    *,
    sender: ConversableAgent | None = None,
    runtime: Runtime | None = None,
) -> dict[Any, ChatResult]:
    """Run the chats concurrently, each after its `prerequisites`; results by `chat_id`.

    Raises:
        AgentConfigError: an entry has no `chat_id`, two share one, a prerequisite names no
            chat of the queue, or the prerequisites form a cycle.
    """
    entries = _entries(chat_queue, sender)
    book: dict[Any, dict[str, Any]] = {}
    for number, options in enumerate(entries):
        if "chat_id" not in options:
            raise AgentConfigError(
                f"chat #{number} has no chat_id; every chat needs one to run by prerequisites"
            )
        if options["chat_id"] in book:
            raise AgentConfigError(f"two chats have the chat_id {options['chat_id']!r}")
        book[options["chat_id"]] = options
    for chat_id, options in book.items():
        for needed in options.get("prerequisites") or ():
            if needed not in book:
                raise AgentConfigError(f"chat {chat_id!r} waits for {needed!r}, not in the queue")
    _check_acyclic(book)
    done: dict[Any, asyncio.Future[ChatResult]] = {}
    loop = asyncio.get_running_loop()
    for chat_id in book:
        done[chat_id] = loop.create_future()

    async with runtime_scope(runtime) as rt:

        async def run(chat_id: Any, options: dict[str, Any]) -> None:
            try:
                needed = list(options.get("prerequisites") or ())
                finished = {each: await done[each] for each in needed}
                excluded = set(options.get(_EXCLUDE) or ())
                carryover = _own_carryover(options) + [
                    result.summary for each, result in finished.items() if each not in excluded
                ]
                options["_sender"], options["_recipient"] = options["sender"], options["recipient"]
                done[chat_id].set_result(await _one(options, carryover, rt))
            except asyncio.CancelledError:
                done[chat_id].cancel()
                raise
            except BaseException as exc:
                if not done[chat_id].done():
                    done[chat_id].set_exception(exc)
                    done[chat_id].exception()  # marked retrieved: the task group raises it
                raise

        async with asyncio.TaskGroup() as group:
            for chat_id, options in book.items():
                group.create_task(run(chat_id, options))
    return {chat_id: future.result() for chat_id, future in done.items()}


def _check_acyclic(book: Mapping[Any, Mapping[str, Any]]) -> None:
    state: dict[Any, int] = {}  # 1: being visited, 2: done

    def visit(chat_id: Any) -> None:
        if state.get(chat_id) == 2:
            return
        if state.get(chat_id) == 1:
            raise AgentConfigError(f"the prerequisites of chat {chat_id!r} form a cycle")
        state[chat_id] = 1
        for needed in book[chat_id].get("prerequisites") or ():
            visit(needed)
        state[chat_id] = 2

    for chat_id in book:
        visit(chat_id)


def wants_prerequisites(chat_queue: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a queue asks for AutoGen's concurrent form (its entries carry chat ids)."""
    return any("chat_id" in entry or "prerequisites" in entry for entry in chat_queue)


async def a_initiate_chats(
    chat_queue: Sequence[Mapping[str, Any]], *, runtime: Runtime | None = None
) -> dict[Any, ChatResult]:
    """AutoGen's `a_initiate_chats`: every entry has `sender`, `recipient` and `chat_id`; chats
    run concurrently once their `prerequisites` finished. Returns the results by chat id.

    Raises:
        AgentConfigError: a missing sender, recipient or chat_id, or cyclic prerequisites.
    """
    return await run_by_prerequisites(chat_queue, runtime=runtime)


def initiate_chats(chat_queue: Sequence[Mapping[str, Any]]) -> list[ChatResult]:
    """AutoGen's `initiate_chats`: run the chats in order (each entry has `sender` and
    `recipient`), each with the earlier summaries as carryover.

    Raises:
        AgentConfigError: an entry has no sender or recipient.
        EventLoopRunningError: called inside a running event loop.
    """
    from ._chat import run_sync

    return run_sync(lambda: run_in_order(chat_queue), "initiate_chats", "a_initiate_chats")
