"""`loads_bounded`: parse JSON a model wrote, refusing deep nesting before the parser recurses.

Model output is untrusted: `[[[[...` a hundred thousand levels deep makes `json.loads` raise
`RecursionError` (or worse). One cheap scan over the brackets outside strings finds the depth
first; only text within the limit reaches the parser.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._errors import InvalidJSONError, JSONDepthError

DEFAULT_MAX_DEPTH = 64

_STRUCTURE = re.compile(r'[\[\]{}"\\]')


def json_depth(text: str, *, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in `text` (strings skipped), stopping early past
    `stop_above`. Text that is not JSON still gets a number; the parser judges the rest."""
    depth = deepest = 0
    in_string = False
    skip = -1
    for match in _STRUCTURE.finditer(text):
        position = match.start()
        if position == skip:
            continue
        char = match.group()
        if in_string:
            if char == "\\":
                skip = position + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def loads_bounded(text: str | bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """`json.loads` for model output: at most `max_depth` levels of arrays and objects.

    Raises:
        JSONDepthError: the text nests deeper than `max_depth`.
        InvalidJSONError: the text is not JSON.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSONError(f"not UTF-8 JSON: {exc}") from exc
    if json_depth(text, stop_above=max_depth) > max_depth:
        raise JSONDepthError(
            f"JSON nests deeper than {max_depth} levels; refused", max_depth=max_depth
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidJSONError(f"not valid JSON: {exc}") from exc
