"""`moot chats list | show ID | resume ID | answer ID TEXT | export ID`: the journaled chats.

Every subcommand takes `--store URL` (default: $MOOT_JOURNAL_URL, else the SQLite file under the
user's data folder) and the global `--json`.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
from rich.markup import escape
from rich.table import Table

from ._errors import CliError, ExitCode, MissingError, UsageError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

    from moot.journal import ChatStore, ChatSummary

    from ._output import Output


def add_chats(commands: Any) -> None:
    """Add `moot chats` and its actions."""
    from ._commands import CliParser

    chats = commands.add_parser(
        "chats",
        help="list, show, resume, answer and export journaled chats (docs/durability.md)",
        description="The chat journal: every chat run with the journal on (the default) is kept"
        " there turn by turn, so a crashed chat can be resumed.",
    )
    actions = chats.add_subparsers(dest="chats_command", metavar="ACTION", parser_class=CliParser)

    def action(name: str, help_text: str, run: Callable[..., ExitCode]) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        parser.add_argument("--store", metavar="URL", help="the journal (default: see above)")
        parser.set_defaults(run=run)
        return parser

    listing = action("list", "the chats, newest first", _run_list)
    listing.add_argument("--status", choices=("running", "waiting", "finished", "failed"))
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    action("show", "one chat: its status and turns", _run_show).add_argument("chat_id")
    action("export", "one chat as JSON (definition, summary, turns)", _run_export).add_argument(
        "chat_id"
    )
    answer = action("answer", "answer the question a waiting chat asked a human", _run_answer)
    answer.add_argument("chat_id")
    answer.add_argument("text")
    resume = action("resume", "resume an interrupted chat in this process", _run_resume)
    resume.add_argument("chat_id")
    resume.add_argument(
        "--agents",
        required=True,
        metavar="MODULE:SETUP",
        help="a callable that takes the team's name and returns its GroupChatManager",
    )
    chats.set_defaults(run=None)


def _with_store(args: argparse.Namespace, work: Callable[[ChatStore], Awaitable[Any]]) -> Any:
    """Open the store, run `work`, close it; journal errors become one clear CLI error."""
    from moot.journal import (
        ChatNotFoundError,
        JournalError,
        MissingDriverError,
        StoreUnavailableError,
        journal_url,
        open_store,
    )

    url = args.store or journal_url()

    async def run() -> Any:
        async with await open_store(url) as store:
            return await work(store)

    try:
        return anyio.run(run)
    except ChatNotFoundError as exc:
        raise UsageError(str(exc), hint="`moot chats list` shows the journaled chats") from exc
    except MissingDriverError as exc:
        raise MissingError(str(exc), hint="pip install 'moot[durable]'") from exc
    except StoreUnavailableError as exc:
        raise MissingError(str(exc), hint="check --store or $MOOT_JOURNAL_URL") from exc
    except JournalError as exc:
        raise CliError(str(exc)) from exc


def _summary(summary: ChatSummary) -> dict[str, Any]:
    return {
        "chat_id": summary.chat_id,
        "status": summary.status.value,
        "turns": summary.turns,
        "tokens": summary.tokens,
        "cost": summary.cost,
        "created_at": summary.created_at,
        "updated_at": summary.updated_at,
        "termination": None if summary.termination is None else summary.termination.reason,
    }


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _run_list(args: argparse.Namespace, out: Output) -> ExitCode:
    from moot.journal import ChatStatus

    if args.limit < 1:
        raise UsageError(f"--limit is at least 1, not {args.limit}")
    status = None if args.status is None else ChatStatus(args.status)

    async def work(store: ChatStore) -> list[ChatSummary]:
        page = await store.list_chats(status=status, limit=args.limit)
        return list(page.chats)

    chats: list[ChatSummary] = _with_store(args, work)
    out.result({"chats": [_summary(chat) for chat in chats]})
    table = Table(title="journaled chats")
    for column in ("chat", "status", "turns", "tokens", "cost", "updated", "ended by"):
        table.add_column(column)
    for chat in chats:
        ended = "" if chat.termination is None else chat.termination.reason
        table.add_row(
            escape(chat.chat_id), chat.status.value, str(chat.turns), str(chat.tokens),
            f"{chat.cost:.4f}", _when(chat.updated_at), escape(ended),
        )  # fmt: skip
    out.table(table)
    return ExitCode.OK


async def _export(store: ChatStore, chat_id: str) -> dict[str, Any]:
    summary = await store.summary(chat_id)
    definition = await store.definition(chat_id)
    turns = await store.turns(chat_id)
    inputs = await store.inputs(chat_id)
    return {
        "summary": _summary(summary),
        "definition": {
            "participants": list(definition.participants),
            "policy": definition.policy,
            "limits": definition.limits,
            "spec": definition.spec,
        },
        "turns": [
            {
                "number": turn.number,
                "speaker": turn.speaker,
                "message": turn.message,
                "tokens": turn.usage.total_tokens,
                "cost": turn.usage.cost,
                "code_runs": [{"exit_code": run.exit_code} for run in turn.code_runs],
                "files": [change.path for change in turn.files],
                "termination": None if turn.termination is None else turn.termination.reason,
            }
            for turn in turns
        ],
        "questions": [
            {"turn": q.turn, "prompt": q.prompt, "answered": q.answer is not None} for q in inputs
        ],
    }


def _run_show(args: argparse.Namespace, out: Output) -> ExitCode:
    chat: dict[str, Any] = _with_store(args, lambda store: _export(store, args.chat_id))
    out.result(chat)
    summary = chat["summary"]
    out.say(
        f"[bold]{escape(summary['chat_id'])}[/]: {summary['status']}, {summary['turns']} turns,"
        f" {summary['tokens']} tokens, cost {summary['cost']:.4f}"
    )
    table = Table()
    for column in ("turn", "speaker", "message"):
        table.add_column(column)
    for turn in chat["turns"]:
        content = str(turn["message"].get("content") or "")
        short = content if len(content) <= 100 else content[:97] + "..."
        table.add_row(str(turn["number"]), escape(turn["speaker"]), escape(short))
    out.table(table)
    return ExitCode.OK


def _run_export(args: argparse.Namespace, out: Output) -> ExitCode:
    chat = _with_store(args, lambda store: _export(store, args.chat_id))
    if out.json_mode:
        out.result(chat)
    else:  # export is for machines either way
        sys.stdout.write(json.dumps(chat, indent=2, default=str) + "\n")
    return ExitCode.OK


def _run_answer(args: argparse.Namespace, out: Output) -> ExitCode:
    from moot.journal import InputAlreadyAnsweredError

    # Two answers at once: the store applies one, the other gets InputAlreadyAnsweredError.
    async def work(store: ChatStore) -> dict[str, Any]:
        questions = await store.inputs(args.chat_id)
        open_questions = [q for q in questions if q.answer is None]
        if not open_questions and questions:
            raise CliError(
                f"the question of chat {args.chat_id!r} (turn {questions[-1].turn}) was answered"
                " already",
                hint="each question takes one answer; `moot chats resume ID` goes on with it",
            )
        if not open_questions:
            raise UsageError(
                f"chat {args.chat_id!r} is not waiting for an answer",
                hint="`moot chats show ID` shows its questions",
            )
        answered = await store.answer_input(open_questions[-1].token, args.text)
        return {"chat_id": args.chat_id, "turn": answered.turn, "prompt": answered.prompt}

    try:
        result: dict[str, Any] = _with_store(args, work)
    except CliError as exc:
        if isinstance(exc.__cause__, InputAlreadyAnsweredError):
            raise CliError(str(exc.__cause__), hint="each question takes one answer") from exc
        raise
    out.result(result)
    out.say(f"answered chat {escape(args.chat_id)}; `moot chats resume` goes on with it")
    return ExitCode.OK


def load_setup(spec: str) -> Callable[[str], Any]:
    """The `module:setup` callable, as `moot worker` takes it.

    Raises:
        UsageError: not `module:callable`, or it cannot be imported.
    """
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise UsageError(f"--agents takes module:setup, not {spec!r}")
    try:
        target = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot load {spec!r}: {exc}") from exc
    if not callable(target):
        raise UsageError(f"{spec!r} is not callable")
    setup: Callable[[str], Any] = target
    return setup


def _run_resume(args: argparse.Namespace, out: Output) -> ExitCode:
    from moot.groupchat import GroupChatError, GroupChatManager
    from moot.models import ModelError

    setup = load_setup(args.agents)

    async def work(store: ChatStore) -> dict[str, Any]:
        definition = await store.definition(args.chat_id)
        team = str(definition.spec.get("team") or definition.spec.get("manager") or "")
        manager = setup(team)
        if not isinstance(manager, GroupChatManager):
            raise UsageError(f"{args.agents} returned {type(manager).__name__}, not a manager")
        try:
            result = await manager.a_run(None, chat_id=args.chat_id, store=store)
        except (GroupChatError, ModelError) as exc:
            raise CliError(str(exc)) from exc
        return {
            "chat_id": result.chat_id,
            "turns": result.turns,
            "stop_reason": result.stop_reason.condition,
            "summary": result.summary,
        }

    result: dict[str, Any] = _with_store(args, work)
    out.result(result)
    out.say(
        f"chat {escape(result['chat_id'])} finished after {result['turns']} turns"
        f" ({escape(result['stop_reason'])})"
    )
    return ExitCode.OK
