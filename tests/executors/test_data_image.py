"""Images with extra Debian packages: profiles, names checked before a build, packages that
import (BLAS/LAPACK links, smoke test), headless matplotlib, one build for concurrent first uses."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import aiodocker
import anyio
import pytest

from moot.executors import (
    CodeBlock,
    ImageError,
    PackageNameError,
    SmokeImportError,
    build_image,
    image_tag,
    profiles,
    resolve_packages,
)
from moot.executors._image import _build_failure, _unknown_by_simulation

if TYPE_CHECKING:
    from pathlib import Path

    from docker_helpers import DockerFactory

DATA = ("python3-matplotlib", "python3-numpy", "python3-pandas", "python3-scipy")


def test_the_data_profile_is_numpy_pandas_matplotlib_scipy() -> None:
    assert resolve_packages("data") == DATA
    assert sorted(profiles()["data"]) == list(DATA)
    assert resolve_packages(["python3-six", "data"]) == tuple(sorted([*DATA, "python3-six"]))
    assert image_tag("data") == image_tag(list(DATA)) != image_tag()


@pytest.mark.parametrize("bad", ["Pandas", "pandas numpy", "-rf", "x", "data;ls", 3])
def test_invalid_names_are_refused_with_a_typed_error(bad: object) -> None:
    with pytest.raises(PackageNameError, match="not a Debian package name") as caught:
        resolve_packages([bad])  # type: ignore[list-item]
    assert caught.value.name == str(bad)
    assert isinstance(caught.value, ValueError)


def test_a_failed_smoke_import_names_the_package_and_module() -> None:
    lines = [
        "I: extracting archives...",
        "moot-smoke: FAIL python3-pandas pandas ImportError: libblas.so.3: cannot open shared",
    ]
    error = _build_failure(1, lines, "moot-sandbox:abc")
    assert isinstance(error, SmokeImportError)
    assert (error.package, error.module) == ("python3-pandas", "pandas")
    assert "python3-pandas does not import: `import pandas` fails with ImportError" in str(error)


@pytest.mark.docker
async def test_an_unknown_package_is_refused_before_any_build(docker_image: str) -> None:
    lines: list[str] = []
    with pytest.raises(PackageNameError, match="python3-no-such-thing-moot") as caught:
        await build_image(["python3-no-such-thing-moot"], progress=lines.append)
    assert caught.value.name == "python3-no-such-thing-moot"
    assert not any("building" in line for line in lines)


@pytest.mark.docker
async def test_the_data_image_is_small_and_labelled(data_image: str) -> None:
    assert data_image == image_tag("data")
    async with aiodocker.Docker() as docker:
        info = await docker.images.inspect(data_image)
    assert info["Size"] <= 350 * 1000 * 1000
    assert info["Config"]["Labels"]["moot.packages"] == ",".join(DATA)


@pytest.mark.docker
async def test_numerical_code_and_headless_charts_work(
    data_image: str, make_docker: DockerFactory, tmp_path: Path
) -> None:
    code = (
        "import numpy as np, scipy.linalg, pandas as pd, matplotlib\n"
        "import matplotlib.pyplot as plt\n"
        "a = np.array([[3.0, 1.0], [1.0, 2.0]])\n"
        "print(np.linalg.solve(a, [9.0, 8.0]).round(6).tolist())\n"  # LAPACK through numpy
        "print(round(float(scipy.linalg.det(a)), 6))\n"
        "frame = pd.DataFrame({'k': ['a', 'b', 'a'], 'v': [1, 2, 3]})\n"
        "print(frame.groupby('k').v.sum().tolist())\n"
        "print(matplotlib.get_backend())\n"
        "plt.plot([1, 2, 3]); plt.savefig('line.svg'); plt.savefig('line.png')\n"
    )
    async with make_docker(image=data_image) as executor, executor.session(tmp_path) as session:
        result = await session.run(CodeBlock(code, "python"), timeout=60)
    assert result.stdout == "[2.0, 3.0]\n5.0\n[4, 2]\nagg\n", result.stderr
    assert sorted(result.files) == ["line.png", "line.svg"]  # no font cache in the work dir
    assert (tmp_path / "line.svg").read_text().startswith("<?xml")


@pytest.mark.docker
async def test_concurrent_first_uses_build_the_image_once(docker_image: str) -> None:
    packages = ["python3-six"]
    tag = image_tag(packages)
    async with aiodocker.Docker() as docker:
        if tag in {t for image in await docker.images.list() for t in image["RepoTags"] or ()}:
            await docker.images.delete(tag, force=True)
    first: list[str] = []
    second: list[str] = []
    tags: list[str] = []

    async def build(lines: list[str]) -> None:
        tags.append(await build_image(packages, progress=lines.append))

    async with anyio.create_task_group() as group:
        group.start_soon(build, first)
        group.start_soon(build, second)

    assert tags == [tag, tag]
    builders = [lines for lines in (first, second) if any("building" in ln for ln in lines)]
    waiters = [lines for lines in (first, second) if lines not in builders]
    assert len(builders) == 1
    assert "moot-smoke: ok python3-six six" in builders[0]
    assert waiters[0] == [
        "waiting for another build of the same image to finish",
        f"image {tag} exists (another build made it)",
    ]


def test_cli_refuses_an_unknown_profile_and_a_bad_name() -> None:
    for args, wanted in (
        (["--profile", "nope"], "unknown profile 'nope'"),
        (["--with", "Bad"], "not a Debian package name"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "moot.cli", "image", "build", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert wanted in done.stderr


def test_image_errors_share_one_base() -> None:
    assert issubclass(PackageNameError, ImageError)
    assert issubclass(SmokeImportError, ImageError)


@pytest.mark.docker
def test_without_host_package_lists_a_simulated_build_finds_unknown_names() -> None:
    unknown = _unknown_by_simulation(["python3-six", "python3-no-such-thing-moot"])
    assert unknown == ["python3-no-such-thing-moot"]
