"""Build the sandbox image offline from Debian packages: mmdebstrap to a tarball, then docker load.

There is no registry to pull from. The tag carries a hash of the whole recipe (suite, packages,
excludes, runner source), so a cached build is one inspect and any change gives a new tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import aiodocker
import anyio
import structlog

from ._errors import DockerUnavailableError, ImageError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

log = structlog.get_logger("moot.executors.image")

IMAGE_REPOSITORY = "moot-sandbox"
RECIPE_VERSION = 1
SUITE = "bookworm"
BASE_PACKAGES = ("python3-minimal", "libpython3.11-stdlib", "dash", "bash", "coreutils")
RUNNER_PATH = "/opt/moot/runner.py"
RUNNER_SOURCE = Path(__file__).with_name("_runner.py")
# Paths dpkg leaves out of the image: docs, translations, tests and tools a sandbox never runs.
EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
    "/usr/lib/x86_64-linux-gnu/gconv/*",
    "/usr/lib/aarch64-linux-gnu/gconv/*",
    "/usr/lib/python3.11/test/*",
    "/usr/lib/python3.11/idlelib/*",
    "/usr/lib/python3.11/lib2to3/*",
    "/usr/lib/python3.11/pydoc_data/*",
    "/usr/lib/python3.11/ensurepip/*",
    "/usr/lib/python3.11/tkinter/*",
    "/usr/lib/python3.11/turtledemo/*",
)
LABEL = "moot.sandbox"
# After extraction: install the runner, precompile the stdlib (the rootfs is read-only later).
EXTRACT_HOOK = (
    'mkdir -p "$1/opt/moot" "$1/work" "$1/run/moot" && cp {runner} "$1{target}" && '
    'chroot "$1" /usr/bin/python3 -m compileall -q /usr/lib/python3.11 /opt/moot >/dev/null'
)


_DEBIAN_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]+$")


def _recipe(extra_packages: Sequence[str]) -> dict[str, object]:
    for name in extra_packages:
        if not isinstance(name, str) or not _DEBIAN_NAME.match(name):
            raise ImageError(
                f"{name!r} is not a Debian package name (lowercase letters, digits, '+', '-'"
                " and '.', starting with a letter or digit)",
                image=IMAGE_REPOSITORY,
            )
    return {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "packages": sorted({*BASE_PACKAGES, *extra_packages}),
        "excludes": list(EXCLUDES),
        "runner": hashlib.sha256(RUNNER_SOURCE.read_bytes()).hexdigest(),
        "hook": EXTRACT_HOOK,
    }


def image_tag(extra_packages: Sequence[str] = ()) -> str:
    """The tag of the image built from this recipe: same packages and runner, same tag."""
    blob = json.dumps(_recipe(extra_packages), sort_keys=True).encode()
    return f"{IMAGE_REPOSITORY}:{hashlib.sha256(blob).hexdigest()[:16]}"


async def build_image(
    extra_packages: Sequence[str] = (),
    *,
    if_missing: bool = True,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Build (or with `if_missing` reuse) the sandbox image with extra Debian packages; the tag.

    Raises:
        DockerUnavailableError: no Docker engine answers.
        ImageError: mmdebstrap is missing or failed, or Docker refused the image.
    """
    tag = image_tag(extra_packages)
    say = progress or (lambda line: None)
    async with connect_docker() as docker:
        if if_missing and await image_exists(docker, tag):
            say(f"image {tag} exists")
            return tag
        if shutil.which("mmdebstrap") is None:
            raise ImageError(
                "Building the sandbox image needs mmdebstrap: sudo apt-get install -y mmdebstrap",
                image=tag,
            )
        with tempfile.TemporaryDirectory(prefix="moot-image-") as scratch:
            work = Path(scratch)
            rootfs = work / "rootfs.tar"
            say(f"building {tag} from Debian {SUITE} packages")
            await _mmdebstrap(_recipe(extra_packages), work, rootfs, say, tag)
            archive = work / "image.tar"
            size = await anyio.to_thread.run_sync(
                _pack_for_load, rootfs, archive, tag, extra_packages
            )
            say(f"loading {size / 1e6:.1f} MB image into Docker")
            try:
                await docker.images.import_image(data=_chunks(archive))
            except aiodocker.DockerError as exc:
                raise ImageError(f"Docker refused the image {tag}: {exc}", image=tag) from exc
        if not await image_exists(docker, tag):
            raise ImageError(f"Docker loaded the archive but has no image {tag}.", image=tag)
        log.info("image.built", tag=tag, packages=list(extra_packages))
        say(f"built {tag}")
        return tag


