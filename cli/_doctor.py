"""`moot doctor`: check what moot needs on this machine, each finding with a fix hint."""

from __future__ import annotations

import enum
import importlib.util
import os
import shutil
import socket
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio

from moot.models import QWEN_CODER_05B, cached_model, model_path

if TYPE_CHECKING:
    from collections.abc import Sequence


class Status(enum.StrEnum):
    OK = "ok"  # present and working
    WARN = "warn"  # missing, but moot works without it (with less)
    FAIL = "fail"  # missing and required: moot cannot work


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One finding: what was checked, what was found, and how to fix it when not ok."""

    name: str
    status: Status
    detail: str
    hint: str = ""
    required: bool = False

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["status"] = self.status.value
        return out


def check_python() -> Check:
    version = ".".join(str(part) for part in sys.version_info[:3])
    if sys.version_info >= (3, 11):  # noqa: UP036 - doctor runs wherever moot was copied
        return Check(name="python", status=Status.OK, detail=version, required=True)
    return Check(
        name="python",
        status=Status.FAIL,
        detail=version,
        hint="moot needs Python 3.11 or newer: sudo apt-get install -y python3.11 python3.11-venv",
        required=True,
    )


async def check_docker() -> tuple[Check, bool]:
    """The engine check, and whether an engine answered (the image check needs one)."""
    from moot.executors import DockerUnavailableError, open_docker

    try:
        docker = await open_docker()
    except DockerUnavailableError:
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        return (
            Check(
                name="docker",
                status=Status.WARN,
                detail=f"no engine answers at {where}",
                hint="start Docker (sudo systemctl start docker, or `make services`); without it"
                " code runs unsandboxed with the local executor",
            ),
            False,
        )
    try:
        info = await docker.version()
    finally:
        await docker.close()
    return Check(name="docker", status=Status.OK, detail=f"engine {info.get('Version', '?')}"), True


async def check_image(engine: bool) -> Check:
    from moot.executors import image_exists, image_tag, open_docker

    tag = image_tag()
    if not engine:
        return Check(
            name="sandbox image",
            status=Status.WARN,
            detail=f"{tag} (not checked: no Docker engine)",
            hint="start Docker, then run `moot image build`",
        )
    docker = await open_docker()
    try:
        exists = await image_exists(docker, tag)
    finally:
        await docker.close()
    if exists:
        return Check(name="sandbox image", status=Status.OK, detail=tag)
    return Check(
        name="sandbox image",
        status=Status.WARN,
        detail=f"{tag} is not built",
        hint="run `moot image build` (needs mmdebstrap: sudo apt-get install -y mmdebstrap)",
    )


def check_model() -> Check:
    found = cached_model()
    if found is not None:
        return Check(name="model cache", status=Status.OK, detail=str(found))
    return Check(
        name="model cache",
        status=Status.WARN,
        detail=f"{QWEN_CODER_05B.name} not at {model_path()}",
        hint="run `moot model fetch` (or set MOOT_BASE_URL/OPENAI_API_KEY to use a server)",
    )


def check_llama() -> Check:
    if importlib.util.find_spec("llama_cpp") is not None:
        return Check(name="llama-cpp-python", status=Status.OK, detail="installed")
    return Check(
        name="llama-cpp-python",
        status=Status.WARN,
        detail="not installed (needed only for the embedded model)",
        hint="`make demo` builds it once and caches the wheel; or pip install 'moot[local]'",
    )


def nats_url() -> str:
    return os.environ.get("MOOT_NATS_URL") or os.environ.get("NATS_URL") or "nats://127.0.0.1:4222"


def check_nats(timeout: float = 0.5) -> Check:
    url = nats_url()
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    binary = shutil.which("nats-server")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError:
        where = f"nothing listens at {host}:{port}"
        if binary:
            return Check(
                name="nats",
                status=Status.WARN,
                detail=f"{where}; nats-server at {binary}",
                hint="needed only for multi-process runtimes: nats-server -js &",
            )
        return Check(
            name="nats",
            status=Status.WARN,
            detail=f"{where}; no nats-server binary",
            hint="needed only for multi-process runtimes: sudo apt-get install -y nats-server",
        )
    return Check(name="nats", status=Status.OK, detail=f"server answers at {host}:{port}")


async def run_checks() -> list[Check]:
    """Every check, in the order `moot doctor` shows them."""
    docker, engine = await check_docker()
    return [
        check_python(),
        docker,
        await check_image(engine),
        check_model(),
        check_llama(),
        await anyio.to_thread.run_sync(check_nats),
    ]


def verdict(checks: Sequence[Check], *, strict: bool = False) -> bool:
    """Whether the machine passes: no failure (and with `strict`, no warning either)."""
    bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
    return not any(check.status in bad for check in checks)
