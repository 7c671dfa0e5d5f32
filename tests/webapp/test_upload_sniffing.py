"""Uploads that are no image are refused from their first bytes, before the body is parsed."""

from __future__ import annotations

import io

import numpy as np
import pytest
import pyvips

import engine
from tests.conftest import Account
from tests.hostilefiles import junk_upload, photo_jpeg


def _upload(account: Account, data: bytes, name: str):
    form = {"filedata": (io.BytesIO(data), name)}
    return account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )


def _noise_png(width: int, height: int) -> bytes:
    pixels = np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return pyvips.Image.new_from_array(pixels).copy(interpretation="srgb").pngsave_buffer()


def test_header_first_formats_need_a_header_in_their_prefix():
    jpeg = photo_jpeg(3000, 2000, 1)
    assert engine.header_in_prefix(jpeg[: len(jpeg) // 4])
    assert not engine.header_in_prefix(junk_upload(1))
    tiff = pyvips.Image.black(64, 64).tiffsave_buffer()
    assert engine.header_in_prefix(tiff[:16])  # a TIFF prefix proves nothing: not refused
    assert engine.recognised(b"\x89PNG\r\n\x1a\n" + bytes(100))
    assert engine.recognised(b"%PDF-1.7\n" + bytes(100))  # engine/foreign.py reads PDF
    assert not engine.recognised(b"%!PS-Adobe-3.0 EPSF-3.0\n" + bytes(100))


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"<html>" + bytes(5 * 2**20), "page.jpg"),  # no loader knows its first bytes
        (junk_upload(20), "junk.jpg"),  # JPEG magic, then 20 MB of zeros: no header
    ],
)
def test_non_images_are_refused_with_422(account, data: bytes, name: str):
    response = _upload(account, data, name)
    assert response.status_code == 422
    assert response.get_json()["error"] == {
        "code": 422,
        "message": "not an image, or an unsupported format",
    }
    assert account.request("GET", f"/sourceimages/{account.org}").get_json()["total"] == 0


def test_real_images_past_the_prefix_limit_are_accepted(account):
    big = _noise_png(3200, 2000)
    assert len(big) > 16 * 2**20  # past the 16 MB header check
    response = _upload(account, big, "noise.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    item = response.get_json()["items"][0]
    assert (item["width"], item["height"], item["format"]) == (3200, 2000, "png")
