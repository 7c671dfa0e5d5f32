"""A real ``cropstack serve`` with its originals on the S3 server (moto_server on
loopback, behind the fault proxy of tests/s3server.py): upload → render → delete → gc,
a full store (507), a store gone away (503, /healthz names it, cached renders still
served) and a start-up without the store (exit status 1, one clear line).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import Account
from tests.engine.conftest import decode, png, scene
from tests.realserver import REPO, free_port, running_server
from tests.s3server import FaultProxy
from tests.webapp.test_server import _multipart, http
from webapp import create_app
from webapp.blobs import parse_s3_location


def _objects(location: str) -> set[str]:
    """The object names under ``location``, listed straight from the S3 server."""
    bucket, prefix = parse_s3_location(location)
    listing = boto3.session.Session().client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"][len(prefix) :] for item in listing.get("Contents", [])}


def _upload(base: str, key: str, data: bytes) -> tuple[int, Any]:
    body, content_type = _multipart("filedata", "scene.png", data)
    request = urllib.request.Request(base + "/sourceimages/acme", data=body, method="POST")
    request.add_header("Content-Type", content_type)
    request.add_header("Api-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def _error(status: int, body: bytes, content_type: str, expected: int) -> dict[str, Any]:
    assert status == expected, body[:300]
    assert content_type == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == expected
    return error


@pytest.mark.server
def test_upload_render_delete_gc_and_faults_on_s3(tmp_path: Path, on_s3: str, s3_server: str):
    with FaultProxy(s3_server) as proxy:
        # Deleted images are not restorable (restore_days 0), so gc may purge at once.
        env = {"AWS_ENDPOINT_URL": proxy.endpoint, "CROPSTACK_RESTORE_DAYS": "0"}
        with running_server(tmp_path, "--signup", env=env) as base:
            status, user = http(base, "POST", "/users", {"email": "a@acme.example",
                                                         "organization": "acme"})  # fmt: skip
            assert status == 200
            key = user["api_key"]
            original = png(scene(120, 90, square=(40, 30, 20)))
            status, body = _upload(base, key, original)
            assert status == 200
            image = body["items"][0]["hash"]
            blob = hashlib.sha256(original).hexdigest()
            assert _objects(on_s3) == {blob}  # the original is on S3 ...
            assert not (tmp_path / "data" / "blobs").exists()  # ... and not on local disk

            url = f"{base}/acme/dynamic/crop-width-20-height-20-anchor-40_30/{image}.png"
            status, rendered, content_type = _get(url)
            assert status == 200 and content_type == "image/png"
            pixels = decode(rendered)
            assert pixels.shape[:2] == (20, 20)
            assert (pixels[..., 0] > 200).all() and (pixels[..., 1] < 60).all()

            # A full store: uploads answer 507, nothing is stored, reads go on.
            proxy.mode = "full"
            status, body = _upload(base, key, png(scene(64, 48)))
            assert status == 507 and "Insufficient storage" in body["error"]["message"]
            assert _objects(on_s3) == {blob}
            status, rows = http(base, "GET", "/sourceimages/acme", key=key)
            assert status == 200 and rows["total"] == 1
            assert _get(url)[0] == 200

            # The store gone away: /healthz names it; uploads and uncached renders 503;
            # cached renders are still served.
            proxy.mode = "down"
            error = _error(*_get(base + "/healthz"), 503)
            assert error["reason"] == "blob_store_unavailable"
            status, body = _upload(base, key, png(scene(64, 48)))
            assert status == 503 and "Blob store unavailable" in body["error"]["message"]
            fresh = f"{base}/acme/dynamic/resize-width-33/{image}.png"
            assert "unavailable" in _error(*_get(fresh), 503)["message"]
            status, cached, _ = _get(url)
            assert status == 200 and cached == rendered
            proxy.mode = "ok"
            assert _get(base + "/healthz")[0] == 200
            status, resized, _ = _get(fresh)
            assert status == 200 and decode(resized).shape[1] == 33

            # Delete, then gc (while the server runs) removes the original from S3.
            status, _ = http(base, "DELETE", f"/sourceimages/acme/{image}", key=key)
            assert status == 204
            assert _get(f"{base}/acme/dynamic/resize-width-34/{image}.png")[0] == 404
            time.sleep(1.1)  # S3 write times are whole seconds; gc --grace 0 keeps "now"
            gc = subprocess.run(
                [sys.executable, "-m", "webapp.cli", "gc", "--data-dir",
                 str(tmp_path / "data"), "--grace", "0"],
                cwd=REPO, env=_env(env), capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert gc.returncode == 0, gc.stderr
            assert "purged 1 expired images and 0 old _preview stacks, removed 1 blobs" in gc.stdout
            assert _objects(on_s3) == set()
            assert _get(f"{base}/acme/dynamic/resize-width-35/{image}.png")[0] == 404


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}


@pytest.mark.server
@pytest.mark.parametrize("problem", ["unreachable", "no bucket"])
def test_serve_without_its_store_exits_with_a_clear_message(
    tmp_path: Path, on_s3: str, problem: str
):
    env = {}
    location = on_s3
    if problem == "unreachable":
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens
    else:
        location = "s3://no-such-bucket-here/originals"
    env["CROPSTACK_BLOB_STORE"] = location
    argv = [sys.executable, "-m", "webapp.cli", "serve", "--port", str(free_port()),
            "--data-dir", str(tmp_path / "data"), "--init"]  # fmt: skip
    result = subprocess.run(
        argv, cwd=REPO, env=_env(env), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"cropstack: cannot start: blob store {location} unavailable: ")
    if problem == "no bucket":
        assert "NoSuchBucket" in last


def test_a_worker_started_while_its_store_is_away_serves_once_it_is_back(
    tmp_path: Path, on_s3: str, s3_server: str, monkeypatch: pytest.MonkeyPatch
):
    """What a gunicorn worker recycled during a store outage does: it starts (the server
    must not stop), /healthz says which dependency is missing, and it heals by itself."""
    with FaultProxy(s3_server) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        proxy.mode = "down"
        app = create_app({"data_dir": str(tmp_path / "data")})
        client = app.test_client()
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.get_json()["error"]["reason"] == "blob_store_unavailable"
        account = Account(client, "acme", "a@acme.example")
        upload = account.request(
            "POST", "/sourceimages/acme", data={"filedata": (io.BytesIO(png(scene(8, 8))), "a.png")}
        )
        assert upload.status_code == 503
        assert upload.get_json()["error"]["message"].startswith("Blob store unavailable")
        proxy.mode = "ok"
        assert client.get("/healthz").get_json() == {"status": "ok"}
        upload = account.request(
            "POST", "/sourceimages/acme", data={"filedata": (io.BytesIO(png(scene(8, 8))), "a.png")}
        )
        assert upload.status_code == 200
        assert len(_objects(on_s3)) == 1
