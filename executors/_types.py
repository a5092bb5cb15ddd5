"""Value types shared by every executor: a code block, the result of running it, the reply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

PYTHON = "python"
SH = "sh"
BASH = "bash"

_ALIASES = {
    "python": PYTHON,
    "py": PYTHON,
    "python3": PYTHON,
    "sh": SH,
    "shell": SH,
    "bash": BASH,
}

TIMEOUT_EXIT_CODE = 124


def normalize_language(language: str) -> str | None:
    """The canonical name of a language an executor can run (python, sh, bash), or None."""
    return _ALIASES.get(language.strip().lower())


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """One fenced block of code; `filename` (from `# filename:`) is a path inside the work dir."""

    code: str
    language: str
    filename: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CodeResult:
    """What one block did: exit code (124 timeout, 137 OOM), capped output, files changed."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    oom_killed: bool = False
    duration_s: float = 0.0
    files: tuple[str, ...] = ()
    files_not_copied: int = 0

    @property
    def output(self) -> str:
        """Stdout then stderr, as AutoGen shows them to the model."""
        if self.stdout and self.stderr and not self.stdout.endswith("\n"):
            return self.stdout + "\n" + self.stderr
        return self.stdout + self.stderr


def format_results(results: Iterable[CodeResult]) -> str:
    """AutoGen's reply to a message with code: the last exit code, then every block's output."""
    items = list(results)
    exit_code = items[-1].exit_code if items else 0
    verdict = "execute succeeded" if exit_code == 0 else "execution failed"
    output = "\n".join(item.output for item in items)
    return f"exitcode: {exit_code} ({verdict})\nCode output: {output}"
