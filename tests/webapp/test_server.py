"""The server process and the catalog under real concurrency.

* a real ``cropstack serve --workers 2`` on 127.0.0.1, driven over HTTP from threads;
* two processes writing one catalog at once (nothing lost, no errors);
* a write lock held past the busy timeout answers 503 + Retry-After, not 500.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Account
from tests.realserver import REPO, running_server
from tests.webapp.catalogsql import database
from webapp import create_app
from webapp.catalog import SqliteBackend


def http(
    base: str, method: str, path: str, body: Any = None, key: str | None = None
) -> tuple[int, Any]:
    """One request over real HTTP; (status, parsed JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "text/plain;charset=UTF-8")  # as rokka.js
    if key:
        request.add_header("Api-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
            content_type = response.headers.get("Content-Type")
    except urllib.error.HTTPError as exc:
        status, raw, content_type = exc.code, exc.read(), exc.headers.get("Content-Type")
    if raw:
        assert content_type == "application/json", (status, content_type, raw[:200])
        return status, json.loads(raw)
    return status, None


@pytest.fixture
def server(tmp_path: Path):
    """A ``cropstack serve --workers 2 --signup`` subprocess (these tests race signups);
    yields its base URL."""
    with running_server(tmp_path, "--signup") as base:
        yield base


@pytest.mark.server
def test_real_server_under_concurrent_requests(server):
    started = time.monotonic()
    status, user = http(server, "POST", "/users", {"email": "a@b.example", "organization": "base"})
    assert status == 200 and set(user) == {"id", "email", "api_key"}
    key = user["api_key"]

    def work(i: int) -> tuple[str, int]:
        if i % 2:
            return "user", http(server, "GET", "/user", key=key)[0]
        body = {"billing_email": "bill@b.example", "display_name": f"Org {i}"}
        return "org", http(server, "PUT", f"/organizations/org-{i}", body, key=key)[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(40)))
    assert all(status < 500 for _, status in results), results
    assert all(status == 200 for _, status in results), results
    # Every organization made it, whichever worker served it.
    status, listed = http(server, "GET", "/user", key=key)
    assert status == 200 and listed["user_id"] == user["id"]
    for i in range(0, 40, 2):
        status, org = http(server, "GET", f"/organizations/org-{i}", key=key)
        assert status == 200 and org["display_name"] == f"Org {i}"
    # Racing signups for one name across both workers: exactly one wins, no 5xx.
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(
            pool.map(
                lambda i: http(
                    server, "POST", "/users", {"email": f"r{i}@b.example", "organization": "race"}
                )[0],
                range(6),
            )
        )
    assert sorted(statuses) == [200] + [409] * 5, statuses
    # Auth still holds over real HTTP.
    status, error = http(server, "GET", "/user", key="wrong")
    assert status == 403 and error["error"]["invalid_authentication"] is True
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "argv,env",
    [
        (["--workers", "0"], {}),
        (["--threads", "0"], {}),
        (["--port", "70000"], {}),
        ([], {"CROPSTACK_BUSY_TIMEOUT_MS": "soon"}),
        ([], {"CROPSTACK_BLOB_STORE": "ftp://files.example/originals"}),
        ([], {"CROPSTACK_BLOB_STORE": "s3://No_Such_Bucket!/x"}),
    ],
)
def test_serve_rejects_bad_arguments_fast(tmp_path, argv, env):
    import os

    result = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "serve", "--data-dir", str(tmp_path), *argv],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr


# -- two processes, one catalog ----------------------------------------------------------

WRITES_PER_PROCESS = 150


def _writer(path: str, tag: str) -> int:
    """Child process: many small write transactions, incl. a read-modify-write counter."""
    backend = SqliteBackend(path)
    for i in range(WRITES_PER_PROCESS):
        with database(backend) as db:
            db.execute(
                "INSERT INTO users (id, email, created) VALUES (?, ?, ?)",
                (f"{tag}-{i}", f"{tag}@x.example", "2020-01-01T00:00:00+00:00"),
            )
            raw = db.rows("SELECT options FROM organizations WHERE id = 'counter'")[0][0]
            count = json.loads(raw)["n"] + 1
            db.execute(
                "UPDATE organizations SET options = ? WHERE id = 'counter'",
                (json.dumps({"n": count}),),
            )
    return WRITES_PER_PROCESS


