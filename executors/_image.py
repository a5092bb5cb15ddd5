"""Build the sandbox image offline from Debian packages: mmdebstrap to a tarball, then docker load.

There is no registry to pull from. The tag carries a hash of the whole recipe (suite, packages,
excludes, runner source), so a cached build is one inspect and any change gives a new tag.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import aiodocker
import anyio
import structlog

from ._errors import DockerUnavailableError, ImageError, PackageNameError, SmokeImportError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

log = structlog.get_logger("moot.executors.image")

IMAGE_REPOSITORY = "moot-sandbox"
RECIPE_VERSION = 2
SUITE = "bookworm"
BASE_PACKAGES = ("python3-minimal", "libpython3.11-stdlib", "dash", "bash", "coreutils")
RUNNER_PATH = "/opt/moot/runner.py"
RUNNER_SOURCE = Path(__file__).with_name("_runner.py")
KERNEL_DRIVER_PATH = "/opt/moot/kernel_driver.py"
KERNEL_DRIVER_SOURCE = Path(__file__).with_name("_kernel_driver.py")
SMOKE_SOURCE = Path(__file__).with_name("_smoke.py")
PROFILES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "data": ("python3-numpy", "python3-pandas", "python3-matplotlib", "python3-scipy"),
        "kernel": ("python3-ipykernel", "python3-jupyter-client"),
    }
)
"""Named package sets: `packages="data"` or `moot image build --profile data`."""


def profiles() -> Mapping[str, tuple[str, ...]]:
    """The named package sets (read-only): profile name -> Debian packages."""
    return PROFILES


# Hard dependencies a headless, offline sandbox never uses. They are declared installed to apt
# (never downloaded) unless asked for by name; the smoke import proves the rest still imports.
STUBS: Mapping[str, str] = MappingProxyType(
    {
        "python3-pythran": "scipy's build-time compiler; brings g++, boost and python3-dev",
        "python3-pil.imagetk": "Pillow's Tk glue; brings Tcl/Tk and X11",
        "python3-sympy": "fontTools' symfont only",
        "python3-lxml": "fontTools' XML formats only; brings libxml2 and ICU",
        "python3-fs": "fontTools' UFO support only",
        "python3-ufolib2": "fontTools' UFO support only",
        "python3-lz4": "fontTools' compressed formats only",
        "unicode-data": "fontTools' unicode tables only",
        "libjs-jquery": "matplotlib's web backend only",
        "libjs-jquery-ui": "matplotlib's web backend only",
        "python3-debugpy": "ipykernel's debugger only; brings pydevd",
    }
)
# Paths removed right after extraction (cheaper than dpkg path-exclude, which pipes every package
# through a Python tar filter): docs, translations, tests and tools a sandbox never runs.
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
# (The hook also removes every `tests` directory under dist-packages: the packages' own suites.)
SCRATCH_IN_MEMORY_BYTES = 4 << 30
LABEL = "moot.sandbox"
LABEL_PACKAGES = "moot.packages"
# Providers of the BLAS/LAPACK alternatives, best first (Debian's priorities: OpenBLAS, BLIS,
# ATLAS, then the reference build).
_BLAS_PROVIDERS = (
    "openblas-pthread openblas-serial openblas-openmp blis-pthread blis-serial blis-openmp atlas"
)
# Runs in mmdebstrap's extract phase with the new root as $1: what the skipped maintainer
# scripts would have done (alternatives, ldconfig, bytecode, config), our runner, the smoke test.
HOOK = rf"""set -eu
root="$1"; work="$2"; shift 2
mkdir -p "$root/opt/moot" "$root/work" "$root/run/moot" "$root/etc/alternatives"
cp "$work/runner.py" "$root{RUNNER_PATH}"
cp "$work/kernel_driver.py" "$root{KERNEL_DRIVER_PATH}"
while read -r pattern; do rm -rf "$root"$pattern; done < "$work/excludes"
if [ -d "$root/usr/lib/python3/dist-packages" ]; then
  find "$root/usr/lib/python3/dist-packages" -type d -name tests -prune -exec rm -rf {{}} +
