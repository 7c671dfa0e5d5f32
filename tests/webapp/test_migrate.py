"""``cropstack migrate``: a single-machine data directory (SQLite, originals on disk) copied
to a real PostgreSQL (pgserver) and a real S3 server (moto_server), then served from there.

The source installation is built through the API (several formats, user and dynamic
metadata, stacks with a basestack, two organizations sharing an original, a second
member and API key, a signing key, a locked image and a deleted-but-restorable one). The
copy is checked as a user would: a real ``cropstack serve`` on the new backends answers
the same JSON, renders the same pixels, accepts the old API keys and restores the
deleted image. Also: an interrupted copy (the target store failing after a few
originals) goes on without duplicates when run again, a later run copies only what
changed, verification catches an original damaged in the target, and bad target URLs
are one clear line and a non-zero exit.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import psycopg
import pytest
import pyvips
from flask.testing import FlaskClient

from tests.postgres import PostgresForTests
from tests.realserver import REPO, running_server
from tests.webapp.images import gif, jpeg, multipart, png
from tests.webapp.livehttp import call, call_json
from webapp import create_app
from webapp.blobs import StoreUnavailable, parse_s3_location
from webapp.blobs.local import LocalBlobStore
from webapp.blobs.s3 import S3BlobStore
from webapp.catalog import SqliteBackend
from webapp.catalog.postgres import PostgresBackend
from webapp.transfer import migrate

pytestmark = pytest.mark.server
#: Rows of sourceimages in the source installation, deleted ones included.
IMAGES = 8

STACK = {"operations": [{"name": "resize", "options": {"width": 40, "height": 40,
                                                       "mode": "fill"}}]}  # fmt: skip
CHILD = {"operations": [{"name": "grayscale"}], "options": {"basestack": "square"}}
#: Answers compared between the source and the migrated server (as admin of acme).
API_PATHS = (
    "/sourceimages/acme?limit=100",
    "/sourceimages/acme?user:str:color=red",
    "/sourceimages/acme?user:text:caption=boats",
    "/stacks/acme",
    "/stacks/acme/child",
    "/organizations/acme",
    "/organizations/acme/memberships",
    "/user/apikeys",
    "/stats/acme",
    "/sourceimages/acme/alias/logo",
)
#: When the source says usage counting began (its migration 4, backdated by the test).
COUNTING_SINCE = "2026-01-02T03:04:05+00:00"


def cropstack(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """This checkout's CLI, without the test process's CROPSTACK_ settings."""
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith("CROPSTACK_")}
    return subprocess.run(
        [sys.executable, "-m", "webapp.cli", *argv], cwd=REPO, env={**environ, **(env or {})},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _objects(location: str) -> dict[str, int]:
    """Object name -> size under ``location``, straight from the S3 server."""
    bucket, prefix = parse_s3_location(location)
    pages = boto3.session.Session().client("s3").get_paginator("list_objects_v2")
    return {
        item["Key"][len(prefix) :]: item["Size"]
        for page in pages.paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    }


def _upload(client: FlaskClient, key: str, org: str, data: bytes, name: str,
            fields: dict[str, Any] | None = None) -> str:  # fmt: skip
    response = client.post(f"/sourceimages/{org}", headers={"Api-Key": key},
                           data=multipart(data, name, fields=fields))  # fmt: skip
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"][0]["hash"]


def _send(client: FlaskClient, key: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body)
    response = client.open(path, method=method, headers={"Api-Key": key}, data=data)
    assert response.status_code < 300, (path, response.get_data(as_text=True))
    return response.get_json(silent=True)


def build_installation(data_dir: Path) -> dict[str, Any]:
    """A single-machine data directory with a bit of everything; what the test needs."""
    app = create_app({"data_dir": str(data_dir), "signup": True, "database_url": "",
                      "blob_store": ""})  # fmt: skip
    client = app.test_client()
    acme = client.post("/users", json={"email": "a@acme.example", "organization": "acme"})
    globex = client.post("/users", json={"email": "g@globex.example", "organization": "globex"})
    key, gkey = acme.get_json()["api_key"], globex.get_json()["api_key"]
    hashes = {
        "png": _upload(client, key, "acme", png(60, 40, seed=1), "one.png",
                       {"meta_user[0]": {"color": "red", "int:n": 3,
                                         "array:labels": ["a", "b"]}}),
        "alpha": _upload(client, key, "acme", png(30, 30, seed=2, alpha=True), "alpha.png",
                         {"meta_user[0]": {"text:caption": "boats on a lake"}}),
        "jpeg": _upload(client, key, "acme", jpeg(120, 80), "photo.jpg"),
        "gif": _upload(client, key, "acme", gif(3, 12), "anim.gif"),
        "gone": _upload(client, key, "acme", png(20, 20, seed=3), "gone.png"),
        "shared": _upload(client, key, "acme", png(24, 24, seed=4), "shared.png"),
    }  # fmt: skip
    hashes["globex"] = _upload(client, gkey, "globex", png(24, 24, seed=4), "same-bytes.png")
    subject = {"x": 60, "y": 20, "width": 40, "height": 40}
    moved = _send(client, key, "PUT", f"/sourceimages/acme/{hashes['jpeg']}"
                  "/meta/dynamic/subject_area", subject)  # fmt: skip
    hashes["jpeg"] = moved["hash"]  # dynamic metadata changes the hash (as rokka's does)
    _send(client, key, "PUT", f"/sourceimages/acme/{hashes['png']}/options/locked", True)
    _send(client, key, "PUT", "/sourceimages/acme/alias/logo", {"hash": hashes["alpha"]})
    _send(client, key, "PUT", "/stacks/acme/square", STACK)
    _send(client, key, "PUT", "/stacks/acme/child", CHILD)
    _send(client, key, "PUT", "/organizations/acme/options/remote_basepath", "https://example.org/")
    _send(client, key, "POST", "/organizations/acme/signing_keys")
    member = _send(client, key, "POST", "/organizations/acme/memberships",
                   {"roles": ["sourceimages:read"], "comment": "reader"})  # fmt: skip
    _send(client, key, "POST", "/user/apikeys", {"comment": "second key"})
    _send(client, key, "DELETE", f"/sourceimages/acme/{hashes['gone']}")
    with app.app_context():  # what the workers' periodic flush would have added
        from datetime import UTC, datetime

        from webapp.app import catalog
        from webapp.catalog.usage import DeliveryCount

        org_id = catalog().accounts.org_by_name("acme")["id"]
        today = datetime.now(UTC).date().isoformat()
        catalog().usage.add_deliveries([DeliveryCount(org_id, today, 31, 27, 90817)])
    with sqlite3.connect(data_dir / "catalog.db") as conn:
        conn.execute("UPDATE schema_migrations SET applied = ? WHERE version = 4",
                     (COUNTING_SINCE,))  # fmt: skip
    expected = {path: client.get(path, headers={"Api-Key": key}).get_json() for path in API_PATHS}
    renders = {
        name: client.get(f"/acme/{stack}/{hashes[name]}.png").data
        for name in ("png", "alpha", "jpeg", "gif", "shared")
        for stack in ("square",)
    }
    renders["child-jpeg"] = client.get(f"/acme/child/{hashes['jpeg']}.png").data
    renders["dynamic-subject"] = client.get(
        f"/acme/dynamic/crop-width-30-height-30/{hashes['jpeg']}.png"
    ).data
    app.extensions["cropstack.catalog"].close()
    return {"key": key, "gkey": gkey, "member_key": member["api_key"], "hashes": hashes,
            "expected": expected, "renders": renders}  # fmt: skip


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The source data directory (built once; tests copy it before changing it)."""
    data_dir = tmp_path_factory.mktemp("source") / "data"
    return data_dir, build_installation(data_dir)


