"""Blob storage of originals: the interface every store implements, and its errors.

Blobs are content-addressed: the key of a blob is the SHA-256 hex digest of its bytes,
computed by us, never by a client (SHA-1 is only rokka's ``binary_hash``, and SHA-1
collisions are practical). Blobs are shared by all organizations (stored once); only the
catalog says who may read which.

The rules every implementation keeps (tests/webapp/test_blobstore_contract.py checks them
on each):

* ``put`` returns only once the bytes are durably stored, so callers commit the catalog
  row after it (a crash leaves at worst an orphan blob, never a row without its blob);
  every ``put``, also of bytes already stored, records a new write time;
* ``get`` hashes what it read: missing, unreadable or damaged bytes are never returned;
* ``list`` gives every blob with its write time (the time of its last ``put``), and
  ``delete`` may be told to keep a blob written since a given time, so garbage collection
  (webapp/gc.py) never removes a blob an upload has just written or confirmed;
* faults of the storage medium are ``StorageFull``, ``StoreReadOnly`` or
  ``StoreUnavailable``; only webapp/errors.py turns them into HTTP answers.

Implementations: ``LocalBlobStore`` (a directory; the default, in the data dir) and
``S3BlobStore`` (any S3-compatible object store), chosen by ``open_store``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

HEX = frozenset("0123456789abcdef")


def is_blob_key(key: str) -> bool:
    """Whether ``key`` has the shape of a blob key (64 lower-case hex characters)."""
    return len(key) == 64 and all(c in HEX for c in key)


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """What ``put`` learned while writing: storage key, rokka binary hash, size in bytes."""

    key: str
    sha1: str
    size: int


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """One stored blob as listed: its key and write time (seconds since the epoch, UTC;
    the time of its last ``put``, to the store's precision: 1 s on S3)."""

    key: str
    written_at: float


class BlobUnavailable(Exception):
    """A blob is missing, unreadable, or its bytes do not hash to its key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"blob {key}: {reason}")
        self.key = key
        self.reason = reason


class StoreUnavailable(Exception):
    """The store cannot be reached or does not answer as a store should (network,
    credentials, missing bucket, I/O error); ``reason`` says which, for the log."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"blob store {store} unavailable: {reason}")
        self.store = store
        self.reason = reason


class StoreReadOnly(StoreUnavailable):
    """The store serves reads but refuses writes (read-only disk, read-only credentials)."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(store, reason)
        self.args = (f"blob store {store} refuses writes: {reason}",)


class StorageFull(Exception):
    """The store has no room for a write (disk full, quota, bucket quota)."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"blob store {store} full: {reason}")
        self.store = store
        self.reason = reason


class BlobStore(Protocol):
    """Where originals live. Keys are ``is_blob_key`` strings; times are epoch seconds."""

    @property
    def location(self) -> str:
        """Where the store is, for messages (a directory or ``s3://bucket/prefix``)."""
        ...

    def put(self, data: bytes) -> StoredBlob:
        """Store ``data`` durably (confirmed by the medium) and record the write time;
        idempotent for identical bytes, and a damaged stored copy is replaced.

        Raises ``StorageFull``, ``StoreReadOnly`` or ``StoreUnavailable``; nothing
        partial is left visible under the key.
        """
        ...

    def get(self, key: str) -> bytes:
        """The bytes of blob ``key``, verified against the key.

        Raises ``BlobUnavailable`` (missing, unreadable, damaged) or ``StoreUnavailable``.
        """
        ...

    def exists(self, key: str) -> bool:
        """Whether blob ``key`` is stored (not verified). Raises ``StoreUnavailable``."""
        ...

    def file_of(self, key: str) -> str | None:
        """The path of blob ``key``'s file, for a process of this machine that reads it
        itself (a render process: the bytes then never pass through the web worker); the
        reader must verify them against the key as ``get`` does. None for a store whose
        blobs are no local files (S3). The file may be missing or damaged: not checked."""
        ...

    def delete(self, key: str, *, unless_written_since: float | None = None) -> bool:
        """Remove blob ``key``; True if this call removed it.

        With ``unless_written_since``, a blob whose write time is at or after it is kept
        (False): a ``put`` racing with garbage collection wins.
        """
        ...

    def list(self) -> Iterator[BlobInfo]:
        """Every stored blob with its write time, in no particular order."""
        ...

    def sweep_partial(self, older_than_s: float = 3600.0) -> int:
        """Remove leftovers of interrupted writes older than ``older_than_s`` seconds;
        the count removed (0 where the medium leaves none)."""
        ...

    def probe(self) -> None:
        """Check that the store answers (and, where cheap, takes writes); raises
        ``StoreUnavailable``, ``StoreReadOnly`` or ``StorageFull`` when it does not."""
        ...


def open_store(location: str, data_dir: str | Path) -> BlobStore:
    """The store at ``location`` (the ``blob_store`` setting): ``""`` for ``data_dir``, a
    directory path, or ``s3://bucket/prefix``. Touches the network only for checks the
    caller asks for (``probe``)."""
    if location.startswith("s3://"):
        from webapp.blobs.s3 import S3BlobStore

        bucket, prefix = parse_s3_location(location)
        return S3BlobStore(bucket, prefix)
    from webapp.blobs.local import LocalBlobStore

    return LocalBlobStore(location or data_dir)


def parse_s3_location(location: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` as ``("bucket", "some/prefix/")``; ``ValueError`` if it
    names no valid bucket (3-63 characters: lower-case letters, digits, ``.`` and ``-``)."""
    rest = location.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789.-")
    if not 3 <= len(bucket) <= 63 or not set(bucket) <= allowed or bucket[0] in ".-":
        raise ValueError(f"not an S3 bucket name: {bucket!r}")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def check_location(value: object) -> str:
    """The ``blob_store`` setting, validated: ``""``, a directory path or ``s3://...``."""
    text = str(value).strip()
    if text.startswith("s3://"):
        parse_s3_location(text)
    elif "://" in text:
        raise ValueError(f"unsupported blob store {text!r} (a directory or s3://bucket/prefix)")
    return text