fi
for lib in "$root"/usr/lib/*-linux-gnu; do
  triplet="${{lib##*/}}"
  for pair in libblas.so.3:blas liblapack.so.3:lapack; do
    name="${{pair%%:*}}"
    [ -e "$lib/$name" ] && continue
    for impl in {_BLAS_PROVIDERS} "${{pair#*:}}"; do
      if [ -e "$lib/$impl/$name" ]; then
        ln -sfn "/usr/lib/$triplet/$impl/$name" "$root/etc/alternatives/$name-$triplet"
        ln -sfn "/etc/alternatives/$name-$triplet" "$lib/$name"
        echo "moot-hook: $name -> $impl" >&2
        break
      fi
    done
  done
done
if [ -x /sbin/ldconfig ] && [ -d "$root/etc/ld.so.conf.d" ]; then /sbin/ldconfig -r "$root"; fi
if [ -e "$root/usr/share/zoneinfo/Etc/UTC" ] && [ ! -e "$root/etc/localtime" ]; then
  ln -s /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
fi
if [ -f "$root/etc/matplotlibrc" ]; then
  sed -i 's/^backend *:.*/backend: Agg/' "$root/etc/matplotlibrc"
fi
dirs="/usr/lib/python3.11 /opt/moot"
[ -d "$root/usr/lib/python3/dist-packages" ] && dirs="$dirs /usr/lib/python3/dist-packages"
echo "moot-hook: compiling Python bytecode" >&2
chroot "$root" /usr/bin/python3 -m compileall -q -j0 $dirs >/dev/null
if [ "$#" -gt 0 ]; then
  smoke="$root/run/moot/smoke"
  mkdir -p "$smoke/mpl"
  cp "$work/smoke.py" "$root/run/moot/smoke.py"
  for package in "$@"; do
    dpkg-deb -c "$root/var/cache/apt/archives/${{package}}_"*.deb > "$smoke/$package.list"
  done
  echo "moot-hook: importing every Python module of $*" >&2
  status=0
  chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin LANG=C.UTF-8 MPLBACKEND=Agg \
    MPLCONFIGDIR=/run/moot/smoke/mpl /usr/bin/python3 -I /run/moot/smoke.py /run/moot/smoke \
    || status=$?
  rm -rf "$smoke" "$root/run/moot/smoke.py"
  exit "$status"