@pytest.fixture
def source(installation: tuple[Path, dict[str, Any]], tmp_path: Path) -> tuple[Path, dict]:
    """A private copy of the source data directory for one test."""
    import shutil

    data_dir, facts = installation
    copy = tmp_path / "source"
    shutil.copytree(data_dir, copy)
    return copy, facts


def _pixels(body: bytes) -> np.ndarray:
    return np.asarray(pyvips.Image.new_from_buffer(body, ""), dtype=np.int16)


def _migrate(data_dir: Path, url: str, location: str, *extra: str) -> subprocess.CompletedProcess:
    return cropstack("migrate", "--data-dir", str(data_dir), "--to-database-url", url,
                     "--to-blob-store", location, *extra)  # fmt: skip


def _blob_keys(data_dir: Path) -> set[str]:
    return {info.key for info in LocalBlobStore(data_dir).list()}


def test_migrate_then_serve_on_postgresql_and_s3(
    source: tuple[Path, dict], postgres: PostgresForTests, s3_location: str, tmp_path: Path
) -> None:
    data_dir, facts = source
    url = postgres.empty_database()  # no schema yet: migrate creates it
    try:
        result = _migrate(data_dir, url, s3_location)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "migrate: verified"
        table = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
        # Deleted images too (the one deleted and the JPEG's row before its subject area).
        assert table["sourceimages"][:2] == [str(IMAGES)] * 2
        assert table["organizations"][:2] == ["2", "2"]
        assert table["usage_deliveries"][:2] == ["1", "1"]
        assert table["sourceimage_aliases"][:2] == ["1", "1"]
        with psycopg.connect(url) as conn:
            applied = conn.execute("SELECT applied FROM schema_migrations WHERE version = 4")
            assert applied.fetchone()[0] == COUNTING_SINCE
        assert table["sourceimage_facet_counts"][0] == table["sourceimage_facet_counts"][1]
        # Every original once on S3 (acme and globex share one), nothing else there.
        objects = _objects(s3_location)
        assert set(objects) == _blob_keys(data_dir)
        assert len(objects) == 6

        env = {"CROPSTACK_DATABASE_URL": url, "CROPSTACK_BLOB_STORE": s3_location}
        node = tmp_path / "node"
        node.mkdir()
        with running_server(node, env=env) as base:
            status, body = call_json(base, "GET", "/healthz")
            assert status == 200
            key = facts["key"]
            for path, expected in facts["expected"].items():
                status, answer = call_json(base, "GET", path, key)
                assert status == 200, (path, answer)
                assert answer == expected, path
            # The other organization's and the member's keys work (stored as hashes).
            assert call_json(base, "GET", "/sourceimages/globex", facts["gkey"])[0] == 200
            status, listing = call_json(base, "GET", "/sourceimages/acme", facts["member_key"])
            live = facts["expected"]["/sourceimages/acme?limit=100"]["total"]
            assert status == 200 and listing["total"] == live
            for name, before in facts["renders"].items():
                hashes = facts["hashes"]
                path = {
                    "child-jpeg": f"/acme/child/{hashes['jpeg']}.png",
                    "dynamic-subject": f"/acme/dynamic/crop-width-30-height-30/"
                    f"{hashes['jpeg']}.png",
                }.get(name, f"/acme/square/{hashes.get(name, '')}.png")
                status, _headers, after = call(base, "GET", path)
                assert status == 200, (name, after[:200])
                a, b = _pixels(before), _pixels(after)
                assert a.shape == b.shape, name
                assert np.abs(a - b).max() <= 1, name
            # The original downloads byte for byte; the deleted image comes back.
            status, _h, original = call(base, "GET", f"/sourceimages/acme/{hashes['jpeg']}"
                                        "/download", headers={"Api-Key": key})  # fmt: skip
            assert status == 200 and original == jpeg(120, 80)
            gone = hashes["gone"]
            assert call(base, "GET", f"/acme/square/{gone}.png")[0] == 404
            status, restored = call_json(base, "POST", f"/sourceimages/acme/{gone}/restore", key)
            assert status == 200 and restored["deleted"] is False
            assert call(base, "GET", f"/acme/square/{gone}.png")[0] == 200
            # The locked image stays locked.
            status, error = call_json(base, "DELETE", f"/sourceimages/acme/{hashes['png']}", key)
            assert status == 409 and error["error"]["code"] == 409
    finally:
        postgres.drop(url)


