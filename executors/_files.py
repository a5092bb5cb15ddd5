"""Copy files between the host's work dir and a sandbox: regular files only, no symlinks, capped."""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ._errors import UnsafePathError
from ._runner import NotCopied

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

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
    root: Path,
    items: Iterable[tuple[str, bytes]],
    synced: dict[str, tuple[int, int]],
    *,
    deadline: float = float("inf"),
    not_copied: NotCopied | None = None,
) -> list[str]:
    """Write files a run produced into the host work dir; the paths written.

    Paths are taken exactly (no stripping or rewriting), each directory is opened without
    following symlinks, and writing stops at `deadline` (`time.monotonic()`); every file left
    out is counted in `not_copied`.
    """
    skipped = not_copied if not_copied is not None else NotCopied()
    written: list[str] = []
    pending = list(items)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for index, (rel, data) in enumerate(pending):
            if time.monotonic() > deadline:
                skipped.add("deadline", [path for path, _ in pending[index:]])
                break
            try:
                info = _write_beneath(root_fd, _exact_parts(rel), data)
            except UnsafePathError as exc:
                log.warning("files.refused", path=rel, error=str(exc))
                skipped.add("refused", [rel])
                continue
            except OSError as exc:
                reason = "refused" if exc.errno in _NOT_A_PLAIN_PATH else "write_failed"
                log.warning("files.not_written", path=rel, error=str(exc))
                skipped.add(reason, [rel])
                continue
            synced[rel] = (info.st_size, info.st_mtime_ns)
            written.append(rel)
    finally:
        os.close(root_fd)
    return written


# What opening a symlink, a non-directory or a special file with O_NOFOLLOW answers.
_NOT_A_PLAIN_PATH = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO, errno.EMLINK})


def _exact_parts(rel: str) -> list[str]:
    """The components of a sandbox-relative path, taken exactly; refuse anything not plain."""
    parts = rel.split("/")
    if not rel or "\x00" in rel or any(part in {"", ".", ".."} for part in parts):
        raise UnsafePathError(f"Refusing the file path {rel!r} from the sandbox.", path=rel)
    return parts


def _write_beneath(root_fd: int, parts: list[str], data: bytes) -> os.stat_result:
    """Create `parts` under the directory `root_fd`, never following a symlink on the way."""
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        out = os.open(parts[-1], flags, 0o644, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        if not stat.S_ISREG(os.fstat(out).st_mode):
            raise OSError(errno.ENXIO, "not a regular file")
        os.ftruncate(out, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(out, view) :]
        return os.fstat(out)
    finally:
        os.close(out)


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


# -- a chat's work files, for the journal: scanned, read and restored on the host ---------------


def scan_work_dir(root: Path) -> dict[str, tuple[int, int]]:
    """Size and mtime (ns) of each regular file under `root`, by POSIX relative path; symlinks
    and special files are not work files."""
    return scan(root)


def read_work_file(root: Path, rel: str) -> bytes:
    """The bytes of one work file, refusing a symlink or a special file.

    Raises:
        OSError: it is gone, unreadable or not a regular file.
    """
    return _read_regular(root / rel)


def restore_work_files(root: Path, files: Mapping[str, bytes | None]) -> list[str]:
    """Write (or, for None, delete) work files under `root`, never following a symlink; the
    paths refused (not plain relative paths) are returned and logged, the rest is restored."""
    refused: list[str] = []
    root.mkdir(parents=True, exist_ok=True)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for rel, data in sorted(files.items()):
            try:
                parts = _exact_parts(rel)
                if data is None:
                    _unlink_beneath(root_fd, parts)
                else:
                    _write_beneath(root_fd, parts, data)
            except (UnsafePathError, OSError) as exc:
                log.warning("files.not_restored", path=rel, error=str(exc))
                refused.append(rel)
    finally:
        os.close(root_fd)
    return refused


def _unlink_beneath(root_fd: int, parts: list[str]) -> None:
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                return
            os.close(fd)
            fd = inner
        with contextlib.suppress(FileNotFoundError):
            os.unlink(parts[-1], dir_fd=fd)
    finally:
        os.close(fd)
