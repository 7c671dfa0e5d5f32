"""``cropstack backup`` and ``cropstack restore``: a consistent copy of a data directory
and its blob store, taken while the server runs, and its way back.

A backup is itself a data directory (``catalog.db`` and a local ``blobs/``), so it can be
inspected or served as it is. The order makes it consistent without stopping anything:

1. the catalog is copied with SQLite's online backup API: one snapshot, taken under a
   read transaction (in WAL mode writers go on meanwhile);
2. then the blobs, from whatever store the ``blob_store`` setting names (the data
   directory, another directory, S3), through the blob store interface. An upload stores
   its blob durably *before* its row commits, so every row of the snapshot already has
   its blob; blobs are immutable and named by their SHA-256, so copying one that arrived
   after the snapshot is harmless (an unreferenced blob, which ``cropstack gc`` removes).

Every blob is read verified (``BlobStore.get`` checks the bytes against the key) and every
blob the catalog references must be in the copy: damaged or missing blobs are reported
(and the command fails), never silently carried over. The render cache, temporary files
and metrics are not copied: they are rebuilt. ``restore`` checks the backup the same way
(catalog ``integrity_check``, every referenced blob present and intact) and copies it
into a data directory that has no catalog yet, and its blobs into the store the
``blob_store`` setting names there.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from webapp.blobs import BlobStore, BlobUnavailable
from webapp.blobs.local import LocalBlobStore
from webapp.datadir import CATALOG_FILE


class BackupError(Exception):
    """The backup or restore cannot be made; the message says why."""


@dataclass
class CopyReport:
    """Blobs copied, their bytes, and the blobs missing or damaged (keys only)."""

    blobs: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the operator."""
        return (
            f"catalog and {self.blobs} blobs ({self.bytes / 1e6:.1f} MB) copied; "
            f"{len(self.missing)} missing, {len(self.damaged)} damaged"
        )


def _empty_target(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupError(f"{os.path.abspath(path)} is not empty; {what} needs an empty directory")
    path.mkdir(parents=True, exist_ok=True)


def _snapshot_catalog(source: Path, target: Path) -> None:
    """Copy the catalog at ``source`` to ``target`` with SQLite's online backup API."""
    src = sqlite3.connect(source, timeout=30)  # only read; a plain open works on WAL
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            # A single file: no -wal or -shm next to the copy.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def _referenced(catalog: Path) -> set[str]:
    conn = sqlite3.connect(catalog)
    try:
        return {row[0] for row in conn.execute("SELECT DISTINCT blob_key FROM sourceimages")}
    finally:
        conn.close()


def _copy_blobs(source: BlobStore, target: BlobStore, referenced: set[str]) -> CopyReport:
    """Copy every blob of ``source`` into ``target``, each read verified."""
    report = CopyReport()
    for info in sorted(source.list(), key=lambda blob: blob.key):
        try:
            data = source.get(info.key)
        except BlobUnavailable as exc:
            if exc.reason != "missing":  # a missing one was removed by gc meanwhile
                report.damaged.append(info.key)
            continue
        target.put(data)
        report.blobs += 1
        report.bytes += len(data)
    damaged = set(report.damaged)
    report.missing = sorted(k for k in referenced - damaged if not target.exists(k))
    return report


def backup(data_dir: Path, store: BlobStore, target: Path) -> CopyReport:
    """Back up ``data_dir``'s catalog and the blobs of ``store`` into the empty (or new)
    directory ``target``."""
    catalog = data_dir / CATALOG_FILE
    if not catalog.is_file():
        raise BackupError(f"{os.path.abspath(data_dir)} has no {CATALOG_FILE}")
    _empty_target(target, "backup")
    _snapshot_catalog(catalog, target / CATALOG_FILE)
    copy = LocalBlobStore(target)
    return _copy_blobs(store, copy, _referenced(target / CATALOG_FILE))


def restore(
    backup_dir: Path, data_dir: Path, store_of: Callable[[Path], BlobStore]
) -> CopyReport:
    """Check the backup in ``backup_dir`` and copy it into ``data_dir``, which must hold no
    catalog (an empty or new directory); blobs go to ``store_of(data_dir)``."""
    catalog = backup_dir / CATALOG_FILE
    if not catalog.is_file():
        raise BackupError(f"{os.path.abspath(backup_dir)} is not a backup (no {CATALOG_FILE})")
    conn = sqlite3.connect(catalog)
    try:
        (verdict,) = conn.execute("PRAGMA integrity_check").fetchone()
    finally:
        conn.close()
    if verdict != "ok":
        raise BackupError(f"the backup's catalog is damaged: {verdict}")
    _empty_target(data_dir, "restore")
    _snapshot_catalog(catalog, data_dir / CATALOG_FILE)
    return _copy_blobs(LocalBlobStore(backup_dir), store_of(data_dir), _referenced(catalog))
