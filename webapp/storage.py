"""Content-addressed blob storage on the local filesystem.

Blobs are keyed by the SHA-256 of their bytes (SHA-1 is only rokka's ``binary_hash``,
and SHA-1 collisions are practical). Writes are atomic and durable: temporary file in the
same filesystem → fsync → ``os.replace`` → fsync of the directory. Callers commit the
catalog row only after ``put`` returns, so a crash leaves at worst an orphan blob, never a
row without its blob. Blobs are shared by all organizations (stored once) but only the
catalog says who may read which; deleting a row never deletes a blob directly: ``gc``
removes blobs no row references, after a grace period.

Reads verify: ``get`` hashes the bytes it read and compares them with the key (SHA-256
runs at several hundred MB/s, a few ms for a typical original), so a truncated or damaged
blob is never served or rendered as if nothing were wrong. A read-only data directory is
usable: the constructor and the temporary-file sweep tolerate it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webapp.errors import ApiError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """What ``put`` learned while writing: storage key, rokka binary hash, size in bytes."""

    key: str
    sha1: str
    size: int


class BlobUnavailable(Exception):
    """A blob is missing, unreadable, or its bytes do not hash to its key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"blob {key}: {reason}")
        self.key = key
        self.reason = reason


class OriginalUnavailable(ApiError):
    """503: an image's original cannot be served (missing or damaged on disk).

    Not a 4xx (the request is fine) and not a 404 (the image exists and a re-upload or a
    restore from back-up brings it back); ``no-store`` keeps caches from keeping it.
    """

    def __init__(self, image_hash: str) -> None:
        super().__init__(
            503,
            f"Original of image {image_hash} is unavailable",
            headers={"Cache-Control": "no-store"},
        )


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
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # A read-only (or full) data directory still serves what it holds; writes
            # fail later, one by one, with a clear answer.
            log.warning("blob store %s not writable: %s", self.root, exc)

    def path(self, key: str) -> Path:
        """Where the blob ``key`` (64 hex chars, computed by us, never by a client) lives."""
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError("blob keys are sha256 hex digests")
        return self.blobs / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> StoredBlob:
        """Store ``data`` durably; idempotent for identical bytes.

        A stored blob that is damaged (its bytes no longer hash to its key) is replaced,
        so uploading the original again repairs it. On any error the temporary file is
        removed and the error raised (``OSError``: ENOSPC, EDQUOT, EROFS, ...).
        """
        key = hashlib.sha256(data).hexdigest()
        sha1 = hashlib.sha1(data).hexdigest()
        final = self.path(key)
        if final.exists() and self._intact(key):
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
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only disk created no file; nothing to remove
        return StoredBlob(key, sha1, len(data))

    def get(self, key: str) -> bytes:
        """The bytes of blob ``key``, verified; ``BlobUnavailable`` if missing, unreadable
        or damaged."""
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobUnavailable(key, "missing") from exc
        except OSError as exc:
            raise BlobUnavailable(key, f"unreadable ({exc.strerror})") from exc
        if hashlib.sha256(data).hexdigest() != key:
            raise BlobUnavailable(key, f"damaged ({len(data)} bytes do not match the key)")
        return data

    def _intact(self, key: str) -> bool:
        try:
            self.get(key)
        except BlobUnavailable as exc:
            log.warning("replacing stored blob: %s", exc)
            return False
        return True

    def exists(self, key: str) -> bool:
        """Whether blob ``key`` is stored."""
        return self.path(key).exists()

    def sweep_tmp(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files older than ``older_than_s`` seconds; returns the count."""
        cutoff = time.time() - older_than_s
        removed = 0
        try:
            entries = list(self.tmp.iterdir())
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot sweep %s: %s", self.tmp, exc)  # read-only disk
                break
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


def read_original(store: BlobStore, image: Mapping[str, Any]) -> bytes:
    """The verified original of catalog row ``image`` (keys ``hash``, ``blob_key``).

    A missing or damaged blob is logged at ERROR with the image hash (an operator must
    restore it) and answered ``OriginalUnavailable`` (503).
    """
    try:
        return store.get(image["blob_key"])
    except BlobUnavailable as exc:
        log.error(
            "original of image %s unavailable: blob %s %s",
            image["hash"],
            exc.key,
            exc.reason,
        )
        raise OriginalUnavailable(image["hash"]) from exc
