"""What happens to a blob store's medium behind its back, for tests: damage (bit rot, a
truncated copy), loss, a full medium and a medium gone away.

Damage and loss are done the way they happen, on the medium itself, not through the
store: a file under the local store's directory (found by its name, the key), an
object in the S3 bucket (written with a boto3 client of its own). Full and gone-away are
the faults the medium reports: on local disk ENOSPC from ``open`` (as on a full disk) and
a removed directory (an unmounted disk); on S3 the fault proxy of tests/s3server.py
(MinIO's 507 ``XMinioStorageFull``, connections closed without an answer).
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
    """Switches the medium of one store between working, full and gone away.

    For S3 the store must have been opened while ``AWS_ENDPOINT_URL`` pointed at
    ``proxy`` (``Medium.for_s3`` arranges it for stores opened after it).
    """

    def __init__(
        self,
        kind: str,
        monkeypatch: pytest.MonkeyPatch,
        *,
        root: Path | None = None,
        proxy: FaultProxy | None = None,
    ) -> None:
        self.kind = kind
        self._monkeypatch = monkeypatch
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
            self._monkeypatch.setattr(webapp.blobs.local, "open", open, raising=False)
            if self._moved is not None:
                assert self._root is not None
                shutil.move(self._moved, self._root)
                self._moved = None
