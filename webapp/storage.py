"""Content-addressed blob storage on the local filesystem.

Blobs are keyed by the SHA-256 of their bytes (SHA-1 is only rokka's ``binary_hash``,
and SHA-1 collisions are practical). Writes are atomic and durable: temporary file in the
same filesystem → fsync → ``os.replace`` → fsync of the directory. Callers commit the
catalog row only after ``put`` returns, so a crash leaves at worst an orphan blob, never a
row without its blob. Blobs are shared by all organizations (stored once) but only the
catalog says who may read which; deleting a row never deletes a blob directly: ``gc``
removes blobs no row references, after a grace period.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """What ``put`` learned while writing: storage key, rokka binary hash, size in bytes."""

    key: str
    sha1: str
    size: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Blobs under ``root/blobs/ab/cd/<sha256>``, temporary files under ``root/tmp``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Where the blob ``key`` (64 hex chars, computed by us, never by a client) lives."""
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError("blob keys are sha256 hex digests")
        return self.blobs / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> StoredBlob:
        """Store ``data`` durably; idempotent for identical bytes."""
        key = hashlib.sha256(data).hexdigest()
        sha1 = hashlib.sha1(data).hexdigest()
        final = self.path(key)
        if final.exists():
            return StoredBlob(key, sha1, len(data))
        tmp = self.tmp / f"{key}.{secrets.token_hex(8)}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredBlob(key, sha1, len(data))

    def get(self, key: str) -> bytes:
        """The bytes of blob ``key``; ``FileNotFoundError`` if it is missing."""
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        """Whether blob ``key`` is stored."""
        return self.path(key).exists()

    def sweep_tmp(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files older than ``older_than_s`` seconds; returns the count."""
        cutoff = time.time() - older_than_s
        removed = 0
        for entry in self.tmp.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def keys(self) -> Iterable[str]:
        """Every stored blob key."""
        for path in self.blobs.glob("??/??/*"):
            yield path.name

    def gc(self, referenced: Callable[[str], bool], *, grace_s: float = 86400.0) -> int:
        """Delete blobs for which ``referenced(key)`` is False and older than ``grace_s``.

        The grace period protects uploads that wrote their blob but not yet their row.
        Returns the number of blobs removed.
        """
        cutoff = time.time() - grace_s
        removed = 0
        for key in list(self.keys()):
            path = self.path(key)
            try:
                if path.stat().st_mtime >= cutoff or referenced(key):
                    continue
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
        return removed
