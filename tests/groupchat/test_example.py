"""`examples/group_chat.py`, unchanged, against the scripted server: the panel as a plain script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from moot.testing import ScriptedModelServer

if TYPE_CHECKING:
    from moot.testing import RecordedRequest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "group_chat.py"

CODE = """```python
import string

def is_palindrome(text):
    kept = [c.lower() for c in text if c not in string.punctuation and not c.isspace()]
    return kept == kept[::-1]

assert is_palindrome("A man, a plan, a canal: Panama")
assert not is_palindrome("moot")
print("all tests passed")
```"""


def test_the_panel_example_runs_end_to_end(tmp_path: Path) -> None:
    picks = iter(["planner", "Coder", "next: executor", "reviewer"])

    def answer(request: RecordedRequest) -> str:
        if "response_format" in request.body:
            return next(picks)
        system = str(request.messages[0]["content"])
        if system.startswith("Break tasks"):
            return "1. Normalise the text. 2. Compare it with its reverse. 3. Test."
        if system.startswith("Write clean"):
            return CODE
        return "Correct, and the tests pass. TERMINATE"

    with ScriptedModelServer(default=answer) as server:
        env = dict(
            os.environ, MOOT_BASE_URL=server.base_url, OPENAI_API_KEY="k", MOOT_MODEL="gpt-4o"
        )
        env.pop("MOOT_USE_DOCKER", None)
        done = subprocess.run(
            [sys.executable, str(EXAMPLE)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "speakers: executor -> planner -> coder -> executor -> reviewer" in out
    assert "all tests passed" in out
    assert "ended because: is_termination_msg accepted the message of reviewer" in out
    assert "summary: Correct, and the tests pass." in out
    assert not server.errors
