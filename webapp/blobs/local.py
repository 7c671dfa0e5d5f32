"""The blob store on a local (or mounted) filesystem: the default, in the data dir.

Layout: ``root/blobs/ab/cd/<sha256>``, temporary files under ``root/tmp``. Writes are
atomic and durable: temporary file in the same filesystem → fsync → ``os.replace`` →
fsync of the directory. A blob's write time is its file's modification time, which every
``put`` sets (also a ``put`` of bytes already stored), so it means "last written or
confirmed by an upload", not "last touched by some tool".

Garbage collection is safe against concurrent uploads: ``delete`` first renames the blob
out of the way (atomic), then looks at the write time of what it moved; a ``put`` that
refreshed it meanwhile wins and the blob is put back, and a ``put`` that comes after the
rename finds no file and writes a new one.

A read-only data directory is usable: the constructor and the temporary-file sweep
tolerate it, and reads work.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from webapp.blobs import (
    BlobInfo,
    BlobUnavailable,
    StorageFull,
    StoredBlob,
    StoreReadOnly,
    StoreUnavailable,
    is_blob_key,
)

log = logging.getLogger(__name__)

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_parents(final: Path) -> None:
    """Create the directories of ``final`` (``blobs`` and its two fan-out levels) if
    missing, each one's entry made durable in its parent (a blob whose directory is lost
    on a crash is lost too)."""
    for directory in (final.parent.parent.parent, final.parent.parent, final.parent):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        _fsync_dir(directory.parent)


class LocalBlobStore:
    """Blobs under ``root/blobs``, temporary files (and blobs being deleted) under
    ``root/tmp``."""

    def __init__(self, root: str | Path) -> None:
        self._root = Path(root)
        self._blobs = self._root / "blobs"
        self._tmp = self._root / "tmp"
        try:
            self._blobs.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # A read-only (or full) data directory still serves what it holds; writes
            # fail later, one by one, with a clear answer.
            log.warning("blob store %s not writable: %s", self._root, exc)

    @property
    def location(self) -> str:
        """The store's directory."""
        return str(self._root)

    def _path(self, key: str) -> Path:
        if not is_blob_key(key):
            raise ValueError("blob keys are sha256 hex digests")
        return self._blobs / key[:2] / key[2:4] / key

    def fault(self, exc: OSError) -> Exception:
        """The store error (``StorageFull``, ``StoreReadOnly``, ``StoreUnavailable``) for
        an ``OSError`` of a write to this store's directory."""
        return self._fault(exc)

    def _fault(self, exc: OSError) -> Exception:
        """The store error for an ``OSError`` of a write."""
        reason = exc.strerror or str(exc)
        if exc.errno in _FULL_ERRNOS:
            return StorageFull(self.location, reason)
        if exc.errno in _READ_ONLY_ERRNOS:
            return StoreReadOnly(self.location, reason)
        return StoreUnavailable(self.location, reason)

    def put(self, data: bytes) -> StoredBlob:
        """Store ``data`` durably; see ``BlobStore.put``."""
        key = hashlib.sha256(data).hexdigest()
        blob = StoredBlob(key, hashlib.sha1(data).hexdigest(), len(data))
        final = self._path(key)
        try:
            # Refresh the write time first: a collection that already listed this blob as
            # old then keeps it (delete() looks at the time after moving it away).
            os.utime(final)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._fault(exc) from exc
        else:
            if self._intact(key):
                return blob
        tmp = self._tmp / f"{key}.{secrets.token_hex(8)}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _make_parents(final)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            raise self._fault(exc) from exc
        finally:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only disk created no file; nothing to remove
        return blob

    @property
    def spool_directory(self) -> Path:
        """Where uploads are received (webapp/uploadspool.py): on the blobs' filesystem,
        so ``adopt`` can link them into place; swept like every temporary file."""
        return self._tmp

    def adopt(self, spool: Path, blob: StoredBlob) -> StoredBlob:
        """Store the file ``spool`` (in ``spool_directory``, already ``fsync``-ed, holding
        the bytes ``blob`` describes, as hashed while they were written) as that blob.

        The file is linked into place, not copied, and keeps its own name (the caller
        removes it); a blob already stored under the key is replaced by it (same bytes,
        so a reader never sees a difference, and a damaged copy is healed), its write time
        refreshed. Durable when this returns (the directory is ``fsync``-ed), like ``put``.
        """
        final = self._path(blob.key)
        link = self._tmp / f"{blob.key}.{secrets.token_hex(8)}.tmp"
        try:
            os.link(spool, link)
            try:
                _make_parents(final)
                os.replace(link, final)
            finally:
                link.unlink(missing_ok=True)
            # The write time is this put's (the file's was that of its last byte): a
            # collection that listed the old blob keeps this one (see delete()).
            os.utime(final)
            _fsync_dir(final.parent)
        except OSError as exc:
            raise self._fault(exc) from exc
        return blob

    def get(self, key: str) -> bytes:
        """The verified bytes of blob ``key``; see ``BlobStore.get``."""
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobUnavailable(key, "missing") from exc
        except OSError as exc:
            raise BlobUnavailable(key, f"unreadable ({exc.strerror})") from exc
        if hashlib.sha256(data).hexdigest() != key:
            raise BlobUnavailable(key, f"damaged ({len(data)} bytes do not match the key)")
        return data

    def file_of(self, key: str) -> str | None:
        """The path of blob ``key``'s file; see ``BlobStore.file_of``."""
        return str(self._path(key))

    def _intact(self, key: str) -> bool:
        try:
            self.get(key)
        except BlobUnavailable as exc:
            log.warning("replacing stored blob: %s", exc)
            return False
        return True

    def exists(self, key: str) -> bool:
        """Whether blob ``key`` is stored."""
        return self._path(key).exists()

    def delete(self, key: str, *, unless_written_since: float | None = None) -> bool:
        """Remove blob ``key``; see ``BlobStore.delete``."""
        final = self._path(key)
        doomed = self._tmp / f"{key}.{secrets.token_hex(8)}.deleting"
        try:
            os.rename(final, doomed)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._fault(exc) from exc
        try:
            if unless_written_since is not None:
                if doomed.stat().st_mtime >= unless_written_since:
                    # An upload confirmed this blob after it was listed: put it back (a
                    # put that found no file meanwhile wrote the same bytes; either wins).
                    os.rename(doomed, final)
                    return False
            doomed.unlink()
        except FileNotFoundError:
            return False  # a sweep recovered it meanwhile (see _recover)
        except OSError as exc:
            raise self._fault(exc) from exc
        return True

    def _recover(self, doomed: Path) -> None:
        """A blob a collection moved aside and did not finish deleting (it crashed, or
        runs right now): put it back where it was, unless a put wrote it anew. Put back
        is the safe side: an orphan costs space until the next collection, a row
        without its blob costs an image."""
        key = doomed.name.split(".", 1)[0]
        if not is_blob_key(key):
            return
        final = self._path(key)
        if final.exists():
            doomed.unlink(missing_ok=True)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(doomed, final)

    def list(self) -> Iterator[BlobInfo]:
        """Every stored blob with its write time (file modification time, set by put)."""
        for path in self._blobs.glob("??/??/*"):
            if not is_blob_key(path.name):
                continue
            try:
                yield BlobInfo(path.name, path.stat().st_mtime)
            except FileNotFoundError:
                continue  # deleted meanwhile

    def sweep_partial(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files older than ``older_than_s`` seconds; the count."""
        cutoff = time.time() - older_than_s
        removed = 0
        try:
            entries = list(self._tmp.iterdir())
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.name.endswith(".deleting"):
                    self._recover(entry)
                elif entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot sweep %s: %s", self._tmp, exc)  # read-only disk
                break
        return removed

    def probe(self) -> None:
        """Create, write one block to and remove a file in the store; a full disk may
        still create an empty file, so a block is written."""
        if not self._blobs.is_dir():
            raise StoreUnavailable(self.location, f"{self._blobs} is not a directory")
        probe = self._tmp / f".healthz.{secrets.token_hex(6)}"
        try:
            try:
                with open(probe, "xb") as fh:
                    fh.write(b"\0" * 4096)
                    fh.flush()
            finally:
                probe.unlink(missing_ok=True)
        except OSError as exc:
            raise self._fault(exc) from exc
