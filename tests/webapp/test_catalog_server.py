"""A real ``cropstack serve`` on a real PostgreSQL catalog (tests/postgres.py).

* uploads (the same file from 8 threads at once: one image), search, renders;
* a database that cannot be reached stops the start with a one-line message, status 1;
* a database that goes away while serving: /healthz and API calls answer 503 in the
  error shape, and both recover when it comes back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.postgres import PostgresForTests
from tests.realserver import REPO, free_port, running_server
from tests.webapp.images import png


def call(base: str, method: str, path: str, *, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
    """One request over HTTP: (status, parsed JSON or None)."""
    request = urllib.request.Request(base + path, data=body, method=method)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, raw, content_type = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    if content_type == "application/json":
        return status, json.loads(raw)
    return status, raw


def form(data: bytes, name: str, fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body with one file (``filedata``) and text fields."""
    boundary = "cropstack-catalog-test"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="filedata"; '
        f'filename="{name}"\r\nContent-Type: image/png\r\n\r\n'.encode()
        + data
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


@pytest.fixture
def database(postgres: PostgresForTests):
    url = postgres.new_database()
    yield url
    postgres.drop(url)


@pytest.mark.server
def test_serve_on_postgresql(tmp_path: Path, database: str):
    env = {"CROPSTACK_DATABASE_URL": database}
    with running_server(tmp_path, "--signup", env=env) as base:
        signup = json.dumps({"email": "u@b.example", "organization": "up"}).encode()
        status, user = call(base, "POST", "/users", body=signup)
        assert status == 200, user
        key = {"Api-Key": user["api_key"]}
        data = png(80, 60, seed=3)
        body, content_type = form(data, "Quiet Lake.png", {"meta_user[0]": '{"k": "v"}'})

        def upload(_: int) -> tuple[int, str]:
            for _attempt in range(10):
                status, answer = call(base, "POST", "/sourceimages/up", body=body,
                                      headers={**key, "Content-Type": content_type})  # fmt: skip
                if status != 503:  # past the upload places: retry, as rokka clients do
                    return status, answer["items"][0]["hash"]
                time.sleep(1)
            raise AssertionError("still 503 after 10 attempts")

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(upload, range(8)))
        assert {status for status, _ in results} == {200}
        assert len({image_hash for _, image_hash in results}) == 1  # one image
        image_hash = results[0][1]
        status, found = call(base, "GET", "/sourceimages/up?name_text=lakes&user:str:k=v",
                             headers=key)  # fmt: skip
        assert status == 200 and [i["hash"] for i in found["items"]] == [image_hash]
        status, rendered = call(base, "GET", f"/up/dynamic/resize-width-40/{image_hash}.png")
        assert status == 200 and rendered[:8] == b"\x89PNG\r\n\x1a\n"
        status, _ = call(base, "DELETE", f"/sourceimages/up/{image_hash}", headers=key)
        assert status == 204
        status, gone = call(base, "GET", f"/sourceimages/up/{image_hash}", headers=key)
        assert status == 404 and gone["error"]["code"] == 404
    # The catalog lives in PostgreSQL: no SQLite file was made.
    assert not (tmp_path / "data" / "catalog.db").exists()
    with psycopg.connect(database) as conn:
        (count,) = conn.execute("SELECT count(*) FROM sourceimages").fetchone()
    assert count == 1


def test_serve_exits_when_the_database_cannot_be_reached(tmp_path: Path):
    closed = f"postgresql://cropstack@127.0.0.1:{free_port()}/catalog"
    argv = [sys.executable, "-m", "webapp.cli", "serve", "--port", str(free_port()),
            "--data-dir", str(tmp_path / "data"), "--init"]  # fmt: skip
    result = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "CROPSTACK_DATABASE_URL": closed},
    )  # fmt: skip
    assert result.returncode == 1
    # The JSON start-up line (webapp/startup.py), then one line saying why it stopped.
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("{")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cropstack: cannot reach the catalog database")
    assert "127.0.0.1" in lines[0] and "Traceback" not in result.stderr
    start = json.loads(result.stderr.splitlines()[0])
    assert start["catalog"].startswith("postgresql:") and "127.0.0.1" in start["catalog"]


def _allow_connections(postgres: PostgresForTests, url: str, allowed: bool) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(postgres.admin_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(allowed).lower()}")
        if not allowed:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )


def _wait_for(predicate: Any, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = predicate()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.3)


@pytest.mark.server
def test_healthz_reports_a_database_that_went_away(
    tmp_path: Path, database: str, postgres: PostgresForTests
):
    env = {"CROPSTACK_DATABASE_URL": database, "CROPSTACK_BUSY_TIMEOUT_MS": "1000"}
    with running_server(tmp_path, "--signup", env=env, workers=1) as base:
        assert call(base, "GET", "/healthz") == (200, {"status": "ok"})
        _allow_connections(postgres, database, False)
        try:
            down = _wait_for(lambda: call(base, "GET", "/healthz")[0] == 503)
            assert down, "healthz still 200 with the database gone"
            status, answer = call(base, "GET", "/healthz")
            assert status == 503
            assert answer["error"]["code"] == 503
            assert answer["error"]["reason"] == "catalog_unavailable"
            status, answer = call(base, "GET", "/stacks/up", headers={"Api-Key": "x" * 64})
            assert status == 503 and answer["error"]["code"] == 503
        finally:
            _allow_connections(postgres, database, True)
        assert _wait_for(lambda: call(base, "GET", "/healthz")[0] == 200)


def test_users_create_and_gc_on_postgresql(tmp_path: Path, database: str):
    """The operator commands work on the PostgreSQL catalog too."""
    env = {"PATH": "/usr/bin:/bin", "CROPSTACK_DATABASE_URL": database}
    argv = [sys.executable, "-m", "webapp.cli", "users", "create", "--email", "a@b.example",
            "--organization", "pgorg", "--data-dir", str(tmp_path / "data")]  # fmt: skip
    made = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert made.returncode == 0, made.stderr
    user = json.loads(made.stdout)
    again = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert again.returncode == 2 and "pgorg already exists" in again.stderr
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT o.name FROM memberships m JOIN organizations o ON o.id = m.organization_id "
            "WHERE m.user_id = %s",
            (user["id"],),
        ).fetchall()
    assert rows == [("pgorg",)]
    (tmp_path / "data").mkdir()  # blobs and the render cache live there; no catalog.db
    gc = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "gc", "--data-dir", str(tmp_path / "data")],
        cwd=REPO, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert gc.returncode == 0, gc.stderr
    assert gc.stdout.startswith("purged 0 expired images")
