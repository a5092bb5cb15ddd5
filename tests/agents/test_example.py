"""`examples/two_agents.py`, unchanged, against the scripted server: a plain script, a real chat."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moot.testing import ScriptedModelServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "two_agents.py"

BROKEN = "I'll compute them.\n```python\nprint(fib(20))\n```"
FIXED = """The function was missing; here is the whole program.
```python
# filename: fib.py
a, b = 0, 1
with open("fib.txt", "w") as out:
    for _ in range(20):
        out.write(f"{a}\\n")
        a, b = b, a + b
print("wrote 20 numbers")
```"""
DONE = "The first 20 Fibonacci numbers are in fib.txt. TERMINATE"


def test_the_tutorial_runs_end_to_end(server: ScriptedModelServer, tmp_path: Path) -> None:
    server.push(BROKEN, FIXED, DONE)
    env = dict(
        os.environ,
        MOOT_BASE_URL=server.base_url,
        OPENAI_API_KEY="scripted-key",
        MOOT_MODEL="gpt-4o",
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
    fib = (tmp_path / "workspace" / "fib.txt").read_text().split()
    assert fib[:6] == ["0", "1", "1", "2", "3", "5"]
    assert len(fib) == 20
    assert (tmp_path / "workspace" / "fib.py").exists()  # `# filename:` saved the code
    out = done.stdout
    assert "NameError: name 'fib' is not defined" in out  # the first code failed ...
    assert (
        "exitcode: 0 (execute succeeded)\nCode output: wrote 20 numbers" in out
    )  # ... the fix ran
    assert "messages: 6" in out
    assert "summary: The first 20 Fibonacci numbers are in fib.txt.\n" in out
    assert "in 3 model calls" in out
    # the model saw the traceback, and the key went to the server
    assert "NameError" in server.requests[1].last_text
    assert server.requests[0].headers["authorization"] == "Bearer scripted-key"
    server.assert_script_consumed()
