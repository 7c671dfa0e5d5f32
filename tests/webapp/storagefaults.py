"""Real storage faults for tests: a small tmpfs (disk full) and a read-only bind mount.

Mounting needs root with CAP_SYS_ADMIN. Where it is not permitted (a container without
it), or when ``CROPSTACK_TEST_NO_MOUNT=1`` asks to exercise that path, the same faults
are injected at the storage layer instead, raising what the kernel and SQLite raise:

* files: ``open`` in ``webapp.blobs.local``, ``webapp.rendercache`` and the health probe;
  a write to a full disk fails with ENOSPC (the file was created), on a read-only disk
  the open fails with EROFS;
* SQLite: a read-only disk is ``PRAGMA query_only`` (SQLITE_READONLY, as SQLite says);
  a full disk fails at COMMIT with SQLITE_FULL after rolling back, as measured on a full
  tmpfs (the INSERT succeeds in the page cache, the WAL append at COMMIT does not).

Mounts are always undone, also when the test fails (lazily if something still holds
them).
"""

from __future__ import annotations

import builtins
import errno
import functools
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import webapp.blobs.local
import webapp.catalog.sqlite
import webapp.rendercache
import webapp.routes.service

_OPEN_USERS = (webapp.blobs.local, webapp.rendercache, webapp.routes.service)


@functools.cache
def can_mount() -> bool:
    """Whether this process may mount a tmpfs (checked once, by trying)."""
    if os.environ.get("CROPSTACK_TEST_NO_MOUNT") == "1":
        return False
    probe = Path(tempfile.mkdtemp(prefix="cropstack-mount-"))
    try:
        mounted = _run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
        if mounted:
            _umount(probe)
        return mounted
    finally:
        probe.rmdir()


def _run(*argv: str) -> bool:
    try:
        result = subprocess.run(argv, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _umount(path: Path) -> None:
    if not _run("umount", str(path)):
        _run("umount", "-l", str(path))  # still busy: detach now, free when released


@contextmanager
def tmpfs(path: Path, size_bytes: int) -> Iterator[None]:
    """A tmpfs of ``size_bytes`` mounted on ``path`` (created) for the block."""
    path.mkdir(parents=True, exist_ok=True)
    if not _run("mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)):
        raise RuntimeError(f"cannot mount a tmpfs on {path}")
    try:
        yield
    finally:
        _umount(path)


@contextmanager
def read_only_mount(path: Path) -> Iterator[None]:
    """``path`` bind-mounted read-only onto itself for the block."""
    if not _run("mount", "--bind", str(path), str(path)):
        raise RuntimeError(f"cannot bind-mount {path}")
    try:
        if not _run("mount", "-o", "remount,ro,bind", str(path)):
            raise RuntimeError(f"cannot remount {path} read-only")
        yield
    finally:
        _umount(path)


def fill(directory: Path) -> Path:
    """Write a new filler file in ``directory`` until its filesystem is full; its path."""
    fd, name = tempfile.mkstemp(prefix="filler-", dir=directory)
    filler = Path(name)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    try:
        while True:  # the last partial block
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def truncate_wal(catalog_path: Path) -> None:
    """Checkpoint and truncate the catalog's WAL, so the next write must grow it (on a
    full disk, it cannot: otherwise a write may reuse WAL space and succeed)."""
    conn = sqlite3.connect(catalog_path)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "the WAL checkpoint was blocked by a reader"
    finally:
        conn.close()


class _FullFile:
    """A file whose writes fail with ENOSPC, as on a full disk (it was created)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, _data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _failing_open(error: int) -> Any:
    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if not any(flag in mode for flag in "wxa+"):
            return builtins.open(file, mode, *args, **kwargs)
        if error == errno.EROFS:
            raise OSError(error, os.strerror(error), str(file))
        return _FullFile(builtins.open(file, mode, *args, **kwargs))

    return fake_open


class _FullDiskConnection(sqlite3.Connection):
    """COMMIT fails with SQLITE_FULL after SQLite's own rollback, as on a full disk."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if sql.strip().upper() == "COMMIT":
            super().execute("ROLLBACK")
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorcode = 13  # type: ignore[attr-defined]
            exc.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
            raise exc
        return super().execute(sql, *args)


def inject_disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file write and catalog commit of the app fails as on a full disk."""
    for module in _OPEN_USERS:
        monkeypatch.setattr(module, "open", _failing_open(errno.ENOSPC), raising=False)

    def connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(
            path,
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
            factory=_FullDiskConnection,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    monkeypatch.setattr(webapp.catalog.sqlite, "_connect", connect)


def inject_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file write and catalog write of the app fails as on a read-only disk."""
    for module in _OPEN_USERS:
        monkeypatch.setattr(module, "open", _failing_open(errno.EROFS), raising=False)
    real_connect = webapp.catalog.sqlite._connect

    def connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
        conn = real_connect(path, busy_timeout_ms)
        conn.execute("PRAGMA query_only=ON")
        return conn

    monkeypatch.setattr(webapp.catalog.sqlite, "_connect", connect)
