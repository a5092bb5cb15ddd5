"""The sandbox image: a recipe-hash tag, a cached build that is one inspect, and the CLI."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from moot.executors import ImageError, build_image, image_tag
from moot.executors._image import EXCLUDES, IMAGE_REPOSITORY

if TYPE_CHECKING:
    import aiodocker


def test_tag_is_a_stable_hash_of_the_recipe() -> None:
    base = image_tag()
    assert base.startswith(f"{IMAGE_REPOSITORY}:")
    assert image_tag() == base
    pandas = image_tag(["python3-pandas", "python3-matplotlib"])
    assert pandas != base
    assert image_tag(["python3-matplotlib", "python3-pandas"]) == pandas
    assert "/usr/share/doc/*" in EXCLUDES


@pytest.mark.docker
async def test_existing_image_is_reused_after_one_inspect(docker_image: str) -> None:
    lines: list[str] = []
    tag = await build_image(if_missing=True, progress=lines.append)
    assert tag == docker_image == image_tag()
    assert lines == [f"image {tag} exists"]


@pytest.mark.docker
def test_cli_prints_the_tag(docker_image: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "moot.cli", "image", "build"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == docker_image


@pytest.mark.docker
async def test_image_is_small(docker_image: str, docker: aiodocker.Docker) -> None:
    info = await docker.images.inspect(docker_image)
    assert info["Size"] <= 70 * 1000 * 1000
    assert info["Config"]["Labels"]["moot.sandbox"] == "1"


@pytest.mark.parametrize("bad", ["rm -rf", "-rf", "Python3", "x", "pkg;ls", ""])
def test_extra_packages_must_be_debian_package_names(bad: str) -> None:
    with pytest.raises(ImageError, match="not a Debian package name"):
        image_tag([bad])