async def image_exists(docker: aiodocker.Docker, tag: str) -> bool:
    """Whether the engine has the image (one inspect)."""
    try:
        await docker.images.inspect(tag)
    except aiodocker.DockerError as exc:
        if exc.status == 404:
            return False
        raise
    return True


class connect_docker:
    """`async with connect_docker() as docker:` a checked client, or `DockerUnavailableError`."""

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._docker: aiodocker.Docker | None = None

    async def __aenter__(self) -> aiodocker.Docker:
        self._docker = await open_docker(self._url)
        return self._docker

    async def __aexit__(self, *exc_info: object) -> None:
        if self._docker is not None:
            await self._docker.close()


async def open_docker(url: str | None = None) -> aiodocker.Docker:
    """A connected aiodocker client after a successful ping.

    Raises:
        DockerUnavailableError: the engine is not reachable.
    """
    try:
        docker = aiodocker.Docker(url=url)
    except Exception as exc:
        raise _unavailable(url, exc) from exc
    try:
        with anyio.fail_after(10):
            await docker.version()
    except Exception as exc:
        await docker.close()
        raise _unavailable(url, exc) from exc
    return docker


def _unavailable(url: str | None, exc: BaseException) -> DockerUnavailableError:
    where = url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    return DockerUnavailableError(
        f"No Docker engine answers at {where} ({type(exc).__name__}: {exc}). Start Docker "
        "(`sudo systemctl start docker`, or `make services` in the moot repo) and make sure your "
        "user may use it, or run code without a sandbox with use_docker=False.",
        url=where,
    )


async def _mmdebstrap(
    recipe: dict[str, object], work: Path, rootfs: Path, say: Callable[[str], None], tag: str
) -> None:
    runner = work / "runner.py"
    runner.write_bytes(RUNNER_SOURCE.read_bytes())
    packages = recipe["packages"]
    assert isinstance(packages, list)
    hook = EXTRACT_HOOK.format(runner=shlex.quote(str(runner)), target=RUNNER_PATH)
    command = [
        "mmdebstrap",
        "--variant=extract",
        f"--include={','.join(packages)}",
        *(f"--dpkgopt=path-exclude={pattern}" for pattern in EXCLUDES),
        f"--extract-hook={hook}",
        SUITE,
        str(rootfs),
    ]
    async with await anyio.open_process(command) as process:
        assert process.stderr is not None
        lines: list[str] = []
        buffer = b""
        async for chunk in process.stderr:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                lines.append(line)
                if line.startswith("I: "):
                    say(line[3:])
        code = await process.wait()
    if code != 0:
        tail = "\n".join(lines[-15:])
        raise ImageError(f"mmdebstrap failed with exit code {code}:\n{tail}", image=tag)


def _pack_for_load(rootfs: Path, archive: Path, tag: str, extra: Sequence[str]) -> int:
    """Wrap a rootfs tarball as a one-layer `docker load` archive with our config and tag."""
    digest = hashlib.sha256()
    with rootfs.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    layer_id = digest.hexdigest()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
            "Cmd": ["/usr/bin/python3", "-I", RUNNER_PATH],
            "WorkingDir": "/work",
            "Labels": {LABEL: "1", "moot.packages": ",".join(sorted(extra))},
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        "history": [{"created_by": "moot image build (mmdebstrap)"}],
    }
    config_blob = json.dumps(config).encode()
    config_name = hashlib.sha256(config_blob).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": [f"{layer_id}/layer.tar"]}]
    ).encode()
    with tarfile.open(archive, "w") as tar:
        for name, blob in ((config_name, config_blob), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, _BytesReader(blob))
        tar.add(rootfs, arcname=f"{layer_id}/layer.tar")
    return archive.stat().st_size


class _BytesReader:
    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._blob) if size < 0 else self._pos + size
        chunk = self._blob[self._pos : end]
        self._pos += len(chunk)
        return chunk


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        while chunk := await handle.read(1 << 20):
            yield chunk
