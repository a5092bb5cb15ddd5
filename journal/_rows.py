"""The edge between records and rows: records become JSON text (and blobs), and rows read back
are validated with pydantic, so a corrupt or foreign row is a `CorruptRecordError` for its chat.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic
import pydantic_core

from ._errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError
from ._records import (
    ChatDefinition,
    CodeRun,
    Decision,
    FileChange,
    StoreLimits,
    Termination,
    ToolCall,
    ToolResult,
    Turn,
    Usage,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileRef:
    """A file change as a turn row keeps it: the path and the blob's sha256 (None: deleted)."""

    path: str
    sha256: str | None
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnRow:
    """A turn as its row keeps it: everything but file contents, which live in blobs."""

    number: int
    speaker: str
    message: dict[str, Any]
    decision: Decision | None
    usage: Usage
    tool_calls: tuple[ToolCall, ...]
    tool_results: tuple[ToolResult, ...]
    code_runs: tuple[CodeRun, ...]
    files: tuple[FileRef, ...]
    termination: Termination | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PreparedTurn:
    """A turn ready to write in one transaction: its row, the blobs it needs, its totals."""

    number: int
    speaker: str
    body: str
    blobs: dict[str, bytes]
    tokens: int
    cost: float
    finished: Termination | None


_TURN_ROW = pydantic.TypeAdapter(TurnRow)
_TURN = pydantic.TypeAdapter(Turn)  # a turn without files: the same JSON as its TurnRow
_DEFINITION = pydantic.TypeAdapter(ChatDefinition)
_TERMINATION = pydantic.TypeAdapter(Termination)
_DATA = pydantic.TypeAdapter(dict[str, Any])


def _dump_sized(
    adapter: pydantic.TypeAdapter[T], value: T, what: str, limits: StoreLimits
) -> tuple[str, int]:
    """The row's JSON text and its size in bytes (encoded once, by the serializer itself: the
    hot path of every turn, so no `dump_json` wrapper and no second encode to measure it)."""
    try:
        raw = adapter.serializer.to_json(value)
    except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
        raise InvalidRecordError(
            f"The {what} cannot be journaled: it is not JSON-able ({exc})."
        ) from exc
    _check_size(len(raw), what, limits)
    return raw.decode(), len(raw)


def _dump(adapter: pydantic.TypeAdapter[T], value: T, what: str, limits: StoreLimits) -> str:
    return _dump_sized(adapter, value, what, limits)[0]


def check_row_size(text: str, what: str, limits: StoreLimits) -> None:
    """Raises: RecordTooLargeError: the row is larger than `limits.max_row_bytes`."""
    _check_size(len(text.encode()), what, limits)


def _check_size(size: int, what: str, limits: StoreLimits) -> None:
    if size > limits.max_row_bytes:
        raise RecordTooLargeError(
            f"The {what} is {size} bytes as a row; the journal's limit is {limits.max_row_bytes}"
            " (StoreLimits.max_row_bytes).",
            what="row",
            size=size,
            limit=limits.max_row_bytes,
        )


def _load(adapter: pydantic.TypeAdapter[T], text: str | bytes, chat_id: str, record: str) -> T:
    try:
        return adapter.validate_json(text)
    except (pydantic.ValidationError, ValueError, TypeError) as exc:
        raise CorruptRecordError(
            f"Chat {chat_id!r}: the {record} read back is not a journal record ({exc}).",
            chat_id=chat_id,
            record=record,
        ) from exc


def encode_definition(definition: ChatDefinition, limits: StoreLimits) -> str:
    """Raises: InvalidRecordError: not JSON-able or too large."""
    if not definition.chat_id:
        raise InvalidRecordError("A chat id cannot be empty.")
    return _dump(_DEFINITION, definition, "chat definition", limits)


def decode_definition(text: str, chat_id: str) -> ChatDefinition:
    """Raises: CorruptRecordError: the row is not a chat definition of this chat."""
    definition = _load(_DEFINITION, text, chat_id, "definition")
    if definition.chat_id != chat_id:
        raise CorruptRecordError(
            f"Chat {chat_id!r}: its definition names another chat ({definition.chat_id!r}).",
            chat_id=chat_id,
            record="definition",
        )
    return definition


def encode_data(data: Mapping[str, Any], what: str, limits: StoreLimits) -> str:
    """Raises: InvalidRecordError: not JSON-able or too large."""
    return _dump(_DATA, dict(data), what, limits)


def decode_data(text: str, chat_id: str, record: str) -> dict[str, Any]:
    return _load(_DATA, text, chat_id, record)


def encode_termination(termination: Termination, limits: StoreLimits) -> str:
    return _dump(_TERMINATION, termination, "termination", limits)


def decode_termination(text: str | None, chat_id: str) -> Termination | None:
    return None if text is None else _load(_TERMINATION, text, chat_id, "termination")


def _check_path(path: str) -> None:
    parts = PurePosixPath(path).parts
    if not path or path.startswith("/") or ".." in parts or "\\" in path:
        raise InvalidRecordError(
            f"A work file path must be relative and inside the work dir: {path!r}."
        )