def test_two_processes_write_one_catalog(tmp_path):
    path = str(tmp_path / "catalog.db")
    backend = SqliteBackend(path)
    backend.migrate()
    with database(backend) as db:
        db.execute(
            "INSERT INTO organizations (id, name, display_name, billing_email, options, "
            "created) VALUES ('counter', 'counter', 'c', 'c@x.example', '{\"n\": 0}', 'now')"
        )
    context = multiprocessing.get_context("spawn")  # never fork a process holding SQLite
    with context.Pool(2) as pool:
        done = pool.starmap(_writer, [(path, "a"), (path, "b")], chunksize=1)
    assert done == [WRITES_PER_PROCESS, WRITES_PER_PROCESS]
    with database(backend) as db:
        users = db.rows("SELECT count(*) FROM users")[0][0]
        raw = db.rows("SELECT options FROM organizations")[0][0]
        assert users == 2 * WRITES_PER_PROCESS
        assert json.loads(raw)["n"] == 2 * WRITES_PER_PROCESS  # no lost update
        assert db.rows("PRAGMA integrity_check")[0][0] == "ok"


# -- a lock held too long ----------------------------------------------------------------


def test_held_write_lock_gives_503_with_retry_after(tmp_path):
    app = create_app({"data_dir": str(tmp_path / "data"), "busy_timeout_ms": 200})
    client = app.test_client()
    account = Account(client, "acme", "a@acme.example")
    blocker = sqlite3.connect(str(tmp_path / "data" / "catalog.db"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        response = account.request("POST", "/user/apikeys", data="{}")
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.get_json()["error"]["code"] == 503
        assert elapsed < 3
        # Reads are not blocked by a writer (WAL).
        assert account.request("GET", "/user").status_code == 200
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert account.request("POST", "/user/apikeys", data="{}").status_code == 200


def _multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "cropstack-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.server
def test_real_server_uploads_same_file_concurrently_and_renders(server):
    """Same bytes from 8 threads across 2 workers: one image, no error; then renders."""
    import numpy as np
    import pyvips

    status, user = http(server, "POST", "/users", {"email": "u@b.example", "organization": "up"})
    assert status == 200
    pixels = np.zeros((60, 80, 3), dtype=np.uint8)
    pixels[20:40, 30:50] = (255, 0, 0)
    data = bytes(pyvips.Image.new_from_array(pixels).copy(interpretation="srgb").pngsave_buffer())
    body, content_type = _multipart("filedata", "red.png", data)

    def upload(_: int) -> tuple[int, str]:
        request = urllib.request.Request(server + "/sourceimages/up", data=body, method="POST")
        request.add_header("Content-Type", content_type)
        request.add_header("Api-Key", user["api_key"])
        for _attempt in range(10):
            try:
                with urllib.request.urlopen(request, timeout=20) as response:
                    return response.status, json.loads(response.read())["items"][0]["hash"]
            except urllib.error.HTTPError as exc:
                # Past the upload places the server answers 503 + Retry-After; rokka
                # clients retry it, and so does this one.
                if exc.code != 503:
                    raise
                time.sleep(float(exc.headers["Retry-After"]))
        raise AssertionError("still 503 after 10 attempts")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(upload, range(8)))
    assert {status for status, _ in results} == {200}
    hashes = {image_hash for _, image_hash in results}
    assert len(hashes) == 1
    status, listed = http(server, "GET", "/sourceimages/up", key=user["api_key"])
    assert status == 200 and listed["total"] == 1

    (image_hash,) = hashes
    url = f"{server}/up/dynamic/crop-width-20-height-20-anchor-30_20/{image_hash}.png"
    with urllib.request.urlopen(url, timeout=20) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/png"
        rendered = pyvips.Image.new_from_buffer(response.read(), "").numpy()
    assert rendered.shape[:2] == (20, 20)
    assert (rendered[..., 0] > 200).all() and (rendered[..., 1] < 50).all()