class _FailsAfter:
    """The target store, failing every write after ``allowed`` of them (a store that goes
    away mid-copy); everything else passes through to the real S3 store."""

    def __init__(self, store: S3BlobStore, allowed: int) -> None:
        self._store = store
        self.allowed = allowed

    def put(self, data: bytes) -> Any:
        if self.allowed <= 0:
            raise StoreUnavailable(self._store.location, "connection reset (injected)")
        self.allowed -= 1
        return self._store.put(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _pg_count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()[0]


def test_interrupted_migration_goes_on_without_duplicates(
    source: tuple[Path, dict], postgres: PostgresForTests, s3_location: str
) -> None:
    data_dir, _facts = source
    url = postgres.new_database()
    bucket, prefix = parse_s3_location(s3_location)
    source_backend = SqliteBackend(data_dir / "catalog.db")
    target_backend = PostgresBackend(url)
    try:
        src, dst = source_backend.open(), target_backend.open()
        failing = _FailsAfter(S3BlobStore(bucket, prefix), allowed=3)
        with pytest.raises(StoreUnavailable):
            migrate(src, LocalBlobStore(data_dir), dst, failing, jobs=1, page_rows=2)
        src.close()
        dst.close()
        # Stopped part-way: some images committed, each only after its original.
        copied = _pg_count(url, "SELECT COUNT(*) FROM sourceimages")
        assert 0 < copied < IMAGES
        stored = set(_objects(s3_location))
        assert len(stored) == 3
        with psycopg.connect(url) as conn:
            referenced = {r[0] for r in conn.execute("SELECT blob_key FROM sourceimages")}
        assert referenced <= stored
    finally:
        target_backend.close()
        source_backend.close()

    try:
        result = _migrate(data_dir, url, s3_location)
        assert result.returncode == 0, result.stderr
        assert "migrate: verified" in result.stdout
        assert "3 copied" in result.stdout and "3 already there" in result.stdout
        assert set(_objects(s3_location)) == _blob_keys(data_dir)
        assert _pg_count(url, "SELECT COUNT(*) FROM sourceimages") == IMAGES
        # A third run has nothing left to do and still verifies.
        again = _migrate(data_dir, url, s3_location)
        assert again.returncode == 0, again.stderr
        assert "rows: 0 inserted, 0 overwritten, 0 removed; originals: 0 copied" in again.stdout
    finally:
        postgres.drop(url)


def test_a_killed_migration_goes_on_when_run_again(
    source: tuple[Path, dict], postgres: PostgresForTests, s3_location: str, s3_server: str
) -> None:
    """SIGKILL part-way (the store made slow so that the kill lands mid-copy), then the
    same command again: every original once, every row once, verified."""
    import os
    import signal
    import time

    from tests.s3server import FaultProxy

    data_dir, _facts = source
    url = postgres.new_database()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CROPSTACK_")}
    try:
        with FaultProxy(s3_server) as proxy:
            proxy.delay_s = 0.3
            argv = [sys.executable, "-m", "webapp.cli", "migrate", "--data-dir", str(data_dir),
                    "--to-database-url", url, "--to-blob-store", s3_location, "--jobs", "1"]
            process = subprocess.Popen(
                argv, cwd=REPO, env={**environ, "AWS_ENDPOINT_URL": proxy.endpoint},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 120
                while len(_objects(s3_location)) < 2:
                    assert process.poll() is None, "migrate ended before it was killed"
                    assert time.monotonic() < deadline, "migrate copied nothing in time"
                    time.sleep(0.05)
                os.kill(process.pid, signal.SIGKILL)
            finally:
                process.kill()
                process.wait(timeout=10)
            assert process.returncode == -signal.SIGKILL
            time.sleep(1.0)  # a write the proxy still held reaches the store (or not) first
        stored = set(_objects(s3_location))
        assert 2 <= len(stored) < 6
        result = _migrate(data_dir, url, s3_location)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "migrate: verified"
        assert f"{len(stored)} already there" in result.stdout
        assert set(_objects(s3_location)) == _blob_keys(data_dir)
        assert _pg_count(url, "SELECT COUNT(*) FROM sourceimages") == IMAGES
    finally:
        postgres.drop(url)


def test_a_later_run_copies_what_changed_since(
    source: tuple[Path, dict], postgres: PostgresForTests, s3_location: str, tmp_path: Path
) -> None:
    data_dir, facts = source
    url = postgres.new_database()
    try:
        assert _migrate(data_dir, url, s3_location).returncode == 0
        # The old server kept working meanwhile: a new image, a rename, a key removed.
        app = create_app({"data_dir": str(data_dir), "database_url": "", "blob_store": ""})
        client = app.test_client()
        key = facts["key"]
        new = _upload(client, key, "acme", png(16, 16, seed=50), "late.png")
        _send(client, key, "PUT", f"/sourceimages/acme/{facts['hashes']['alpha']}/name",
              "renamed.png")  # fmt: skip
        keys = client.get("/user/apikeys", headers={"Api-Key": key}).get_json()
        second = next(k for k in keys if k.get("comment") == "second key")
        _send(client, key, "DELETE", f"/user/apikeys/{second['id']}")
        expected = client.get("/sourceimages/acme?limit=100", headers={"Api-Key": key}).get_json()
        app.extensions["cropstack.catalog"].close()

        result = _migrate(data_dir, url, s3_location)
        assert result.returncode == 0, result.stderr
        assert "rows: 1 inserted, 1 overwritten, 1 removed; originals: 1 copied" in result.stdout
        env = {"CROPSTACK_DATABASE_URL": url, "CROPSTACK_BLOB_STORE": s3_location}
        with running_server(tmp_path, env=env) as base:
            status, listing = call_json(base, "GET", "/sourceimages/acme?limit=100", key)
            assert status == 200 and listing == expected
            assert call(base, "GET", f"/acme/square/{new}.png")[0] == 200
            status, keys = call_json(base, "GET", "/user/apikeys", key)
            assert status == 200 and all(k.get("comment") != "second key" for k in keys)
    finally:
        postgres.drop(url)


def test_verification_catches_a_damaged_copy(
    source: tuple[Path, dict], postgres: PostgresForTests, s3_location: str
) -> None:
    data_dir, _facts = source
    url = postgres.new_database()
    try:
        assert _migrate(data_dir, url, s3_location).returncode == 0
        # One original is damaged in the bucket after it was copied.
        bucket, prefix = parse_s3_location(s3_location)
        victim = sorted(_objects(s3_location))[0]
        boto3.session.Session().client("s3").put_object(
            Bucket=bucket, Key=prefix + victim, Body=b"not the original"
        )
        result = _migrate(data_dir, url, s3_location)
        assert result.returncode == 1
        assert result.stdout.splitlines()[-1] == "migrate: NOT verified"
        assert "1 damaged" in result.stdout
        assert f"original {victim} was damaged in the target store" in result.stderr
        # Verification removed it; the next run copies it anew and verifies.
        again = _migrate(data_dir, url, s3_location)
        assert again.returncode == 0, again.stderr
        assert "originals: 1 copied" in again.stdout
        assert _objects(s3_location)[victim] == (LocalBlobStore(data_dir)._path(victim)
                                                 .stat().st_size)  # fmt: skip
    finally:
        postgres.drop(url)


def test_a_source_original_that_cannot_be_read_leaves_the_copy_unverified(
    source: tuple[Path, dict], postgres: PostgresForTests, s3_location: str
) -> None:
    data_dir, facts = source
    url = postgres.new_database()
    try:
        app = create_app({"data_dir": str(data_dir), "database_url": "", "blob_store": ""})
        with app.app_context():
            from webapp.app import catalog

            image = catalog().images.get_exact(
                catalog().accounts.org_by_name("acme")["id"], facts["hashes"]["gif"]
            )
        app.extensions["cropstack.catalog"].close()
        LocalBlobStore(data_dir)._path(image.blob_key).write_bytes(b"bit rot")
        result = _migrate(data_dir, url, s3_location)
        assert result.returncode == 1
        assert f"source original {image.blob_key} cannot be read" in result.stderr
        assert "sourceimages" in result.stderr and "MISMATCH" in result.stdout
        assert image.blob_key not in _objects(s3_location)
        assert _pg_count(url, "SELECT COUNT(*) FROM sourceimages") == IMAGES - 1
    finally:
        postgres.drop(url)


def _one_line(result: subprocess.CompletedProcess, status: int, contains: str) -> None:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cropstack: ") and contains in lines[0], lines[0]


def test_bad_targets_are_one_line_and_a_non_zero_exit(
    source: tuple[Path, dict], postgres: PostgresForTests, s3_location: str, tmp_path: Path
) -> None:
    data_dir, facts = source
    url = postgres.new_database()
    try:
        _one_line(_migrate(data_dir, "mysql://db/x", s3_location), 2, "postgresql://")
        _one_line(_migrate(data_dir, url, "s3://No_Such"), 2, "not an S3 bucket name")
        _one_line(_migrate(data_dir, url, "ftp://host/x"), 2, "unsupported blob store")
        _one_line(_migrate(data_dir, url, "s3://no-such-bucket-here/x"), 1,
                  "cannot use the target blob store")  # fmt: skip
        unreachable = "postgresql://nobody:secret@127.0.0.1:1/cropstack"
        result = _migrate(data_dir, unreachable, s3_location)
        _one_line(result, 1, "cannot reach the target database")
        assert "secret" not in result.stderr
        _one_line(_migrate(tmp_path / "nowhere", url, s3_location), 2, "does not exist")
        _one_line(cropstack("migrate", "--data-dir", str(data_dir), "--to-blob-store",
                            s3_location), 2, "needs --to-database-url")  # fmt: skip
        # A target already in service (an upload there after the copy) is refused.
        assert _migrate(data_dir, url, s3_location).returncode == 0
        served = create_app({"data_dir": str(tmp_path / "node"), "database_url": url,
                             "blob_store": s3_location})  # fmt: skip
        late = _upload(served.test_client(), facts["key"], "acme", png(8, 8, seed=77), "new.png")
        served.extensions["cropstack.catalog"].close()
        refused = _migrate(data_dir, url, s3_location)
        assert refused.returncode == 2 and refused.stdout == ""
        assert "already using it" in refused.stderr.splitlines()[-1]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1 FROM sourceimages WHERE hash = %s", (late,)).fetchone()
        postgres.drop(url)
        url = postgres.new_database()
        # A database holding another installation's organizations is refused, untouched.
        other = tmp_path / "other"
        assert cropstack("users", "create", "--email", "o@other.example", "--organization",
                         "other", "--data-dir", str(other)).returncode == 0  # fmt: skip
        assert _migrate(other, url, s3_location).returncode == 0
        refused = _migrate(data_dir, url, s3_location)
        assert refused.returncode == 2 and refused.stdout == ""
        assert "another installation" in refused.stderr.splitlines()[-1]
        assert _pg_count(url, "SELECT COUNT(*) FROM sourceimages") == 0
        assert _pg_count(url, "SELECT COUNT(*) FROM organizations") == 1
    finally:
        postgres.drop(url)

