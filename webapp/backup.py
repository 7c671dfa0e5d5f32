"""``cropstack backup`` and ``cropstack restore``: a consistent copy of a data directory,
taken while the server runs, and its way back into an empty data directory.

A backup is itself a data directory (``catalog.db`` and ``blobs/``), so it can be
inspected or served as it is. The order makes it consistent without stopping anything:

1. the catalog is copied with SQLite's online backup API: one snapshot, taken under a
   read transaction (in WAL mode writers go on meanwhile);
2. then the blobs. An upload writes its blob durably *before* its row commits, so every
   row of the snapshot already has its blob on disk; blobs are immutable and named by
   their SHA-256, so copying one that arrived after the snapshot is harmless (an
   unreferenced blob, which ``cropstack gc`` removes in time).

Every blob is hashed while it is copied and must match its name; every blob the catalog
references must be in the copy. Damaged or missing blobs are reported (and the command
fails), never silently carried over. The render cache, temporary files and metrics are
not copied: they are rebuilt. ``restore`` checks the backup the same way (catalog
``integrity_check``, every referenced blob present and intact) and copies it into a data
directory that has no catalog yet.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from webapp.datadir import CATALOG_FILE

_CHUNK = 1 << 20


class BackupError(Exception):
    """The backup or restore cannot be made; the message says why."""


@dataclass
class CopyReport:
    """Blobs copied, their bytes, and the blobs missing or damaged (names only)."""

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


def _copy_blob(source: Path, target: Path) -> int | None:
    """Copy one blob, hashing it on the way; its size, or None when its bytes do not hash
    to its name (the partial copy is removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as reader, open(partial, "wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    if digest.hexdigest() != source.name:
        partial.unlink()
        return None
    os.replace(partial, target)
    return size


def _referenced(catalog: Path) -> set[str]:
    conn = sqlite3.connect(catalog)
    try:
        return {row[0] for row in conn.execute("SELECT DISTINCT blob_key FROM sourceimages")}
    finally:
        conn.close()


def _copy_blobs(source_root: Path, target_root: Path, referenced: set[str]) -> CopyReport:
    report = CopyReport()
    source_blobs = source_root / "blobs"
    for path in sorted(source_blobs.glob("??/??/*")):
        if len(path.name) != 64 or path.name.endswith(".partial"):
            continue
        try:
            size = _copy_blob(path, target_root / "blobs" / path.relative_to(source_blobs))
        except FileNotFoundError:
            continue  # removed by gc meanwhile: then no snapshot row needs it
        if size is None:
            report.damaged.append(path.name)
        else:
            report.blobs += 1
            report.bytes += size
    present = {p.name for p in (target_root / "blobs").glob("??/??/*")}
    report.missing = sorted(referenced - present - set(report.damaged))
    return report


def backup(data_dir: Path, target: Path) -> CopyReport:
    """Back up ``data_dir`` into the empty (or new) directory ``target``."""
    catalog = data_dir / CATALOG_FILE
    if not catalog.is_file():
        raise BackupError(f"{os.path.abspath(data_dir)} has no {CATALOG_FILE}")
    _empty_target(target, "backup")
    _snapshot_catalog(catalog, target / CATALOG_FILE)
    (target / "blobs").mkdir(exist_ok=True)
    return _copy_blobs(data_dir, target, _referenced(target / CATALOG_FILE))


def restore(backup_dir: Path, data_dir: Path) -> CopyReport:
    """Check the backup in ``backup_dir`` and copy it into ``data_dir``, which must hold no
    catalog (an empty or new directory)."""
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
    (data_dir / "blobs").mkdir(exist_ok=True)
    return _copy_blobs(backup_dir, data_dir, _referenced(catalog))