fi
"""

_DEBIAN_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]+$")
_SMOKE_FAILURE = re.compile(r"moot-smoke: FAIL (\S+) (\S+) (.*)")
_UNKNOWN = re.compile(r"E: Unable to locate package (\S+)")


def resolve_packages(packages: str | Sequence[str] = ()) -> tuple[str, ...]:
    """Debian package names from a profile name or a list of names and profile names; sorted.

    Raises:
        PackageNameError: a name is neither a profile nor a valid Debian package name.
    """
    items = [packages] if isinstance(packages, str) else list(packages)
    names: set[str] = set()
    for item in items:
        if isinstance(item, str) and item in PROFILES:
            names.update(PROFILES[item])
        elif isinstance(item, str) and _DEBIAN_NAME.match(item):
            names.add(item)
        else:
            raise PackageNameError(
                f"{item!r} is not a Debian package name (lowercase letters, digits, '+', '-'"
                " and '.', starting with a letter or digit) nor a profile"
                f" ({', '.join(sorted(PROFILES))})",
                name=str(item),
            )
    return tuple(sorted(names))


def _recipe(extra_packages: Sequence[str]) -> dict[str, object]:
    extra = [name for name in extra_packages if name not in BASE_PACKAGES]
    return {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "packages": sorted({*BASE_PACKAGES, *extra}),
        "smoke": extra,
        "stubs": sorted(set(STUBS) - set(extra)),
        "excludes": list(EXCLUDES),
        "runner": hashlib.sha256(RUNNER_SOURCE.read_bytes()).hexdigest(),
        "kernel_driver": hashlib.sha256(KERNEL_DRIVER_SOURCE.read_bytes()).hexdigest(),
        "smoke_source": hashlib.sha256(SMOKE_SOURCE.read_bytes()).hexdigest(),
        "hook": HOOK,
    }


def image_tag(extra_packages: str | Sequence[str] = ()) -> str:
    """The tag of the image built from this recipe: same packages and runner, same tag.

    Raises:
        PackageNameError: a name is neither a profile nor a valid Debian package name.
    """
    blob = json.dumps(_recipe(resolve_packages(extra_packages)), sort_keys=True).encode()
    return f"{IMAGE_REPOSITORY}:{hashlib.sha256(blob).hexdigest()[:16]}"


async def build_image(
    extra_packages: str | Sequence[str] = (),
    *,
    if_missing: bool = True,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Build (or with `if_missing` reuse) the sandbox image with extra Debian packages; the tag.

    `extra_packages` may name profiles (`"data"`). Concurrent builds of one recipe, in this
    process or another, build once: the others wait on a lock file and reuse the result.

    Raises:
        PackageNameError: a name is invalid or no Debian package has it (checked before building).
        SmokeImportError: the image built but a requested package does not import.
        DockerUnavailableError: no Docker engine answers.
        ImageError: mmdebstrap is missing or failed, or Docker refused the image.
    """
    extra = resolve_packages(extra_packages)
    tag = image_tag(extra)
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
        await anyio.to_thread.run_sync(_check_known, extra)
        async with _build_lock(tag, say):
            if if_missing and await image_exists(docker, tag):
                say(f"image {tag} exists (another build made it)")
                return tag
            await _build(docker, extra, tag, say)
        log.info("image.built", tag=tag, packages=list(extra))
        say(f"built {tag}")
        return tag


async def _build(
    docker: aiodocker.Docker, extra: Sequence[str], tag: str, say: Callable[[str], None]
) -> None:
    with tempfile.TemporaryDirectory(prefix="moot-image-", dir=_scratch_root()) as scratch:
        work = Path(scratch)
        rootfs = work / "rootfs.tar"
        started = time.monotonic()
        what = f" with {', '.join(extra)}" if extra else ""
        say(f"building {tag} from Debian {SUITE} packages{what} (about a minute)")
        await _mmdebstrap(_recipe(extra), work, rootfs, say, tag)
        size = (await anyio.Path(rootfs).stat()).st_size
        say(f"loading {size / 1e6:.1f} MB image into Docker")
        try:
            await docker.images.import_image(data=_load_archive(rootfs, size, tag, extra))
        except aiodocker.DockerError as exc:
            raise ImageError(f"Docker refused the image {tag}: {exc}", image=tag) from exc
        if not await image_exists(docker, tag):
            raise ImageError(f"Docker loaded the archive but has no image {tag}.", image=tag)
        log.info("image.build_time", tag=tag, seconds=round(time.monotonic() - started, 1))


async def check_image(name: str) -> dict[str, str]:
    """A user's prebuilt image: check it exists and is a moot sandbox; return its labels.

    Raises:
        DockerUnavailableError: no Docker engine answers.
        ImageError: the engine has no such image, or it was not built on moot's sandbox image.
    """
    async with connect_docker() as docker:
        try:
            info = await docker.images.inspect(name)
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise
            raise ImageError(
                f"The Docker engine has no image {name!r}. Build it first (`moot image build"
                " --with PKG` prints a tag; or `docker build` FROM such a tag).",
                image=name,
            ) from exc
    labels = dict((info.get("Config") or {}).get("Labels") or {})
    if labels.get(LABEL) != "1":
        raise ImageError(
            f"The image {name!r} is not a moot sandbox image (it has no {LABEL} label), so it has"
            " no job runner. Build it FROM a tag that `moot image build` prints, or use"
            " code_execution_config={'use_docker': True, 'packages': [...]}.",
            image=name,
        )
    return labels


