"""The work-file helpers the chat journal uses: a scan sees regular files only, and a restore
writes and deletes beneath the work dir without following a symlink or leaving the dir."""

from __future__ import annotations

from typing import TYPE_CHECKING

from moot.executors import read_work_file, restore_work_files, scan_work_dir

if TYPE_CHECKING:
    from pathlib import Path


def test_a_restore_writes_nested_files_and_deletes_the_ones_marked_none(tmp_path: Path) -> None:
    root = tmp_path / "work"
    (root / "old").mkdir(parents=True)
    (root / "old" / "gone.txt").write_bytes(b"bye")
    (root / "kept.txt").write_bytes(b"mine")

    refused = restore_work_files(root, {"data/a.csv": b"1,2\n", "old/gone.txt": None})

    assert refused == []
    assert sorted(scan_work_dir(root)) == ["data/a.csv", "kept.txt"]
    assert read_work_file(root, "data/a.csv") == b"1,2\n"


def test_a_restore_refuses_paths_that_leave_the_dir_or_pass_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "work"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)

    refused = restore_work_files(
        root, {"../escape.txt": b"x", "link/in.txt": b"x", "/abs.txt": b"x", "ok.txt": b"ok"}
    )

    assert sorted(refused) == ["../escape.txt", "/abs.txt", "link/in.txt"]
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()
    assert sorted(scan_work_dir(root)) == ["ok.txt"]  # the symlink is no work file
