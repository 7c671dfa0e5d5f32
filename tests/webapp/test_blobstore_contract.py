"""The blob store contract (webapp/blobs/__init__.py), checked on every implementation:
the local disk store and the S3 store against a real S3-compatible server on loopback
(moto_server, started by the session; tests/s3server.py).

Each test runs once per backend with the same assertions; the medium is damaged, filled
or taken away the way it happens (tests/webapp/blobmedia.py).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.s3server import FaultProxy
from tests.webapp.blobmedia import Medium, lose, overwrite
from webapp.blobs import (
    BlobStore,
    BlobUnavailable,
    StorageFull,
    StoreReadOnly,
    StoreUnavailable,
    open_store,
)
from webapp.gc import remove_unreferenced


@dataclass
class Backend:
    store: BlobStore
    medium: Medium


@pytest.fixture(params=["local", "s3"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    if request.param == "local":
        root = tmp_path / "store"
        medium = Medium("local", root=root)
        yield Backend(open_store(str(root), tmp_path), medium)
        medium.healthy()
        return
    endpoint = request.getfixturevalue("s3_server")
    location = request.getfixturevalue("s3_location")
    with FaultProxy(endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        store = open_store(location, tmp_path)
        yield Backend(store, Medium("s3", proxy=proxy))


def _keys(store: BlobStore) -> set[str]:
    return {info.key for info in store.list()}


def _next_second() -> None:
    """Wait until the wall clock is in a later second (S3 write times are whole seconds)."""
    time.sleep(1.05 - time.time() % 1)


def test_put_get_roundtrip_and_what_put_reports(backend: Backend):
    store = backend.store
    data = b"\x89PNG not really, but bytes" * 100
    blob = store.put(data)
    assert blob.key == hashlib.sha256(data).hexdigest()
    assert blob.sha1 == hashlib.sha1(data).hexdigest()
    assert blob.size == len(data)
    assert store.get(blob.key) == data
    assert store.exists(blob.key)
    assert _keys(store) == {blob.key}
    store.probe()  # a working store passes its own check


def test_put_is_idempotent_and_renews_the_write_time(backend: Backend):
    store = backend.store
    first = store.put(b"same bytes")
    (before,) = list(store.list())
    assert abs(before.written_at - time.time()) < 5  # the store's clock is the host's
    _next_second()
    _next_second()
    assert store.put(b"same bytes") == first
    (after,) = list(store.list())
    assert after.key == first.key
    assert after.written_at >= before.written_at + 1


def test_missing_blob(backend: Backend):
    store = backend.store
    key = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(key)
    with pytest.raises(BlobUnavailable) as caught:
        store.get(key)
    assert caught.value.reason == "missing"
    assert store.delete(key) is False


def test_damaged_blob_is_never_returned_and_put_repairs_it(backend: Backend):
    store = backend.store
    data = bytes(range(256)) * 64
    key = store.put(data).key
    overwrite(store, key, data[: len(data) // 2])
    with pytest.raises(BlobUnavailable) as caught:
        store.get(key)
    assert caught.value.reason.startswith("damaged")
    store.put(data)
    assert store.get(key) == data
    lose(store, key)
    with pytest.raises(BlobUnavailable, match="missing"):
        store.get(key)


def test_delete_and_conditional_delete(backend: Backend):
    store = backend.store
    kept, gone = store.put(b"kept"), store.put(b"gone")
    # Written after the limit: kept, and still whole.
    assert store.delete(kept.key, unless_written_since=time.time() - 60) is False
    assert store.get(kept.key) == b"kept"
    _next_second()
    assert store.delete(gone.key, unless_written_since=time.time()) is True
    assert not store.exists(gone.key)
    assert store.delete(gone.key) is False
    assert _keys(store) == {kept.key}
    assert store.delete(kept.key) is True
    assert _keys(store) == set()


def test_gc_removes_only_old_unreferenced_blobs(backend: Backend):
    store = backend.store
    needed, orphan = store.put(b"needed"), store.put(b"orphan")
    # Within the grace period nothing goes, whatever the catalog says.
    assert remove_unreferenced(store, lambda _key: False, grace_s=3600) == 0
    time.sleep(2)
    young = store.put(b"young")
    removed = remove_unreferenced(store, lambda key: key == needed.key, grace_s=1)
    assert removed == 1
    assert _keys(store) == {needed.key, young.key}
    assert store.get(needed.key) == b"needed" and not store.exists(orphan.key)


def test_gc_racing_an_upload_of_the_same_bytes_keeps_the_blob(backend: Backend):
    """An old orphan is confirmed by an upload after the collection listed it and before
    its row commits (``referenced`` still says no): the blob stays."""
    store = backend.store
    data = b"uploaded again while collected"
    key = store.put(data).key
    _next_second()
    _next_second()

    def referenced(asked: str) -> bool:
        if asked == key:
            store.put(data)  # another node's upload: blob confirmed, row not yet committed
        return False

    assert remove_unreferenced(store, referenced, grace_s=1) == 0
    assert store.get(key) == data


def test_full_store_refuses_writes_and_keeps_serving_reads(backend: Backend):
    store = backend.store
    old = store.put(b"stored before")
    backend.medium.full()
    with pytest.raises(StorageFull):
        store.put(b"no room for this")
    assert not store.exists(hashlib.sha256(b"no room for this").hexdigest())
    assert _keys(store) == {old.key}
    assert store.get(old.key) == b"stored before"
    assert store.sweep_partial(older_than_s=0) == 0  # nothing half-written left
    backend.medium.healthy()
    assert store.get(store.put(b"room again").key) == b"room again"


def test_read_only_store_refuses_writes_and_keeps_serving_reads(backend: Backend):
    store = backend.store
    old = store.put(b"stored before")
    backend.medium.read_only()
    for data in (b"new bytes", b"stored before"):  # also a confirming put of stored bytes
        with pytest.raises(StoreReadOnly):
            store.put(data)
    assert store.get(old.key) == b"stored before"
    assert _keys(store) == {old.key}
    backend.medium.healthy()
    assert store.get(store.put(b"new bytes").key) == b"new bytes"


def test_store_gone_away_is_unavailable_and_comes_back(backend: Backend):
    store = backend.store
    old = store.put(b"stored before")
    backend.medium.gone()
    with pytest.raises(StoreUnavailable) as probe:
        store.probe()
    assert not isinstance(probe.value, StoreReadOnly)
    with pytest.raises(StoreUnavailable):
        store.put(b"cannot go anywhere")
    with pytest.raises((StoreUnavailable, BlobUnavailable)):
        store.get(old.key)
    backend.medium.healthy()
    store.probe()
    assert store.get(old.key) == b"stored before"


def test_keys_are_checked(backend: Backend):
    for bad in ("../../etc/passwd", "A" * 64, "ab" * 31):
        with pytest.raises(ValueError):
            backend.store.get(bad)
