"""The blob store in an S3-compatible object store (AWS S3, MinIO, Ceph, R2, ...).

Configured as ``s3://bucket/prefix`` (the ``blob_store`` setting) and by the standard
AWS variables, read by boto3 itself: ``AWS_ENDPOINT_URL`` (for stores other than AWS),
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` (or
``AWS_DEFAULT_REGION``; ``us-east-1`` when neither is set). Blob ``k`` is the object
``prefix + k``; the bucket must exist (cropstack never creates or configures buckets).

Every ``put`` is a real PUT with ``Content-MD5`` (the store refuses bytes damaged on the
way), answered only once the store has stored the object durably; it also renews the
object's ``LastModified``, which is the blob's write time. ``get`` verifies the SHA-256
of what it read. ``delete(unless_written_since=...)`` looks at ``LastModified`` with a
HEAD right before the DELETE: S3 has no portable conditional delete, so a ``put``
may land between the two; ``cropstack gc`` settles that race in the catalog
(webapp/catalog/blobdeletions.py, docs/storage.md).

Errors: a full store (HTTP 507, MinIO's ``XMinioStorageFull``, Ceph's ``QuotaExceeded``)
is ``StorageFull``; ``AccessDenied`` on a write is ``StoreReadOnly``; anything else the
store or the network does wrong (refused connection, timeouts, 5xx after boto3's
retries, a missing bucket, bad credentials) is ``StoreUnavailable``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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

_FULL_CODES = frozenset(
    {"XMinioStorageFull", "XMinioAdminBucketQuotaExceeded", "QuotaExceeded", "InsufficientStorage"}
)
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled"})


def _client() -> Any:
    """An S3 client from the standard AWS variables, with short timeouts (a dead store
    is noticed in seconds, not minutes) and boto3's standard retries (3 attempts)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(
        region_name=region,
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        # Path-style requests work on every S3-compatible store; virtual hosts need DNS
        # for each bucket, which stores on a plain endpoint (MinIO, Ceph) often lack.
        s3={"addressing_style": "path" if os.environ.get("AWS_ENDPOINT_URL") else "auto"},
        # Newer boto3 adds CRC checksums that some S3-compatible stores refuse; integrity
        # is Content-MD5 on writes and our SHA-256 on reads.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", config=config)


class S3BlobStore:
    """Blobs as objects ``prefix + key`` in ``bucket``."""

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._s3 = client if client is not None else _client()

    @property
    def location(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self._bucket}/{self._prefix}".rstrip("/")

    def _name(self, key: str) -> str:
        if not is_blob_key(key):
            raise ValueError("blob keys are sha256 hex digests")
        return self._prefix + key

    def _fault(self, exc: Exception, *, writing: bool) -> Exception:
        """The store error for a boto3 exception."""
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            reason = f"{code or 'error'} (HTTP {status}): {error.get('Message', '')}".strip()
            if status == 507 or code in _FULL_CODES:
                return StorageFull(self.location, reason)
            if writing and code in _DENIED_CODES:
                return StoreReadOnly(self.location, reason)
            return StoreUnavailable(self.location, reason)
        return StoreUnavailable(self.location, str(exc))

    def put(self, data: bytes) -> StoredBlob:
        """Store ``data`` durably; see ``BlobStore.put``."""
        key = hashlib.sha256(data).hexdigest()
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self._name(key),
                Body=data,
                ContentMD5=md5,
                ContentType="application/octet-stream",
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._fault(exc, writing=True) from exc
        return StoredBlob(key, hashlib.sha1(data).hexdigest(), len(data))

    def file_of(self, key: str) -> str | None:
        """None: an object is no local file (``BlobStore.file_of``)."""
        return None

    def get(self, key: str) -> bytes:
        """The verified bytes of blob ``key``; see ``BlobStore.get``."""
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=self._name(key))
            data = response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise BlobUnavailable(key, "missing") from exc
            raise self._fault(exc, writing=False) from exc
        except BotoCoreError as exc:
            raise self._fault(exc, writing=False) from exc
        if hashlib.sha256(data).hexdigest() != key:
            raise BlobUnavailable(key, f"damaged ({len(data)} bytes do not match the key)")
        return data

    def _written_at(self, key: str) -> float | None:
        """The write time of blob ``key`` (HEAD, 1 s precision), None if it is missing."""
        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                return None
            raise self._fault(exc, writing=False) from exc
        except BotoCoreError as exc:
            raise self._fault(exc, writing=False) from exc
        return head["LastModified"].timestamp()

    def exists(self, key: str) -> bool:
        """Whether blob ``key`` is stored."""
        return self._written_at(key) is not None

    def delete(self, key: str, *, unless_written_since: float | None = None) -> bool:
        """Remove blob ``key``; see ``BlobStore.delete``."""
        written = self._written_at(key)
        if written is None:
            return False
        # LastModified from HEAD is whole seconds: a write in the same second as the
        # limit counts as after it (keeping a blob is the safe side).
        if unless_written_since is not None and written + 1 > unless_written_since:
            return False
        try:
            self._s3.delete_object(Bucket=self._bucket, Key=self._name(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._fault(exc, writing=True) from exc
        return True

    def list(self) -> Iterator[BlobInfo]:
        """Every stored blob under the prefix with its write time (``LastModified``)."""
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
                for item in page.get("Contents", []):
                    name = item["Key"][len(self._prefix) :]
                    if is_blob_key(name):
                        yield BlobInfo(name, item["LastModified"].timestamp())
        except (BotoCoreError, ClientError) as exc:
            raise self._fault(exc, writing=False) from exc

    def sweep_partial(self, older_than_s: float = 3600.0) -> int:
        """Nothing to sweep: a single PUT is stored whole or not at all."""
        return 0

    def probe(self) -> None:
        """List at most one object under the prefix: the store answers, the bucket exists
        and the credentials may read. Writes are not probed (each would be a billed PUT
        per health check); a refused write answers 503/507 when it happens."""
        try:
            self._s3.list_objects_v2(Bucket=self._bucket, Prefix=self._prefix, MaxKeys=1)
        except (BotoCoreError, ClientError) as exc:
            raise self._fault(exc, writing=False) from exc
