"""Copy files between the host's work dir and a sandbox: regular files only, no symlinks, capped."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ._base import safe_relative_path
from ._errors import UnsafePathError

if TYPE_CHECKING:
    from collections.abc import Iterable

log = structlog.get_logger("moot.executors.files")

MAX_FILES = 10_000


def scan(root: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime of each regular file under `root` (POSIX relative paths), symlinks skipped."""
    found: dict[str, tuple[int, int]] = {}
    stack = [root]
    while stack and len(found) < MAX_FILES:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode):
                rel = Path(entry.path).relative_to(root).as_posix()
                found[rel] = (info.st_size, info.st_mtime_ns)
    return found


def read_outgoing(
    root: Path, synced: dict[str, tuple[int, int]], limit: int
) -> list[dict[str, str]]:
    """Host work-dir files the sandbox has not seen yet, base64-encoded, within `limit` bytes.

    `synced` is updated to what the sandbox will hold once the request is delivered.
    """
    outgoing: list[dict[str, str]] = []
    budget = limit
    for rel, meta in sorted(scan(root).items()):
        if synced.get(rel) == meta:
            continue
        if meta[0] > budget:
            log.warning("files.skipped_large", path=rel, size=meta[0], budget=budget)
            continue
        try:
            data = _read_regular(root / rel)
        except OSError as exc:
            log.warning("files.unreadable", path=rel, error=str(exc))
            continue
        budget -= len(data)
        outgoing.append({"path": rel, "data": base64.b64encode(data).decode()})
        synced[rel] = meta
    return outgoing


def write_incoming(
    root: Path, items: Iterable[tuple[str, bytes]], synced: dict[str, tuple[int, int]]
) -> None:
    """Write files a run produced into the host work dir, refusing paths that leave it."""
    base = root.resolve()
    for rel, data in items:
        try:
            clean = safe_relative_path(rel)
            target = base / clean
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.parent.resolve().is_relative_to(base):
                raise UnsafePathError(f"Refusing {rel!r}: a symlink leads out.", path=rel)
            write_regular(target, data)
            info = target.stat()
            synced[clean] = (info.st_size, info.st_mtime_ns)
        except (UnsafePathError, OSError) as exc:
            log.warning("files.not_written", path=rel, error=str(exc))


def write_regular(path: Path, data: bytes) -> None:
    """Write bytes without following a symlink at the last component."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _read_regular(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
