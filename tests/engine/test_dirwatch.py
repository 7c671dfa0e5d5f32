"""Waiting for a directory to change (engine/dirwatch.py): woken by a file renamed into
place or closed after writing, not by reads; bounded by the timeout; without inotify, the
fallback sleep."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from engine import dirwatch
from engine.dirwatch import DirectoryWatch


def _later(seconds: float, action) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def test_a_rename_into_the_directory_wakes_the_wait(tmp_path: Path) -> None:
    (tmp_path / ".tmp").write_bytes(b"x")
    with DirectoryWatch(str(tmp_path), 0.002) as watch:
        assert watch.watching
        _later(0.3, lambda: os.rename(tmp_path / ".tmp", tmp_path / "level.v"))
        started = time.monotonic()
        watch.wait(5.0)
        took = time.monotonic() - started
    assert (tmp_path / "level.v").exists()
    assert 0.25 < took < 4


def test_a_file_closed_after_writing_wakes_the_wait(tmp_path: Path) -> None:
    def rewrite() -> None:
        fd = os.open(tmp_path / "seen", os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(fd, b"slot", 0)
        os.close(fd)

    with DirectoryWatch(str(tmp_path), 0.002) as watch:
        _later(0.3, rewrite)
        started = time.monotonic()
        watch.wait(5.0)
        assert 0.25 < time.monotonic() - started < 4


def test_a_change_between_the_check_and_the_wait_is_not_missed(tmp_path: Path) -> None:
    with DirectoryWatch(str(tmp_path), 0.002) as watch:
        (tmp_path / "level.v").write_bytes(b"x")  # after the watch began, before the wait
        started = time.monotonic()
        watch.wait(5.0)
        assert time.monotonic() - started < 1
        # the events were drained: the next wait lasts its timeout
        started = time.monotonic()
        watch.wait(0.3)
        assert time.monotonic() - started >= 0.25


def test_reads_do_not_wake_the_wait(tmp_path: Path) -> None:
    # Waiters read the table of claims when woken: if a read woke the others, two waiters
    # would wake each other without end.
    (tmp_path / "seen").write_bytes(b"\0" * 64)

    def read() -> None:
        for _ in range(50):
            fd = os.open(tmp_path / "seen", os.O_RDONLY)
            os.pread(fd, 32, 0)
            os.close(fd)
            os.path.exists(tmp_path / "level.v")

    with DirectoryWatch(str(tmp_path), 0.002) as watch:
        _later(0.1, read)
        started = time.monotonic()
        watch.wait(0.5)
        assert time.monotonic() - started >= 0.45


def test_the_wait_sleeps_not_spins(tmp_path: Path) -> None:
    # the point of the watch: a thread waiting half a second is switched out a few times,
    # not every 2 ms as the polling it replaced (about 250 times)
    def switches() -> int:
        status = Path(f"/proc/self/task/{threading.get_native_id()}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("voluntary_ctxt_switches"))
        return int(line.split()[1])

    with DirectoryWatch(str(tmp_path), 0.002) as watch:
        before = switches()
        deadline = time.monotonic() + 0.5
        while (left := deadline - time.monotonic()) > 0:
            watch.wait(left)
        assert switches() - before < 50


def test_without_inotify_the_wait_is_the_fallback_sleep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dirwatch, "_LIBC", None)  # as on a system without inotify
    with DirectoryWatch(str(tmp_path), 0.05) as watch:
        assert not watch.watching
        started = time.monotonic()
        watch.wait(5.0)
        assert 0.04 < time.monotonic() - started < 1


def test_a_missing_directory_falls_back_to_sleeping(tmp_path: Path) -> None:
    with DirectoryWatch(str(tmp_path / "gone"), 0.05) as watch:
        assert not watch.watching
        started = time.monotonic()
        watch.wait(5.0)
        assert time.monotonic() - started < 1
