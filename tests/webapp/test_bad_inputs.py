"""Hostile uploads and requests (shared/bad-inputs.md §5): the right 4xx, nothing stored."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from flask import Flask

from tests.webapp.conftest import Member
from tests.webapp.images import cmyk_jpeg, gif, jpeg, multipart, png, png16, png_header_only
from webapp import create_app

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&xxe;</text></svg>"""

LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(9)
    )
    + b']><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text>&j;</text></svg>'
)

HUGE_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"></svg>'


def rows_and_blobs(app: Flask) -> tuple[int, int]:
    from tests.webapp.catalogsql import database

    with database(app) as db:
        rows = db.rows("SELECT COUNT(*) AS n FROM sourceimages")[0]["n"]
    blobs = len(list(app.extensions["cropstack.blobs"].list()))
    return rows, blobs


def post(member, data: bytes, name: str = "x.bin"):
    return member.request("POST", f"/sourceimages/{member.org}", data=multipart(data, name))


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("truncated jpeg", jpeg(600, 400)[: len(jpeg(600, 400)) // 2]),
        ("png header 100000x100000", png_header_only(100_000, 100_000)),
        ("svg xxe", XXE),
        ("svg billion laughs", LAUGHS),
        ("svg 100000x100000", HUGE_SVG),
        ("pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"),
        ("vips native", b"\x08\xf2\xa6\xb6" + b"\x00" * 60),
        ("csv", b"1,2,3\n4,5,6\n"),
        ("text", b"hello, I am not an image"),
        ("html", b"<html><body>hi</body></html>"),
        ("empty", b""),
    ],
)
def test_unusable_files_are_422_and_store_nothing(app, acme, label, data):
    response = post(acme, data)
    assert response.status_code == 422, (label, response.get_data(as_text=True))
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json()["error"]["code"] == 422
    assert rows_and_blobs(app) == (0, 0)


def test_bad_file_fails_the_whole_request(app, acme):
    form = multipart(png(seed=1))
    form["second"] = (__import__("io").BytesIO(b"not an image"), "bad.png")
    response = acme.request("POST", "/sourceimages/acme", data=form)
    assert response.status_code == 422
    assert rows_and_blobs(app) == (0, 0)


def test_pixel_and_frame_caps(tmp_path: Path, client):
    app = create_app(
        {"data_dir": str(tmp_path / "d"), "max_source_pixels": 10_000, "max_source_frames": 3}
    )
    member = Member(app, app.test_client(), "acme", ["admin"])
    assert post(member, png(100, 100)).status_code == 200  # exactly the cap: allowed
    assert post(member, png(101, 100)).status_code == 422
    three = post(member, gif(3))
    assert three.status_code == 200 and three.get_json()["items"][0]["animated"] is True
    assert post(member, gif(4)).status_code == 422  # too many frames
    big = create_app({"data_dir": str(tmp_path / "e"), "max_source_pixels": 1000})
    m2 = Member(big, big.test_client(), "acme", ["admin"])
    assert post(m2, gif(20, size=10)).status_code == 422  # 10*10*20 frames > 1000


def test_exif_orientation_swaps_dimensions(acme):
    image = post(acme, jpeg(300, 200, orientation=6), "o.jpg").get_json()["items"][0]
    assert (image["width"], image["height"]) == (200, 300)
    plain = post(acme, jpeg(300, 200, orientation=1), "p.jpg").get_json()["items"][0]
    assert (plain["width"], plain["height"]) == (300, 200)


def test_cmyk_and_16bit_are_accepted(acme):
    cmyk = post(acme, cmyk_jpeg(), "c.jpg")
    assert cmyk.status_code == 200 and cmyk.get_json()["items"][0]["format"] == "jpg"
    deep = post(acme, png16(), "d.png")
    assert deep.status_code == 200 and deep.get_json()["items"][0]["format"] == "png"


def test_alpha_decides_opaque(acme):
    assert post(acme, png(seed=2, alpha=True)).get_json()["items"][0]["opaque"] is True
    assert post(acme, png(seed=2)).get_json()["items"][0]["opaque"] is True


def test_upload_over_limit_is_413_and_leaves_no_tmp(tmp_path: Path):
    app = create_app({"data_dir": str(tmp_path / "d"), "max_upload_bytes": 2000})
    member = Member(app, app.test_client(), "acme", ["admin"])
    response = post(member, png(64, 64, seed=3))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == 413
    assert app.extensions["cropstack.blobs"].sweep_partial(older_than_s=0) == 0
    assert rows_and_blobs(app) == (0, 0)
    # A huge JSON body anywhere is refused before parsing too.
    small = post(member, png(4, 4, seed=3)).get_json()["items"][0]
    path = f"/sourceimages/acme/{small['hash']}/name"
    big = member.request("PUT", path, data='"' + "a" * 5000 + '"')
    assert big.status_code == 413


def test_deeply_nested_json_is_400(acme):
    image = post(acme, png(seed=4)).get_json()["items"][0]
    body = "[" * 100_000 + "]" * 100_000
    response = acme.request(
        "PUT", f"/sourceimages/acme/{image['hash']}/meta/dynamic/subject_area", data=body
    )
    assert response.status_code == 400


def test_disk_full_is_507_and_stores_nothing(on_local_disk, app, acme, monkeypatch):
    import webapp.blobs.local

    def no_space(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(webapp.blobs.local.os, "fsync", no_space)
    response = post(acme, png(seed=5))
    assert response.status_code == 507
    monkeypatch.undo()
    assert rows_and_blobs(app) == (0, 0)
    assert app.extensions["cropstack.blobs"].sweep_partial(older_than_s=0) == 0
    assert post(acme, png(seed=5)).status_code == 200


def test_svg_from_buffer_is_allowed_but_stored_verbatim(acme, cartman):
    response = post(acme, cartman, "cartman.svg")
    assert response.status_code == 200