def _check_known(extra: Sequence[str]) -> None:
    """Refuse names no Debian package has, before building: by the host's apt lists when it has
    them, else by a simulated mmdebstrap run (an `apt-get update` and a resolution, no download).

    Raises:
        PackageNameError: some name is unknown.
    """
    if not extra:
        return
    unknown = _unknown_by_host_lists(extra)
    if unknown is None:
        unknown = _unknown_by_simulation(extra)
    if unknown:
        raise PackageNameError(
            f"No Debian {SUITE} package is named {', '.join(map(repr, unknown))}. Debian names"
            " Python libraries python3-<name> (e.g. python3-sklearn); `apt-cache search NAME`"
            " finds one.",
            name=unknown[0],
        )


def _unknown_by_host_lists(extra: Sequence[str]) -> list[str] | None:
    """The names the host's apt lists lack; None when the host has no usable lists."""
    if shutil.which("apt-cache") is None:
        return None
    names = [*extra, BASE_PACKAGES[0]]
    done = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", "--", *names],
        capture_output=True,
        text=True,
        check=False,
    )
    found = set(re.findall(r"^Package: (\S+)$", done.stdout, flags=re.MULTILINE))
    if BASE_PACKAGES[0] not in found:
        return None
    return [name for name in extra if name not in found]


