"""Message helpers AutoGen users import: `content_str` and `parse_tags_from_content`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

_PLACEHOLDERS = {
    "image_url": "<image>",
    "input_image": "<image>",
    "audio_url": "<audio>",
    "input_audio": "<audio>",
    "video_url": "<video>",
    "input_video": "<video>",
}
_ATTRIBUTE = re.compile(r"""([^\s=]+)=(["'])(.*?)\2""", re.DOTALL)


def content_str(content: str | list[Any] | None) -> str:
    """A message's `content` as text: None is "", a string stays, content parts are joined
    with newlines (text as it is, media as `<image>`, `<audio>`, `<video>`).

    Raises:
        TypeError: `content` is not None, a str or a list of dicts.
        ValueError: a part has no type, or a type this function does not know.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TypeError(f"content must be None, a str or a list; got {type(content).__name__}")
    parts: list[str] = []
    for part in content:
        if not isinstance(part, Mapping):
            raise TypeError("every part of a list content must be a dict")
        kind = part.get("type")
        if kind is None:
            raise ValueError(f"a content part has no 'type': {dict(part)!r}")
        if kind in ("text", "input_text"):
            parts.append(str(part.get("text", "")))
        elif kind in _PLACEHOLDERS:
            parts.append(_PLACEHOLDERS[kind])
        elif kind in ("function", "tool_call", "tool_calls"):
            name = part.get("name")
            parts.append("<function>" if name is None else f"<function: {name}>")
        else:
            raise ValueError(f"unknown content part type {kind!r}")
    return "\n".join(parts)


@lru_cache(maxsize=64)
def _tag_pattern(tag: str) -> re.Pattern[str]:
    return re.compile(f"<{re.escape(tag)} (.*?)>", re.DOTALL)


def _attributes(inside: str) -> dict[str, str]:
    """`key="value"` pairs by key; the text around them (a bare URL or path) is "src"."""
    found: dict[str, str] = {}
    loose: list[str] = []
    position = 0
    for match in _ATTRIBUTE.finditer(inside):
        loose.append(inside[position : match.start()])
        found[match.group(1)] = match.group(3)
        position = match.end()
    loose.append(inside[position:])
    src = " ".join(" ".join(loose).split())
    if src:
        found = {"src": src, **found}
    return found


def parse_tags_from_content(tag: str, content: str | list[Any]) -> list[dict[str, Any]]:
    """The `<tag ...>` occurrences in a message's content, in order: each as
    `{"tag": tag, "attr": {...}, "match": re.Match}`. `<img http://x/a.png>` gives
    `{"src": "http://x/a.png"}`; `<audio text="hi there" voice="a">` gives both keys.
    For list content, only the text parts are read.

    Raises:
        ValueError: `content` is neither a str nor a list.
    """
    if isinstance(content, str):
        texts = [content]
    elif isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        ]
    else:
        raise ValueError(f"content must be a str or a list; got {type(content).__name__}")
    pattern = _tag_pattern(tag)
    return [
        {"tag": tag, "attr": _attributes(match.group(1).strip()), "match": match}
        for text in texts
        for match in pattern.finditer(text)
    ]
