"""Writing a run's files back on the host, without Docker: never through a symlink, never into a
FIFO, names exactly as given, and not past the deadline; everything left out is counted."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from moot.executors._files import write_incoming
from moot.executors._runner import NotCopied

if TYPE_CHECKING:
    from pathlib import Path


def test_symlinks_fifos_and_bad_paths_in_the_host_work_dir_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (work / "dir-link").symlink_to(outside, target_is_directory=True)
    (work / "file-link").symlink_to(outside / "f.txt")
    os.mkfifo(work / "pipe")
    items = [
        ("dir-link/new/x.txt", b"escaped"),
        ("file-link", b"escaped"),
        ("pipe", b"blocked"),
        ("../up.txt", b"escaped"),
        ("a//b", b"odd"),
        (" kept.txt", b"spaces"),
        ("sub/ok.txt", b"fine"),
    ]
    not_copied = NotCopied()
    synced: dict[str, tuple[int, int]] = {}
    written = write_incoming(work, items, synced, not_copied=not_copied)
    assert written == [" kept.txt", "sub/ok.txt"]
    assert sorted(synced) == [" kept.txt", "sub/ok.txt"]
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "up.txt").exists()
    assert (work / " kept.txt").read_bytes() == b"spaces"
    assert not_copied.counts == {"refused": 5}
    assert "5 changed files were not copied back" in not_copied.note()


def test_writing_back_stops_at_the_deadline_and_reports_the_rest(tmp_path: Path) -> None:
    not_copied = NotCopied()
    items = [(f"f{i}", b"x") for i in range(20)]
    written = write_incoming(
        tmp_path, items, {}, deadline=time.monotonic() - 1, not_copied=not_copied
    )
    assert written == []
    assert not_copied.counts == {"deadline": 20}
    assert not_copied.examples["deadline"] == ["f0", "f1", "f2", "f3", "f4"]
    assert os.listdir(tmp_path) == []


def test_the_runners_count_survives_the_wire() -> None:
    sent = NotCopied()
    sent.add("over_count", [f"f{i}" for i in range(7)], count=2000)
    sent.scan_incomplete = True
    received = NotCopied.from_wire(sent.to_wire())
    assert received.total == 2000
    assert received.scan_incomplete
    assert "more may be left" in received.note()
    assert NotCopied.from_wire(None).note() == ""