def _unknown_by_simulation(extra: Sequence[str]) -> list[str]:
    """The names apt cannot locate in a simulated build; [] if the simulation fails otherwise
    (the real build then reports it)."""
    done = subprocess.run(
        [
            "mmdebstrap",
            "--simulate",
            "--variant=extract",
            f"--include={','.join([*BASE_PACKAGES, *extra])}",
            SUITE,
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return sorted(set(_UNKNOWN.findall(done.stderr + done.stdout)))


class _build_lock:
    """A lock file per recipe hash: one build at a time across tasks and processes."""

    def __init__(self, tag: str, say: Callable[[str], None]) -> None:
        digest = tag.rpartition(":")[2]
        self._path = lock_dir() / f"{digest}.lock"
        self._say = say
        self._fd = -1

    async def __aenter__(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._say("waiting for another build of the same image to finish")
            await _flock_in_thread(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    async def __aexit__(self, *exc_info: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


async def _flock_in_thread(fd: int) -> None:
    """Block on the lock in a worker thread; if the waiter is cancelled, whoever finishes last
    (the thread or the waiter) lets go of the lock and the file."""
    guard = threading.Lock()
    state = {"acquired": False, "abandoned": False}

    def acquire() -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with guard:
            if state["abandoned"]:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            else:
                state["acquired"] = True

    try:
        await anyio.to_thread.run_sync(acquire, abandon_on_cancel=True)
    except BaseException:
        with guard:
            state["abandoned"] = True
            if state["acquired"]:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        raise


def lock_dir() -> Path:
    """Where build locks live: $MOOT_CACHE_DIR, else $XDG_CACHE_HOME/moot, else ~/.cache/moot."""
    base = os.environ.get("MOOT_CACHE_DIR")
    if base:
        return Path(base) / "image-locks"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "moot" / "image-locks"


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
    (work / "runner.py").write_bytes(RUNNER_SOURCE.read_bytes())
    (work / "smoke.py").write_bytes(SMOKE_SOURCE.read_bytes())
    (work / "kernel_driver.py").write_bytes(KERNEL_DRIVER_SOURCE.read_bytes())
    (work / "hook.sh").write_text(str(recipe["hook"]))
    (work / "excludes").write_text("".join(f"{pattern}\n" for pattern in EXCLUDES))
    (work / "stubs").write_text("".join(_stub_entry(name) for name in _strings(recipe["stubs"])))
    smoke = " ".join(shlex.quote(name) for name in _strings(recipe["smoke"]))
    quoted = shlex.quote(str(work))
    command = [
        "mmdebstrap",
        "--variant=extract",
        '--aptopt=APT::Install-Recommends "false"',
        f"--include={','.join(_strings(recipe['packages']))}",
        f'--setup-hook=cat {quoted}/stubs >> "$1/var/lib/dpkg/status"',
        f'--extract-hook=sh {quoted}/hook.sh "$1" {quoted} {smoke}',
        SUITE,
        str(rootfs),
    ]
    lines: list[str] = []
    env = {**os.environ, "TMPDIR": str(work.parent)}
    async with await anyio.open_process(command, stdout=subprocess.DEVNULL, env=env) as process:
        assert process.stderr is not None
        buffer = b""
        async for chunk in process.stderr:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                lines.append(line)
                if line.startswith(("I: ", "moot-")):
                    say(line.removeprefix("I: "))
        code = await process.wait()
    if code != 0:
        raise _build_failure(code, lines, tag)


def _build_failure(code: int, lines: Sequence[str], tag: str) -> ImageError:
    """The typed error for a failed mmdebstrap run, read from its output."""
    text = "\n".join(lines)
    if match := _SMOKE_FAILURE.search(text):
        package, module, detail = match.groups()
        return SmokeImportError(
            f"The image builds, but {package} does not import: `import {module}` fails with"
            f" {detail}",
            image=tag,
            package=package,
            module=module,
        )
    if unknown := _UNKNOWN.findall(text):
        return PackageNameError(
            f"No Debian {SUITE} package is named {', '.join(map(repr, unknown))}.",
            name=unknown[0],
        )
    tail = "\n".join(lines[-15:])
    return ImageError(f"mmdebstrap failed with exit code {code}:\n{tail}", image=tag)


def _stub_entry(name: str) -> str:
    """A dpkg status record that makes apt treat `name` as installed, so it is not fetched."""
    return (
        f"Package: {name}\nStatus: install ok installed\nPriority: optional\n"
        "Section: moot-stub\nMaintainer: moot <moot@localhost>\nArchitecture: all\n"
        "Version: 999:0\nDescription: left out of the moot sandbox (not needed headless)\n\n"
    )


def _scratch_root() -> str | None:
    """/dev/shm when it has room (a rootfs unpacks and is deleted several times faster in
    memory), else the default temporary directory."""
    try:
        stats = os.statvfs("/dev/shm")
    except OSError:
        return None
    roomy = stats.f_bavail * stats.f_frsize >= SCRATCH_IN_MEMORY_BYTES
    return "/dev/shm" if roomy and os.access("/dev/shm", os.W_OK) else None


def _strings(value: object) -> list[str]:
    assert isinstance(value, list)
    return [str(item) for item in value]


def _image_config(layer_digest: str, extra: Sequence[str]) -> bytes:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
            "Cmd": ["/usr/bin/python3", "-I", RUNNER_PATH],
            "WorkingDir": "/work",
            "Labels": {LABEL: "1", LABEL_PACKAGES: ",".join(sorted(extra))},
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created_by": "moot image build (mmdebstrap)"}],
    }
    return json.dumps(config).encode()


async def _load_archive(
    rootfs: Path, size: int, tag: str, extra: Sequence[str]
) -> AsyncIterator[bytes]:
    """A one-layer `docker load` archive, streamed: the rootfs is read once, hashed on the way,
    and the config and manifest (which need the hash) follow it."""
    yield _tar_header("layer.tar", size)
    digest = hashlib.sha256()
    async with await anyio.open_file(rootfs, "rb") as handle:
        while chunk := await handle.read(1 << 20):
            digest.update(chunk)
            yield chunk
    yield _tar_padding(size)
    config = _image_config(digest.hexdigest(), extra)
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]
    ).encode()
    for name, blob in ((config_name, config), ("manifest.json", manifest)):
        yield _tar_header(name, len(blob)) + blob + _tar_padding(len(blob))
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _tar_padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)
