"""Storage faults are answered, not crashed (docs/operations.md "Faults").

* a full disk: writes answer 507 and leave nothing behind, renders are still served,
  ``/healthz`` answers 503 ``disk_full``; freeing space heals without a restart;
* a read-only data directory: the app (and a real ``cropstack serve``) starts on it,
  reads and cached renders work, writes answer 503, ``/healthz`` 503 ``read_only``;
* a missing or damaged original is never served or rendered: 503, logged at ERROR.

Disk full is a real 16 MiB tmpfs filled to the last block, read-only a real read-only
bind mount, when this process may mount (root with CAP_SYS_ADMIN); otherwise the same
errors are injected at the storage layer (tests/webapp/storagefaults.py). Both paths run
the same assertions; ``CROPSTACK_TEST_NO_MOUNT=1`` forces the injected one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Account
from tests.engine.conftest import decode, png, scene
from tests.realserver import running_server
from tests.webapp.blobmedia import lose, overwrite
from tests.webapp.catalogsql import reading
from tests.webapp.images import jpeg
from tests.webapp.storagefaults import (
    can_mount,
    fill,
    inject_disk_full,
    inject_read_only,
    read_only_mount,
    tmpfs,
    truncate_wal,
)
from webapp import create_app, keptdecodes
from webapp.catalog import SqliteBackend

MiB = 1024 * 1024


@dataclass
class Site:
    """An app on ``data`` with organization ``acme``, one image, a stack ``thumb`` and
    one cached render of it."""

    data: Path
    app: Flask
    client: FlaskClient
    account: Account
    original: bytes
    image: str
    cached_url: str
    cached: bytes

    @classmethod
    def build(cls, data: Path, **settings: Any) -> Site:
        # Signup on: the write probes include POST /users.
        # Everything in the data dir (originals too): these faults are the data dir's.
        app = create_app({"data_dir": str(data), "blob_store": "", "signup": True, **settings})
        client = app.test_client()
        account = Account(client, "acme", "admin@acme.example")
        original = png(scene(120, 90))
        image = _upload(account, original).get_json()["items"][0]["hash"]
        stack = {"operations": [{"name": "resize", "options": {"width": 30}}]}
        put = account.request("PUT", "/stacks/acme/thumb", data=json.dumps(stack))
        assert put.status_code == 201
        cached_url = f"/acme/thumb/{image}.png"
        cached = client.get(cached_url)
        assert cached.status_code == 200
        return cls(data, app, client, account, original, image, cached_url, cached.data)

    def reopen(self, **settings: Any) -> None:
        """A new app on the same data (as a restarted server), keeping the API key."""
        self.close()
        self.app = create_app(
            {"data_dir": str(self.data), "blob_store": "", "signup": True, **settings}
        )
        self.client = self.app.test_client()
        self.account.client = self.client

    def close(self) -> None:
        """Close the app's long-lived catalog connection (before unmounting)."""
        self.app.extensions["cropstack.catalog_anchor"].close()

    def rows(self) -> int:
        with reading(SqliteBackend(self.data / "catalog.db")) as db:
            return int(db.rows("SELECT count(*) AS n FROM sourceimages")[0]["n"])

    def blobs(self) -> set[str]:
        return {info.key for info in self.app.extensions["cropstack.blobs"].list()}

    def partial_writes(self) -> int:
        """Leftovers of interrupted blob writes (removed while counting)."""
        return self.app.extensions["cropstack.blobs"].sweep_partial(older_than_s=0)

    def cache_entries(self) -> int:
        root = self.data / "cache"
        return sum(1 for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def _upload(account: Account, data: bytes) -> Any:
    return account.request(
        "POST",
        f"/sourceimages/{account.org}",
        data={"filedata": (io.BytesIO(data), "new.png")},
        content_type="multipart/form-data",
    )


def _error(response: Any, status: int) -> str:
    """Assert the JSON error shape with ``status``; the message."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["error"]["code"] == status
    return body["error"]["message"]


def _writes(site: Site) -> dict[str, Any]:
    """One of each kind of write, answered."""
    account, image = site.account, site.image
    return {
        "upload": _upload(account, png(scene(64, 48, square=(10, 10, 8)))),
        "dynamic metadata": account.request(
            "PUT",
            f"/sourceimages/acme/{image}/meta/dynamic/subject_area",
            data=json.dumps({"x": 1, "y": 1, "width": 10, "height": 10}),
        ),
        "user metadata": account.request(
            "PUT", f"/sourceimages/acme/{image}/meta/user/title", data=json.dumps("a title")
        ),
        "stack": account.request(
            "PUT",
            "/stacks/acme/other",
            data=json.dumps({"operations": [{"name": "resize", "options": {"width": 9}}]}),
        ),
        "signup": site.client.post(
            "/users", data=json.dumps({"email": "b@globex.example", "organization": "globex"})
        ),
        "delete image": account.request("DELETE", f"/sourceimages/acme/{image}"),
    }


# -- a full disk -----------------------------------------------------------------------------


@dataclass
class FullDisk:
    site: Site
    make_full: Callable[[], None]
    make_free: Callable[[], None]


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FullDisk]:
    data = tmp_path / "data"
    with ExitStack() as cleanup:
        if can_mount():
            cleanup.enter_context(tmpfs(data, 16 * MiB))
        site = Site.build(data, health_min_free_bytes=MiB)
        cleanup.callback(site.close)
        fillers: list[Path] = []

        def make_full() -> None:
            if can_mount():
                truncate_wal(data / "catalog.db")
                fillers.append(fill(data))
            else:
                inject_disk_full(monkeypatch)

        def make_free() -> None:
            for filler in fillers:
                filler.unlink()
            monkeypatch.undo()

        yield FullDisk(site, make_full, make_free)


def test_disk_full_writes_answer_507_and_leave_nothing_behind(full_disk: FullDisk):
    site = full_disk.site
    rows, blobs = site.rows(), site.blobs()
    full_disk.make_full()
    for name, response in _writes(site).items():
        message = _error(response, 507)
        assert "Insufficient storage" in message, name
    assert site.partial_writes() == 0  # no temporary file left
    assert site.blobs() == blobs  # no new blob
    assert site.rows() == rows  # no row without its blob, none half-written
    full_disk.make_free()
    assert _upload(site.account, png(scene(64, 48, square=(10, 10, 8)))).status_code == 200
    assert site.rows() == rows + 1


def test_disk_full_renders_are_still_served(full_disk: FullDisk, caplog):
    site = full_disk.site
    entries = site.cache_entries()
    full_disk.make_full()
    cached = site.client.get(site.cached_url)
    assert cached.status_code == 200 and cached.data == site.cached
    with caplog.at_level(logging.WARNING, logger="webapp.rendercache"):
        fresh = site.client.get(f"/acme/dynamic/resize-width-33/{site.image}.png")
    assert fresh.status_code == 200
    assert decode(fresh.data).shape[:2] == (25, 33)
    assert "render cache write failed (disk full)" in caplog.text
    assert site.cache_entries() == entries  # not stored, and nothing half-written
    download = site.account.request("GET", f"/sourceimages/acme/{site.image}/download")
    assert download.status_code == 200 and download.data == site.original
    assert site.account.request("GET", "/sourceimages/acme").status_code == 200


def test_healthz_reports_a_full_disk_and_recovers(full_disk: FullDisk):
    client = full_disk.site.client
    assert client.get("/healthz").get_json() == {"status": "ok"}
    full_disk.make_full()
    response = client.get("/healthz")
    assert "full" in _error(response, 503)
    assert response.get_json()["error"]["reason"] == "disk_full"
    full_disk.make_free()
    assert client.get("/healthz").status_code == 200


def test_a_restart_on_a_full_disk_serves_reads_and_refuses_writes(full_disk: FullDisk):
    site = full_disk.site
    full_disk.make_full()
    site.close()  # the last connection: SQLite removes -wal and -shm, freeing a little
    full_disk.make_full()  # fill that too: a new -shm file cannot be made
    site.reopen(health_min_free_bytes=MiB)
    cached = site.client.get(site.cached_url)
    assert cached.status_code == 200 and cached.data == site.cached
    fresh = site.client.get(f"/acme/dynamic/resize-width-19/{site.image}.png")
    assert fresh.status_code == 200 and decode(fresh.data).shape[1] == 19
    assert site.account.request("GET", f"/sourceimages/acme/{site.image}").status_code == 200
    for name, response in _writes(site).items():
        assert "Insufficient storage" in _error(response, 507), name
    assert site.client.get("/healthz").get_json()["error"]["reason"] == "disk_full"
    full_disk.make_free()
    stack = {"operations": [{"name": "resize", "options": {"width": 9}}]}
    put = site.account.request("PUT", "/stacks/acme/after", data=json.dumps(stack))
    assert put.status_code == 201


# -- a read-only data directory --------------------------------------------------------------


@pytest.fixture
def read_only_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A populated data directory made read-only, and a new app started on it."""
    site = Site.build(tmp_path / "data")
    site.close()
    with ExitStack() as cleanup:
        if can_mount():
            cleanup.enter_context(read_only_mount(site.data))
        else:
            inject_read_only(monkeypatch)
        site.reopen()  # must start: a catalog is there, even if it cannot be written
        cleanup.callback(site.close)
        yield site


def test_read_only_data_dir_serves_reads(read_only_site: Site):
    site = read_only_site
    listing = site.account.request("GET", "/sourceimages/acme")
    assert listing.status_code == 200
    assert [item["hash"] for item in listing.get_json()["items"]] == [site.image]
    cached = site.client.get(site.cached_url)
    assert cached.status_code == 200 and cached.data == site.cached
    fresh = site.client.get(f"/acme/dynamic/resize-width-21/{site.image}.png")
    assert fresh.status_code == 200 and decode(fresh.data).shape[1] == 21
    download = site.account.request("GET", f"/sourceimages/acme/{site.image}/download")
    assert download.status_code == 200 and download.data == site.original
    health = site.client.get("/healthz")
    assert "read-only" in _error(health, 503)
    assert health.get_json()["error"]["reason"] == "read_only"


def test_read_only_data_dir_answers_writes_503(read_only_site: Site):
    rows = read_only_site.rows()
    for name, response in _writes(read_only_site).items():
        assert "read-only" in _error(response, 503), name
    assert read_only_site.rows() == rows


def test_a_real_server_starts_on_a_read_only_data_dir(tmp_path: Path, monkeypatch):
    site = Site.build(tmp_path / "data")
    site.close()
    if not can_mount():
        # Without mounts a subprocess cannot be given the fault; the app factory (what
        # each worker runs) is started on the injected read-only storage instead.
        inject_read_only(monkeypatch)
        site.reopen()
        assert site.client.get(site.cached_url).data == site.cached
        assert _error(site.client.get("/healthz"), 503)
        site.close()
        return
    local = {"CROPSTACK_BLOB_STORE": ""}  # the site's originals are in its data dir
    with (
        read_only_mount(site.data),
        running_server(tmp_path, workers=1, ready=(503,), env=local) as base,
    ):
        status, body = _http(base + "/healthz")
        assert status == 503 and json.loads(body)["error"]["reason"] == "read_only"
        status, body = _http(base + site.cached_url)
        assert status == 200 and body == site.cached
        status, body = _http(base + f"/acme/dynamic/resize-width-17/{site.image}.png")
        assert status == 200 and decode(body).shape[1] == 17
        status, body = _http(
            base + "/stacks/acme/x",
            method="PUT",
            data=b'{"operations":[]}',
            headers={"Api-Key": site.account.api_key},
        )
        assert status == 503 and json.loads(body)["error"]["code"] == 503


def _http(
    url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- a missing or damaged original -----------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest) -> str:
    """Run the test with originals on local disk, then on the S3 server."""
    if request.param == "s3":
        request.getfixturevalue("on_s3")
    return request.param


def test_a_damaged_or_missing_original_is_never_served(any_store, client, account, caplog):
    original = png(scene(120, 90, square=(20, 20, 30)))
    image = _upload(account, original).get_json()["items"][0]["hash"]
    put = account.request(
        "PUT",
        "/stacks/acme/orig",
        data=json.dumps({"operations": [], "options": {"source_file": True}}),
    )
    assert put.status_code == 201
    cached = client.get(f"/acme/dynamic/resize-width-30/{image}.png")
    assert cached.status_code == 200
    store = client.application.extensions["cropstack.blobs"]
    key = hashlib.sha256(original).hexdigest()
    overwrite(store, key, original[: len(original) // 2])  # truncated on the medium

    urls = {
        "render": f"/acme/dynamic/resize-width-31/{image}.png",
        "source_file": f"/acme/orig/{image}.png",
    }
    with caplog.at_level(logging.ERROR):
        for name, url in urls.items():
            response = client.get(url)
            assert "unavailable" in _error(response, 503), name
            assert response.headers["Cache-Control"] == "no-store"
        download = account.request("GET", f"/sourceimages/acme/{image}/download")
        assert image in _error(download, 503)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3 and all(image in r.getMessage() for r in errors)
    assert "damaged" in errors[0].getMessage()

    # A render made before the damage is still served from the cache.
    again = client.get(f"/acme/dynamic/resize-width-30/{image}.png")
    assert again.status_code == 200 and again.data == cached.data

    # Uploading the same bytes again repairs the blob.
    assert _upload(account, original).status_code == 200
    assert store.get(key) == original
    repaired = client.get(urls["render"])
    assert repaired.status_code == 200 and decode(repaired.data).shape[1] == 31

    lose(store, key)  # gone from the medium
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        _error(client.get(f"/acme/dynamic/resize-width-32/{image}.png"), 503)
    assert "missing" in caplog.text and image in caplog.text


def test_a_damaged_jpeg_original_is_never_rendered(client, account, caplog):
    # A local JPEG's file is read by the render process itself (and its decode may be
    # kept, engine/decoded.py): a damaged file must still be refused, logged, not rendered.
    original = jpeg(640, 480)
    image = _upload(account, original).get_json()["items"][0]["hash"]
    assert client.get(f"/acme/dynamic/resize-width-60/{image}.jpg").status_code == 200
    store = client.application.extensions["cropstack.blobs"]
    key = hashlib.sha256(original).hexdigest()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte: still a decodable JPEG
    overwrite(store, key, bytes(damaged))
    with caplog.at_level(logging.ERROR):
        for width in (61, 62):  # the second render of the image would keep its decode
            assert "unavailable" in _error(
                client.get(f"/acme/dynamic/resize-width-{width}/{image}.jpg"), 503
            )
    assert "damaged" in caplog.text and image in caplog.text
    # nor kept: a level made from the damaged bytes would be served after the repair
    settings = client.application.extensions["cropstack.settings"]
    kept = keptdecodes.directory_for(settings)
    assert os.path.isdir(kept) and not [n for n in os.listdir(kept) if key in n]
    # An image never rendered: its first render hashes the file while it renders.
    other = jpeg(500, 400)
    fresh = _upload(account, other).get_json()["items"][0]["hash"]
    torn = bytearray(other)
    torn[len(torn) // 2] ^= 0xFF
    overwrite(store, hashlib.sha256(other).hexdigest(), bytes(torn))
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert "unavailable" in _error(
            client.get(f"/acme/dynamic/resize-width-64/{fresh}.jpg"), 503
        )
    assert "damaged" in caplog.text and fresh in caplog.text
    assert _upload(account, original).status_code == 200  # repaired: rendered again
    repaired = client.get(f"/acme/dynamic/resize-width-63/{image}.jpg")
    assert repaired.status_code == 200 and decode(repaired.data).shape[1] == 63
