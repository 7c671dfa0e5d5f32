"""Backup while serving, restore into an empty data directory, every image renders.

A real ``cropstack serve`` takes uploads from a thread while ``cropstack backup`` runs;
the backup is restored with ``cropstack restore`` into a new directory, a second server
is started on it, and every image its catalog holds renders there as on the first.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import pyvips

from tests.realserver import running_server
from tests.webapp.images import jpeg, png
from tests.webapp.livehttp import call, call_json, upload
from tests.webapp.test_cli_users import assert_one_line_failure, cropstack
from tests.webapp.test_metrics import create_user


def decoded(body: bytes) -> np.ndarray:
    return np.asarray(pyvips.Image.new_from_buffer(body, ""))


def all_images(base: str, key: str) -> list[dict]:
    status, listing = call_json(base, "GET", "/sourceimages/acme?limit=2000", key)
    assert status == 200
    return listing["items"]


@pytest.mark.server
@pytest.mark.slow
def test_backup_while_serving_then_restore_and_render_everything(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    key = create_user(first / "data", "acme")
    backup_dir = tmp_path / "backup"
    renders: dict[str, np.ndarray] = {}
    with running_server(first, workers=2) as base:
        for seed in range(5):
            upload(base, key, "acme", png(40 + seed, 30, seed=seed), f"p{seed}.png")
        upload(base, key, "acme", jpeg(64, 48), "photo.jpg")
        stack = {"operations": [{"name": "resize", "options": {"width": 12}}]}
        assert call_json(base, "PUT", "/stacks/acme/thumb", key,
                         body=json.dumps(stack).encode())[0] == 201  # fmt: skip
        before = {item["hash"] for item in all_images(base, key)}

        stop = threading.Event()
        during: list[str] = []

        def keep_uploading() -> None:
            seed = 100
            while not stop.is_set():
                during.append(upload(base, key, "acme", png(16, 16, seed=seed)))
                seed += 1

        uploader = threading.Thread(target=keep_uploading)
        uploader.start()
        try:
            result = cropstack("backup", str(backup_dir), "--data-dir", str(first / "data"))
        finally:
            stop.set()
            uploader.join(timeout=60)
        assert result.returncode == 0, result.stderr
        assert "0 missing, 0 damaged" in result.stdout
        assert during, "no upload ran during the backup"
        for item in all_images(base, key):
            status, _h, body = call(base, "GET", f"/acme/thumb/{item['hash']}.png")
            assert status == 200
            renders[item["hash"]] = decoded(body)
        # A backup never overwrites: the target must be empty.
        assert_one_line_failure(
            cropstack("backup", str(backup_dir), "--data-dir", str(first / "data")),
            contains="is not empty",
        )

    restored = second / "data"
    result = cropstack("restore", str(backup_dir), "--data-dir", str(restored))
    assert result.returncode == 0, result.stderr
    assert_one_line_failure(
        cropstack("restore", str(backup_dir), "--data-dir", str(restored)),
        contains="is not empty",
    )
    with running_server(second, workers=1) as base:
        items = all_images(base, key)
        hashes = {item["hash"] for item in items}
        assert before <= hashes  # everything from before the backup began
        assert hashes <= set(renders)  # nothing that the first server did not hold
        for item in items:
            status, headers, body = call(base, "GET", f"/acme/thumb/{item['hash']}.png")
            assert status == 200 and headers["Content-Type"] == "image/png", item["name"]
            assert np.array_equal(decoded(body), renders[item["hash"]]), item["name"]
            status, _h, original = call(
                base, "GET", f"/sourceimages/acme/{item['hash']}/download", headers={"Api-Key": key}
            )
            assert status == 200 and len(original) == item["size"]


def test_backup_reports_a_damaged_blob_and_restore_refuses_a_non_backup(tmp_path: Path) -> None:
    from webapp import create_app
    from webapp.app import catalog

    data = tmp_path / "data"
    app = create_app({"data_dir": str(data)})
    client = app.test_client()
    with app.app_context():
        user = catalog().accounts.signup("me@example.org", "acme")
    from tests.webapp.images import multipart

    answer = client.post("/sourceimages/acme", data=multipart(png(seed=7)),
                         headers={"Api-Key": user.api_key})  # fmt: skip
    assert answer.status_code == 200
    (blob,) = (data / "blobs").glob("??/??/*")
    blob.write_bytes(b"not what was stored")
    result = cropstack("backup", str(tmp_path / "b"), "--data-dir", str(data))
    assert result.returncode == 1
    assert f"blob {blob.name} is damaged" in result.stderr
    assert f"blob {blob.name} is referenced but missing" not in result.stderr
    assert "1 damaged" in result.stdout
    assert_one_line_failure(
        cropstack("restore", str(tmp_path / "nothing"), "--data-dir", str(tmp_path / "new")),
        contains="is not a backup",
    )