def _split_files(turn: Turn, blobs: dict[str, bytes], limits: StoreLimits) -> TurnRow:
    """The turn's row, its files' contents moved to `blobs` by sha256.

    Raises:
        RecordTooLargeError: a file is over `limits.max_file_bytes`.
        InvalidRecordError: a file path leaves the work dir.
    """
    refs: list[FileRef] = []
    for change in turn.files:
        _check_path(change.path)
        sha = change.sha256
        size = 0 if change.data is None else len(change.data)
        if size > limits.max_file_bytes:
            raise RecordTooLargeError(
                f"Work file {change.path!r} of turn {turn.number} is {size} bytes; the journal's"
                f" limit per file is {limits.max_file_bytes} (StoreLimits.max_file_bytes).",
                what="file",
                size=size,
                limit=limits.max_file_bytes,
            )
        if sha is not None and change.data is not None:
            blobs[sha] = change.data
        refs.append(FileRef(path=change.path, sha256=sha, size=size))
    return TurnRow(
        number=turn.number,
        speaker=turn.speaker,
        message=turn.message,
        decision=turn.decision,
        usage=turn.usage,
        tool_calls=turn.tool_calls,
        tool_results=turn.tool_results,
        code_runs=turn.code_runs,
        files=tuple(refs),
        termination=turn.termination,
    )


def prepare_turn(turn: Turn, limits: StoreLimits) -> PreparedTurn:
    """Check a turn against the limits and split it into a row and content-addressed blobs.

    Raises:
        RecordTooLargeError: a file, the row or the whole turn is over its limit.
        InvalidRecordError: the turn is not JSON-able, or a file path leaves the work dir.
    """
    if turn.number < 1:
        raise InvalidRecordError(f"Turn numbers count from 1, not {turn.number}.")
    what = f"turn {turn.number}"
    blobs: dict[str, bytes] = {}
    if not turn.files:  # most turns: the turn itself is its row, nothing to split off
        body, size = _dump_sized(_TURN, turn, what, limits)
    else:
        row = _split_files(turn, blobs, limits)
        body, size = _dump_sized(_TURN_ROW, row, what, limits)
    total = size + sum(len(data) for data in blobs.values())
    if total > limits.max_turn_bytes:
        raise RecordTooLargeError(
            f"Turn {turn.number} is {total} bytes with its files; the journal's limit per turn"
            f" is {limits.max_turn_bytes} (StoreLimits.max_turn_bytes).",
            what="turn",
            size=total,
            limit=limits.max_turn_bytes,
        )
    return PreparedTurn(
        number=turn.number,
        speaker=turn.speaker,
        body=body,
        blobs=blobs,
        tokens=turn.usage.total_tokens,
        cost=turn.usage.cost,
        finished=turn.termination,
    )


def decode_turn_row(text: str, chat_id: str, number: int) -> TurnRow:
    """Raises: CorruptRecordError: the row is not turn `number` of a journal."""
    row = _load(_TURN_ROW, text, chat_id, f"turn {number}")
    if row.number != number:
        raise CorruptRecordError(
            f"Chat {chat_id!r}: the row of turn {number} holds turn {row.number}.",
            chat_id=chat_id,
            record=f"turn {number}",
        )
    return row


def rebuild_turn(row: TurnRow, blobs: Mapping[str, bytes], chat_id: str) -> Turn:
    """The turn back from its row and its blobs (each checked against its sha256).

    Raises:
        CorruptRecordError: a blob is missing or its bytes do not hash to its name.
    """
    files: list[FileChange] = []
    for ref in row.files:
        data = None
        if ref.sha256 is not None:
            data = blobs.get(ref.sha256)
            if data is None or hashlib.sha256(data).hexdigest() != ref.sha256:
                raise CorruptRecordError(
                    f"Chat {chat_id!r}: the content of {ref.path!r} (turn {row.number}) is missing"
                    " or does not match its sha256.",
                    chat_id=chat_id,
                    record=f"blob {ref.sha256}",
                )
        files.append(FileChange(path=ref.path, data=data))
    return Turn(
        number=row.number,
        speaker=row.speaker,
        message=row.message,
        decision=row.decision,
        usage=row.usage,
        tool_calls=row.tool_calls,
        tool_results=row.tool_results,
        code_runs=row.code_runs,
        files=tuple(files),
        termination=row.termination,
    )


def turn_event(prepared: PreparedTurn) -> dict[str, Any]:
    """The event a journaled turn adds to the chat's log (the turn itself is read by number)."""
    data: dict[str, Any] = {"number": prepared.number, "speaker": prepared.speaker}
    if prepared.finished is not None:
        data["termination"] = prepared.finished.reason
    return data


_FINISHED_EVENT = ("status", '{"status":"finished"}')


def turn_event_rows(prepared: PreparedTurn) -> list[tuple[str, str]]:
    """`turn_event` (and the status event of a last turn) as (kind, JSON text) rows, built
    directly: the store writes them for every turn, and they hold nothing the turn's row,
    checked already, does not (so no size check of their own)."""
    speaker = json.dumps(prepared.speaker, ensure_ascii=False)
    if prepared.finished is None:
        return [("turn", f'{{"number":{prepared.number},"speaker":{speaker}}}')]
    reason = json.dumps(prepared.finished.reason, ensure_ascii=False)
    text = f'{{"number":{prepared.number},"speaker":{speaker},"termination":{reason}}}'
    return [("turn", text), _FINISHED_EVENT]


def json_text(data: Mapping[str, Any]) -> str:
    """Compact JSON for data the store itself builds (always JSON-able)."""
    return json.dumps(data, separators=(",", ":"))
