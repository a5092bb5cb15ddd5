"""Message codec: pydantic JSON with a registry of message types, for transports that serialize.

In-process delivery never calls it (objects pass as they are) unless the runtime is asked to
`require_serializable`, which checks every message at the door so a program that works in one
process keeps working across processes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pydantic
import pydantic_core

from ._errors import SerializationError, UnknownMessageTypeError

_BUILTINS: dict[str, type] = {
    t.__name__: t for t in (str, int, float, bool, bytes, list, dict, tuple, type(None))
}


class MessageCodec:
    """Encodes messages as `{"type": name, "data": json}`; decodes only registered types."""

    def __init__(self) -> None:
        self._by_name: dict[str, type] = dict(_BUILTINS)
        self._names: dict[type, str] = {t: n for n, t in _BUILTINS.items()}
        self._adapters: dict[type, pydantic.TypeAdapter[Any]] = {}

    def register(self, message_type: type, *, name: str | None = None) -> str:
        """Make `message_type` decodable under `name` (default `module.QualName`); returns it.

        Raises:
            SerializationError: pydantic cannot serialize the type, or the name is taken.
        """
        type_name = name or f"{message_type.__module__}.{message_type.__qualname__}"
        known = self._by_name.get(type_name)
        if known is not None and known is not message_type:
            raise SerializationError(f"message type name {type_name!r} is already taken by {known}")
        self._adapter(message_type)
        self._by_name[type_name] = message_type
        self._names[message_type] = type_name
        return type_name

    def _adapter(self, message_type: type) -> pydantic.TypeAdapter[Any]:
        adapter = self._adapters.get(message_type)
        if adapter is None:
            try:
                adapter = pydantic.TypeAdapter(message_type)
            except pydantic.PydanticSchemaGenerationError as exc:
                raise SerializationError(
                    f"{message_type.__qualname__} cannot be serialized; use a pydantic model,"
                    " a dataclass or plain JSON types"
                ) from exc
            self._adapters[message_type] = adapter
        return adapter

    def encode(self, message: Any) -> dict[str, Any]:
        """The JSON-ready form of `message`, tagged with its type name.

        Raises:
            SerializationError: the message (or something inside it) cannot be serialized.
        """
        message_type = type(message)
        name = self._names.get(message_type)
        if name is None:
            name = self.register(message_type)
        try:
            data = self._adapter(message_type).dump_python(message, mode="json")
        except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
            raise SerializationError(
                f"cannot serialize a {message_type.__qualname__}: {exc}"
            ) from exc
        return {"type": name, "data": data}

    def decode(self, payload: dict[str, Any]) -> Any:
        """Rebuild a message from `encode`'s output.

        Raises:
            UnknownMessageTypeError: the type name is not registered here.
            SerializationError: the data does not validate as that type.
        """
        name = payload.get("type")
        message_type = self._by_name.get(name) if isinstance(name, str) else None
        if message_type is None:
            raise UnknownMessageTypeError(
                f"message type {name!r} is not registered on this side", type_name=str(name)
            )
        try:
            return self._adapter(message_type).validate_python(payload.get("data"))
        except pydantic.ValidationError as exc:
            raise SerializationError(f"invalid {name} payload: {exc}") from exc

    def check(self, message: Any) -> None:
        """Raise `SerializationError` unless `message` crosses a wire unchanged: no NaN or
        infinity, no iterator or generator (which encoding would drain), no dict key that is not
        a string (which JSON would rewrite). Nothing in `message` is consumed.

        Raises:
            SerializationError: the message would be refused, lost or changed on a wire.
        """
        refuse_lossy(message)
        _json(self.encode(message))

    def dumps(self, message: Any) -> bytes:
        """`encode` to JSON bytes.

        Raises:
            SerializationError: the message cannot be serialized (NaN and infinity included).
        """
        return _json(self.encode(message)).encode()

    def loads(self, raw: bytes) -> Any:
        """`decode` from JSON bytes.

        Raises:
            SerializationError: the bytes are not a JSON object from `dumps`.
        """
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise SerializationError(f"not JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise SerializationError("expected a JSON object with 'type' and 'data'")
        return self.decode(payload)


def _json(data: Any) -> str:
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:  # NaN or infinity somewhere a walk could not see
        raise SerializationError(f"not valid JSON: {exc}") from exc


_MAX_DEPTH = 200  # deeper than any message we mean to carry; also keeps the walk iterative-safe


def refuse_lossy(message: Any) -> None:
    """Walk `message` (containers, dataclasses, pydantic models) without consuming anything.

    Raises:
        SerializationError: a float that is NaN or infinite, an iterator or generator, a dict
            key that is not a string, or nesting deeper than 200 levels.
    """
    stack: list[tuple[Any, int]] = [(message, 0)]
    seen: set[int] = set()
    while stack:
        value, depth = stack.pop()
        if value is None or isinstance(value, str | bytes | bool | int):
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                raise SerializationError(f"{value} has no JSON form; send a finite number")
            continue
        if depth > _MAX_DEPTH:
            raise SerializationError(f"the message nests deeper than {_MAX_DEPTH} levels")
        if id(value) in seen:
            continue
        seen.add(id(value))
        children: Any
        if isinstance(value, Mapping):
            for key in value:
                if not isinstance(key, str):
                    raise SerializationError(
                        f"dict key {key!r} is a {type(key).__name__}; JSON keys are strings"
                    )
            children = value.values()
        elif isinstance(value, list | tuple | set | frozenset):
            children = value
        elif isinstance(value, Iterator | AsyncIterator):
            raise SerializationError(
                f"a {type(value).__name__} cannot be sent (encoding would drain it); send a list"
            )
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            children = [getattr(value, f.name) for f in dataclasses.fields(value)]
        elif isinstance(value, pydantic.BaseModel):
            children = [getattr(value, name) for name in type(value).model_fields]
        else:
            continue  # pydantic decides for other types when it encodes
        stack.extend((child, depth + 1) for child in children)
