"""The report renders in headless Chromium: plots drawn (pixels, not markup), no console errors.

Chromium comes from Debian's `chromium` package; as root the fixture installs it when missing.
Under CI=true a missing Chromium is a failure, never a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from moot.bench import BenchConfig, run_bench, write_report

if TYPE_CHECKING:
    from pathlib import Path

PLOT_BLUE = (0x1F, 0x77, 0xB4)  # the first colour of the report's palette
CONSOLE = re.compile(r":CONSOLE[:(]\d+[)\]]*\]? ?(.*)")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary; installed from Debian when missing and we are root."""
    found = _find_chromium()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
        if subprocess.run(
            install, env=env, capture_output=True, check=False, timeout=900
        ).returncode:
            subprocess.run(
                ["apt-get", "update", "-qq"], env=env, capture_output=True, check=False, timeout=300
            )
            subprocess.run(install, env=env, capture_output=True, check=False, timeout=900)
        found = _find_chromium()
    if found is None:
        message = "Chromium is not installed: sudo apt-get install -y chromium"
        if _in_ci():
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return found


@dataclass(frozen=True, slots=True)
class Shot:
    width: int
    height: int
    pixels: list[tuple[int, int, int]]
    console: list[str]


def decode_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """RGB pixels of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat = 8, bytearray()
    width = height = depth = color = interlace = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert depth == 8, depth
    assert color in (2, 6), color
    assert interlace == 0
    channels = 3 if color == 2 else 4
    stride = width * channels
    raw = zlib.decompress(bytes(idat))
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for row in range(height):
        start = row * (stride + 1)
        filter_type = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if filter_type == 1:
                line[i] = (line[i] + left) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + up) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + predictor) & 0xFF
        pixels.extend((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels))
        previous = line
    return width, height, pixels


def screenshot(chromium: str, page: Path, tmp_path: Path, size: str = "1100,2600") -> Shot:
    png = tmp_path / f"{page.stem}.png"
    profile = tmp_path / f"profile-{page.stem}"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={png}",
            f"--window-size={size}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert png.is_file(), done.stderr[-2000:]
    width, height, pixels = decode_png(png.read_bytes())
    console = [m.group(1) for m in map(CONSOLE.search, done.stderr.splitlines()) if m]
    return Shot(width, height, pixels, console)


async def test_the_report_renders_its_plots_without_console_errors(
    chromium: str, tmp_path: Path
) -> None:
    results = await run_bench(
        BenchConfig(
            scenarios=("runtime", "chats"),
            concurrency=(1, 4),
            ops=8,
            warmup=1,
            turns=3,
            latency="const:0.001",
        )
    )
    page = write_report(results, tmp_path / "report.html")
    shot = screenshot(chromium, page, tmp_path)
    assert (shot.width, shot.height) == (1100, 2600)
    inked = sum(1 for p in shot.pixels if p != (255, 255, 255))
    blue = sum(1 for p in shot.pixels if p == PLOT_BLUE)
    assert inked > 0.03 * len(shot.pixels), f"only {inked} non-white pixels: a blank page?"
    assert blue > 2000, f"only {blue} pixels of plot blue: the plots did not render"
    assert shot.console == []


def test_the_checks_catch_a_blank_page_and_console_errors(chromium: str, tmp_path: Path) -> None:
    blank = tmp_path / "blank.html"
    blank.write_text(
        "<!DOCTYPE html><html><body><script>console.error('boom')</script></body></html>"
    )
    shot = screenshot(chromium, blank, tmp_path, size="300,200")
    assert all(p == (255, 255, 255) for p in shot.pixels)
    assert any("boom" in line for line in shot.console)
