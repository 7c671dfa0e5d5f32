"""Crash safety and concurrency of uploads (shared/bad-inputs.md §2.4, §5 rows 32-33).

A writer process uploads random PNGs through the upload code path and is SIGKILLed at
random moments, again and again; afterwards the catalog is intact and every row's blob
exists with the right SHA-256 and size. Concurrent uploads of one file, from threads and
from processes, end with one row and no error.
"""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from tests.webapp.catalogsql import database
from tests.webapp.conftest import Member
from tests.webapp.images import multipart, png
from webapp import create_app
from webapp.blobs import open_store
from webapp.catalog import SqliteBackend, now_iso
from webapp.gc import collect
from webapp.settings import load_settings

WRITER = Path(__file__).with_name("durability_writer.py")


def _make_org(data_dir: Path) -> str:
    backend = SqliteBackend(data_dir / "catalog.db")
    backend.migrate()
    org_id = str(uuid.uuid4())
    with database(backend) as db:
        db.execute(
            "INSERT INTO organizations (id, name, display_name, billing_email, created) "
            "VALUES (?, 'crash', 'crash', 'b@crash.example', ?)",
            (org_id, now_iso()),
        )
    return org_id


def _check(data_dir: Path) -> int:
    """Assert integrity and that every row's blob is whole; the number of rows."""
    blobs = open_store(load_settings({"data_dir": str(data_dir)}).blob_store, data_dir)
    with database(SqliteBackend(data_dir / "catalog.db")) as db:
        assert db.rows("PRAGMA integrity_check")[0][0] == "ok"
        rows = db.rows("SELECT hash, binary_hash, blob_key, size FROM sourceimages")
    for row in rows:
        data = blobs.get(row["blob_key"])  # BlobUnavailable = a dangling or damaged row
        assert hashlib.sha256(data).hexdigest() == row["blob_key"], "truncated blob"
        assert len(data) == row["size"]
        assert hashlib.sha1(data).hexdigest() == row["binary_hash"]
    return len(rows)


def test_kill_minus_9_never_leaves_a_row_without_its_blob(tmp_path: Path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    org_id = _make_org(data_dir)
    rng = random.Random(1234)
    started = time.monotonic()
    kills = 0
    while kills < 15 and time.monotonic() - started < 25:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(data_dir), org_id, "random"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = proc.stdout.readline() if proc.stdout else ""
            assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL, "writer died on its own"
        kills += 1
    assert kills >= 10
    rows = _check(data_dir)
    assert rows > kills  # the writer made progress between kills
    # GC removes orphans (blobs written, rows never committed) but nothing still needed.
    settings = load_settings({"data_dir": str(data_dir)})
    store = open_store(settings.blob_store, data_dir)
    store.sweep_partial(older_than_s=0)
    time.sleep(1.1)  # write times on S3 are whole seconds (CROPSTACK_TEST_BLOB_STORE=s3)
    collect(settings, grace_s=0)
    assert _check(data_dir) == rows
    with database(SqliteBackend(data_dir / "catalog.db")) as db:
        referenced = {r["blob_key"] for r in db.rows("SELECT blob_key FROM sourceimages")}
    assert {info.key for info in store.list()} == referenced
    assert store.sweep_partial(older_than_s=0) == 0  # no half-written blob left


def test_concurrent_same_upload_from_threads(tmp_path: Path):
    # About the catalog under concurrent writers, not admission: let every upload check wait.
    app = create_app(
        {"data_dir": str(tmp_path / "data"), "render_queue_limit": 16, "render_queue_timeout": 60}
    )
    member = Member(app, app.test_client(), "acme", ["admin"])
    data = png(seed=55)
    results: list[tuple[int, str]] = []
    barrier = threading.Barrier(12)

    def worker() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(
            "/sourceimages/acme", data=multipart(data, "same.png"), headers=member.headers
        )
        results.append((response.status_code, response.get_json()["items"][0]["hash"]))

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 12
    assert {status for status, _ in results} == {200}
    assert len({h for _, h in results}) == 1
    body = member.request("GET", "/sourceimages/acme").get_json()
    assert body["total"] == 1


def test_concurrent_same_upload_from_processes(tmp_path: Path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    org_id = _make_org(data_dir)
    procs = [
        subprocess.Popen(
            [sys.executable, str(WRITER), str(data_dir), org_id, "same", "15"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert _check(data_dir) == 1


def test_gc_keeps_blobs_of_soft_deleted_and_other_orgs(tmp_path: Path):
    app = create_app({"data_dir": str(tmp_path / "data")})
    client = app.test_client()
    a = Member(app, client, "a", ["admin"])
    b = Member(app, client, "b", ["admin"])
    shared, only_a = png(seed=60), png(seed=61)
    for member, data in ((a, shared), (b, shared), (a, only_a)):
        assert (
            member.request("POST", f"/sourceimages/{member.org}", data=multipart(data)).status_code
            == 200
        )
    hashes = [i["hash"] for i in a.request("GET", "/sourceimages/a").get_json()["items"]]
    for image_hash in hashes:
        assert a.request("DELETE", f"/sourceimages/a/{image_hash}").status_code == 204
    settings = load_settings({"data_dir": str(tmp_path / "data")})
    report = collect(settings, grace_s=0)
    assert report.removed_blobs == 0 and report.purged_rows == 0
    # Restorable, and b still downloads the shared bytes.
    for image_hash in hashes:
        assert a.request("POST", f"/sourceimages/a/{image_hash}/restore").status_code == 200
        assert a.request("GET", f"/sourceimages/a/{image_hash}/download").status_code == 200
    # Past the restore window, a's rows go, the blob only a used goes, b's stays.
    for image_hash in hashes:
        a.request("DELETE", f"/sourceimages/a/{image_hash}")
    with database(SqliteBackend(tmp_path / "data" / "catalog.db")) as db:
        db.execute(
            "UPDATE sourceimages SET deleted_at = '2000-01-01T00:00:00+00:00' "
            "WHERE deleted_at IS NOT NULL"
        )
    report = collect(settings, grace_s=0)
    assert report.purged_rows == 2 and report.removed_blobs == 1
    b_hash = b.request("GET", "/sourceimages/b").get_json()["items"][0]["hash"]
    download = b.request("GET", f"/sourceimages/b/{b_hash}/download")
    assert download.status_code == 200 and download.data == shared
