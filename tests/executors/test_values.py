"""Unit tests for the value types, code-block extraction, reply formatting and path checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moot.executors import (
    CodeBlock,
    CodeResult,
    InvalidCodeError,
    LocalExecutor,
    UnsafePathError,
    extract_code_blocks,
    format_results,
)
from moot.executors._base import safe_relative_path
from moot.executors._runner import OutputCap
from moot.executors._types import normalize_language

if TYPE_CHECKING:
    from pathlib import Path


def test_tagged_blocks_in_order_with_normalized_languages() -> None:
    text = (
        "First:\n```python\nprint(1)\n```\nthen\n```sh\necho hi\n```\n"
        "```bash\nls -la\n```\n```py\nx = 1\n```\n```shell\npwd\n```\n"
    )
    blocks = extract_code_blocks(text)
    assert [(b.language, b.code) for b in blocks] == [
        ("python", "print(1)"),
        ("sh", "echo hi"),
        ("bash", "ls -la"),
        ("python", "x = 1"),
        ("sh", "pwd"),
    ]


def test_other_languages_are_not_code_to_run() -> None:
    text = '```json\n{"a": 1}\n```\n```text\nhello\n```\n```python\nprint(2)\n```'
    assert extract_code_blocks(text) == [CodeBlock("print(2)", "python")]


@pytest.mark.parametrize(
    ("body", "language"),
    [
        ("print('hi')", "python"),
        ("import os\nprint(os.getcwd())", "python"),
        ("pip install requests", "sh"),
        ("ls -la", "sh"),
        ("ls", "sh"),
        ("echo $HOME", "sh"),
        ("#!/bin/bash\necho hi", "bash"),
        ("#!/usr/bin/env python3\nprint(1)", "python"),
        ("for f in *.txt; do cat $f; done", "sh"),
        ("x = 1\ny = x + 1", "python"),
    ],
)
def test_untagged_blocks_get_a_guessed_language(body: str, language: str) -> None:
    assert extract_code_blocks(f"```\n{body}\n```") == [CodeBlock(body, language)]


def test_filename_comment_sets_filename_and_stays_in_code() -> None:
    text = "```python\n# filename: src/fib.py\nprint(5)\n```"
    (block,) = extract_code_blocks(text)
    assert block.filename == "src/fib.py"
    assert block.code == "# filename: src/fib.py\nprint(5)"


def test_untagged_block_with_filename_uses_its_suffix() -> None:
    (block,) = extract_code_blocks("```\n# filename: run.sh\nls\n```")
    assert (block.language, block.filename) == ("sh", "run.sh")


def test_no_blocks_and_empty_blocks() -> None:
    assert extract_code_blocks("just prose, TERMINATE") == []
    assert extract_code_blocks("```python\n\n```") == []


def test_normalize_language() -> None:
    assert normalize_language(" Py ") == "python"
    assert normalize_language("SHELL") == "sh"
    assert normalize_language("rust") is None


def test_output_joins_stdout_and_stderr() -> None:
    result = CodeResult(exit_code=1, stdout="partial", stderr="Traceback\n")
    assert result.output == "partial\nTraceback\n"
    assert CodeResult(exit_code=0, stdout="a\n", stderr="b").output == "a\nb"


def test_format_results_matches_autogen() -> None:
    ok = CodeResult(exit_code=0, stdout="45\n", stderr="")
    failed = CodeResult(exit_code=1, stdout="", stderr="NameError: x\n")
    assert format_results([ok]) == "exitcode: 0 (execute succeeded)\nCode output: 45\n"
    assert format_results([ok, failed]) == (
        "exitcode: 1 (execution failed)\nCode output: 45\n\nNameError: x\n"
    )


@pytest.mark.parametrize(
    "path",
    ["../x.py", "/etc/passwd", "a/../../x", "..", "", "  ", "a" * 256, "d/" * 600, "x\ud800.py"],
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(UnsafePathError) as info:
        safe_relative_path(path)
    assert info.value.path == path
    assert isinstance(info.value, ValueError)


def test_safe_paths_are_normalized() -> None:
    assert safe_relative_path("a/./b/../c.py") == "a/c.py"
    assert safe_relative_path("fib.txt") == "fib.txt"
    assert safe_relative_path(" lead.txt") == " lead.txt"  # kept exactly: no collision
    assert safe_relative_path("é" * 126 + ".p") == "é" * 126 + ".p"  # 254 bytes: a legal name


@pytest.mark.parametrize(
    ("code", "reason"), [("print('\ud800')", "not_encodable"), ("#" * ((4 << 20) + 1), "too_large")]
)
async def test_code_the_host_cannot_send_is_refused_before_it_runs(
    tmp_path: Path, code: str, reason: str
) -> None:
    async with LocalExecutor() as executor, executor.session(tmp_path) as session:
        with pytest.raises(InvalidCodeError) as info:
            await session.run(CodeBlock(code, "python"))
        after = await session.run(CodeBlock("print('ok')", "python"))
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)
    assert after.stdout == "ok\n"


def test_output_cap_keeps_head_and_tail_with_a_marker() -> None:
    cap = OutputCap(10)
    for chunk in (b"0123", b"456789", b"abcdefghij"):
        cap.feed(chunk)
    text = cap.text()
    assert text.startswith("01234")
    assert text.endswith("fghij")
    assert "[... 10 bytes of output omitted ...]" in text


def test_output_cap_decodes_bad_bytes_safely() -> None:
    cap = OutputCap(100)
    cap.feed(b"ok \xff\xfe \xc3")
    assert cap.text() == "ok \ufffd\ufffd \ufffd"


@given(st.lists(st.binary(max_size=50), max_size=20), st.integers(min_value=0, max_value=64))
def test_output_cap_is_bounded_and_exact_when_it_fits(chunks: list[bytes], limit: int) -> None:
    cap = OutputCap(limit)
    for chunk in chunks:
        cap.feed(chunk)
    data = b"".join(chunks)
    assert cap.total == len(data)
    if len(data) <= limit:
        assert cap.text() == data.decode("utf-8", "replace")
    else:
        kept = len(cap.head) + min(len(cap.tail), limit - limit // 2)
        assert kept == limit
        assert "bytes of output omitted" in cap.text()
