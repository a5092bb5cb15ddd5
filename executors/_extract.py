"""Find the runnable fenced code blocks in a model's markdown reply."""

from __future__ import annotations

import re

from ._types import BASH, PYTHON, SH, CodeBlock, normalize_language

_FENCE = re.compile(
    r"^[ \t]*```[ \t]*(?P<lang>[^\s`]*)[^\n]*\n(?P<body>.*?)^[ \t]*```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_FILENAME = re.compile(r"^\s*(?:#|//)\s*filename:\s*(?P<path>\S+)\s*$", re.IGNORECASE)
_SHELL_WORDS = frozenset(
    "apt apt-get bash cat cd chmod cp curl echo env export git head ls mkdir mv pip pip3 "
    "printf pwd python python3 rm sh source tail touch uv wc wget which".split()
)


def extract_code_blocks(text: str) -> list[CodeBlock]:
    """The python and shell blocks of `text` in order; untagged blocks get a guessed language.

    Blocks tagged with another language (json, text, ...) are not code to run and are left out.
    """
    blocks: list[CodeBlock] = []
    for match in _FENCE.finditer(text):
        body = match["body"]
        if body.endswith("\n"):
            body = body[:-1]
        if not body.strip():
            continue
        filename = _filename(body)
        tag = match["lang"]
        language = normalize_language(tag) if tag else _infer_language(body, filename)
        if language is None:
            continue
        blocks.append(CodeBlock(code=body, language=language, filename=filename))
    return blocks


def _filename(body: str) -> str | None:
    first = body.split("\n", 1)[0]
    found = _FILENAME.match(first)
    return found["path"] if found else None


def _infer_language(body: str, filename: str | None) -> str | None:
    """Guess python or sh for an untagged block: shebang, file suffix, then whether it parses."""
    first = body.lstrip().split("\n", 1)[0]
    if first.startswith("#!"):
        if "python" in first:
            return PYTHON
        return BASH if "bash" in first else SH
    if filename is not None:
        if filename.endswith(".py"):
            return PYTHON
        if filename.endswith((".sh", ".bash")):
            return SH
    words = first.split()
    if words and (words[0] in _SHELL_WORDS or words[0].startswith(("$", "./"))):
        if len(words) > 1 or words[0] in {"ls", "pwd", "env"}:
            return SH
    try:
        compile(body, "<block>", "exec")
    except (SyntaxError, ValueError):
        return SH
    return PYTHON
