"""Uploads received into a file of the blob store and stored from it by rename
(webapp/uploadspool.py), and multipart bodies read straight from the socket.

What a user sees: the stored original is the uploaded bytes under their SHA-256, a refused
file leaves no blob, no row and no temporary file, a JPEG whose metadata is longer than
the head the server reads first still uploads, a damaged stored copy is healed by
uploading the bytes again, and a connection stays usable across uploads, refused or not.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import json
import uuid
from pathlib import Path

import pytest
import pyvips
from flask import Flask

from tests.conftest import Account
from tests.hostilefiles import photo_jpeg
from tests.realserver import running_server
from tests.webapp.test_bad_inputs import rows_and_blobs


def _upload(account: Account, data: bytes, name: str = "photo.jpg"):
    form = {"filedata": (io.BytesIO(data), name)}
    return account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )


@pytest.fixture
def data_dir(on_local_disk: None, app: Flask) -> Path:
    return Path(app.extensions["cropstack.settings"].data_dir)


def test_the_stored_original_is_the_uploaded_bytes(data_dir: Path, app: Flask, account):
    jpeg = photo_jpeg(1200, 800, 21)
    response = _upload(account, jpeg)
    assert response.status_code == 200, response.get_data(as_text=True)
    item = response.get_json()["items"][0]
    assert item["binary_hash"] == hashlib.sha1(jpeg).hexdigest()
    assert (item["width"], item["height"], item["size"]) == (1200, 800, len(jpeg))
    key = hashlib.sha256(jpeg).hexdigest()
    assert (data_dir / "blobs" / key[:2] / key[2:4] / key).read_bytes() == jpeg
    assert list((data_dir / "tmp").iterdir()) == []  # the spool's name went with the request
    assert rows_and_blobs(app) == (1, 1)


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_a_truncated_jpeg_leaves_no_blob_no_row_no_temporary_file(
    data_dir: Path, app: Flask, account, cut: float
):
    jpeg = photo_jpeg(1600, 1200, 22)
    response = _upload(account, jpeg[: int(len(jpeg) * cut)])
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == 422
    assert rows_and_blobs(app) == (0, 0)
    assert list((data_dir / "tmp").iterdir()) == []


def test_a_broken_file_among_good_ones_stores_nothing(data_dir: Path, app: Flask, account):
    good = photo_jpeg(800, 600, 23)
    bad = photo_jpeg(800, 600, 24)
    bad = bad[: len(bad) * 3 // 5]
    form = {"filedata": [(io.BytesIO(good), "good.jpg"), (io.BytesIO(bad), "bad.jpg")]}
    response = account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )
    assert response.status_code == 422
    assert rows_and_blobs(app) == (0, 0)
    assert list((data_dir / "tmp").iterdir()) == []


def _with_long_metadata(jpeg: bytes, kilobytes: int) -> bytes:
    """``jpeg`` with ``kilobytes`` of COM segments before its frame header."""
    segment = b"\xff\xfe" + (65_000).to_bytes(2, "big") + b"x" * 64_998
    count = kilobytes * 1024 // len(segment) + 1
    return jpeg[:2] + segment * count + jpeg[2:]


def test_a_jpeg_whose_header_is_past_the_first_read_still_uploads(data_dir: Path, account):
    rotated = pyvips.Image.new_from_buffer(photo_jpeg(900, 600, 25), "").copy()
    rotated.set_type(pyvips.GValue.gint_type, "orientation", 6)
    jpeg = _with_long_metadata(rotated.jpegsave_buffer(Q=85), 600)  # > the 256 KiB head
    response = _upload(account, jpeg)
    assert response.status_code == 200, response.get_data(as_text=True)
    item = response.get_json()["items"][0]
    assert (item["width"], item["height"]) == (600, 900)  # orientation 6: display size


def test_uploading_again_heals_a_damaged_stored_copy(data_dir: Path, app: Flask, account):
    jpeg = photo_jpeg(700, 500, 26)
    first = _upload(account, jpeg).get_json()["items"][0]
    key = hashlib.sha256(jpeg).hexdigest()
    path = data_dir / "blobs" / key[:2] / key[2:4] / key
    path.write_bytes(jpeg[:100] + bytes(len(jpeg) - 100))  # bit rot
    again = _upload(account, jpeg)
    assert again.status_code == 200
    assert again.get_json()["items"][0]["hash"] == first["hash"]
    assert path.read_bytes() == jpeg
    render = account.request("GET", f"/{account.org}/dynamic/resize-width-70/{first['hash']}.png")
    assert render.status_code == 200
    assert rows_and_blobs(app) == (1, 1)


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="filedata"; '
            f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_one_connection_carries_uploads_refusals_and_requests(tmp_path: Path):
    """Multipart bodies are read from the socket past gunicorn's reader: its count of what
    is left must stay exact, or the next request on the connection would be misread."""
    with running_server(tmp_path, "--signup", workers=1) as base:
        connection = http.client.HTTPConnection(base[len("http://") :], timeout=60)
        try:

            def call(method: str, path: str, body: bytes = b"", **headers: str):
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()

            status, answer = call(
                "POST", "/users", b'{"email": "s@spool.example", "organization": "spool"}'
            )
            assert status == 200
            key = json.loads(answer)["api_key"]
            jpeg = photo_jpeg(2400, 1600, 27)
            truncated = photo_jpeg(2400, 1600, 28)
            tiny = photo_jpeg(40, 30, 30)
            for name, data, expected in [
                ("a.jpg", jpeg, 200),
                ("tiny.jpg", tiny, 200),  # whole body read with the headers, by gunicorn
                ("junk.jpg", b"<html>" + bytes(3 * 2**20), 422),  # refused at its first bytes
                ("cut.jpg", truncated[: len(truncated) * 2 // 3], 422),  # refused by the check
                ("a-again.jpg", jpeg, 200),
            ]:
                body, content_type = _multipart(name, data)
                headers = {"Api-Key": key, "Content-Type": content_type}
                status, answer = call("POST", "/sourceimages/spool", body, **headers)
                assert status == expected, answer
                assert json.loads(answer).get("error", {"code": 200})["code"] == expected
            status, answer = call("GET", "/sourceimages/spool", **{"Api-Key": key})
            assert status == 200
            items = json.loads(answer)["items"]
            assert sorted(i["binary_hash"] for i in items) == sorted(
                hashlib.sha1(d).hexdigest() for d in (jpeg, tiny)
            )
        finally:
            connection.close()
        assert list((tmp_path / "data" / "tmp").iterdir()) == []


def test_a_disk_full_while_receiving_is_507_and_leaves_nothing(
    data_dir: Path, app: Flask, account, monkeypatch: pytest.MonkeyPatch
):
    import webapp.uploadspool

    real_pwrite = webapp.uploadspool.os.pwrite

    def full_after_256_kib(fd: int, data: bytes, offset: int) -> int:
        if offset >= 256 * 1024:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(webapp.uploadspool.os, "pwrite", full_after_256_kib)
    response = _upload(account, photo_jpeg(2400, 1600, 29))
    monkeypatch.undo()
    assert response.status_code == 507
    assert response.get_json()["error"]["code"] == 507
    assert rows_and_blobs(app) == (0, 0)
    assert list((data_dir / "tmp").iterdir()) == []
    assert _upload(account, photo_jpeg(2400, 1600, 29)).status_code == 200
