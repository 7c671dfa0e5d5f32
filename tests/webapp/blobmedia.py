"""What happens to a blob store's medium behind its back, for tests: damage (bit rot, a
truncated copy), loss, and a medium that is full, read-only or gone away.

Damage and loss are done the way they happen, on the medium itself, not through the
store: a file under the local store's directory (found by its name, the key), an object
in the S3 bucket (written with a boto3 client of its own). The faults are what the medium
reports: on local disk ENOSPC or EROFS from ``open`` (a full or read-only disk) and a
removed directory (an unmounted disk); on S3 the fault proxy of tests/s3server.py
(MinIO's 507 ``XMinioStorageFull``, 403 ``AccessDenied``, connections closed unanswered).
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import boto3
import pytest

import webapp.blobs.local
from tests.s3server import FaultProxy
from tests.webapp.storagefaults import _failing_open
from webapp.blobs import BlobStore, parse_s3_location
from webapp.blobs.local import LocalBlobStore


def _local_file(store: LocalBlobStore, key: str) -> Path:
    (path,) = Path(store.location).rglob(key)
    return path


def _s3_object(store: BlobStore, key: str) -> tuple[object, str, str]:
    bucket, prefix = parse_s3_location(store.location)
    return boto3.session.Session().client("s3"), bucket, prefix + key


def overwrite(store: BlobStore, key: str, data: bytes) -> None:
    """Replace the stored bytes of blob ``key`` with ``data`` on the medium."""
    if isinstance(store, LocalBlobStore):
        _local_file(store, key).write_bytes(data)
        return
    client, bucket, name = _s3_object(store, key)
    client.put_object(Bucket=bucket, Key=name, Body=data)  # type: ignore[attr-defined]


def lose(store: BlobStore, key: str) -> None:
    """Remove blob ``key`` from the medium."""
    if isinstance(store, LocalBlobStore):
        _local_file(store, key).unlink()
        return
    client, bucket, name = _s3_object(store, key)
    client.delete_object(Bucket=bucket, Key=name)  # type: ignore[attr-defined]


class Medium:
    """Switches the medium of one store between working, full, read-only and gone away.

    For S3 the store must have been opened while ``AWS_ENDPOINT_URL`` pointed at
    ``proxy``. On local disk the faults are patches of the local store's module, undone
    by ``healthy()``.
    """

    def __init__(
        self,
        kind: str,
        *,
        root: Path | None = None,
        proxy: FaultProxy | None = None,
    ) -> None:
        self.kind = kind
        # Its own patches, so healthy() undoes exactly the faults it made.
        self._monkeypatch = pytest.MonkeyPatch()
        self._root = root
        self._proxy = proxy
        self._moved: Path | None = None

    def full(self) -> None:
        """Every write of the store fails for lack of space from now on."""
        if self._proxy is not None:
            self._proxy.mode = "full"
        else:
            full_open = _failing_open(errno.ENOSPC)
            self._monkeypatch.setattr(webapp.blobs.local, "open", full_open, raising=False)

    def read_only(self) -> None:
        """Every write of the store is refused from now on (read-only disk or credentials)."""
        if self._proxy is not None:
            self._proxy.mode = "read_only"
        else:
            denied = _failing_open(errno.EROFS)
            self._monkeypatch.setattr(webapp.blobs.local, "open", denied, raising=False)

            def no_utime(path: object, *_args: object, **_kwargs: object) -> None:
                raise OSError(errno.EROFS, "Read-only file system", str(path))

            self._monkeypatch.setattr(webapp.blobs.local.os, "utime", no_utime)

    def gone(self) -> None:
        """The store cannot be reached from now on (S3) / its disk is unmounted (local)."""
        if self._proxy is not None:
            self._proxy.mode = "down"
        else:
            assert self._root is not None
            self._moved = self._root.with_name(self._root.name + ".away")
            shutil.move(self._root, self._moved)

    def healthy(self) -> None:
        """Back to normal."""
        if self._proxy is not None:
            self._proxy.mode = "ok"
        else:
            self._monkeypatch.undo()
            if self._moved is not None:
                assert self._root is not None
                shutil.move(self._moved, self._root)
                self._moved = None
