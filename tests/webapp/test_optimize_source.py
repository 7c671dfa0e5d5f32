"""``optimize_source`` at upload (engine/conversion.py): TIFF and PSD stored converted.

rokka: ``true`` recompresses TIFF and PSD losslessly to PNG, ``jpg`` to a high-quality JPEG
(WebP when not opaque), other formats are left alone; the binary hash stays the original's.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import pyvips

from tests.engine.conftest import decode
from tests.webapp.test_sources import picture, psd


def tiff(alpha: bool = False) -> bytes:
    pixels = np.asarray(picture(90, 60))
    image = pyvips.Image.new_from_array(pixels, interpretation="srgb")
    if alpha:
        image = image.bandjoin(128)
    return image.tiffsave_buffer(compression="none")


def post(account, data: bytes, name: str, optimize: str | None):
    form = {"filedata": (io.BytesIO(data), name)}
    if optimize is not None:
        form["optimize_source"] = optimize
    return account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )


def stored(account, data: bytes, name: str, optimize: str | None) -> dict:
    response = post(account, data, name, optimize)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"][0]


def download(account, image: dict) -> bytes:
    response = account.request("GET", f"/sourceimages/{account.org}/{image['hash']}/download")
    assert response.status_code == 200
    return response.data


def test_true_stores_a_tiff_as_lossless_png(account):
    original = tiff()
    image = stored(account, original, "scan.tiff", "true")
    assert (image["format"], image["mimetype"]) == ("png", "image/png")
    assert (image["width"], image["height"]) == (90, 60)
    assert image["binary_hash"] == hashlib.sha1(original).hexdigest()
    body = download(account, image)
    assert body.startswith(b"\x89PNG") and image["size"] == len(body) < len(original)
    assert np.array_equal(decode(body)[..., :3], np.asarray(picture(90, 60)))
    # the original's binary hash still finds it, and uploading it again is the same image
    found = account.request(
        "GET", f"/sourceimages/{account.org}?binaryHash={image['binary_hash']}"
    ).get_json()
    assert [i["hash"] for i in found["items"]] == [image["hash"]]
    assert stored(account, original, "scan.tiff", "true")["hash"] == image["hash"]


def test_jpg_stores_a_psd_as_jpeg_and_transparent_tiffs_as_webp(account):
    image = stored(account, psd(picture(90, 60)), "layers.psd", "jpg")
    assert (image["format"], image["mimetype"]) == ("jpg", "image/jpeg")
    pixels = decode(download(account, image))
    assert np.abs(pixels.astype(int) - np.asarray(picture(90, 60)).astype(int)).mean() < 4
    transparent = stored(account, tiff(alpha=True), "alpha.tiff", "jpg")
    assert (transparent["format"], transparent["opaque"]) == ("webp", False)
    assert download(account, transparent)[8:12] == b"WEBP"


def test_other_formats_are_stored_as_uploaded(account):
    from tests.webapp.images import jpeg

    original = jpeg(120, 80)
    image = stored(account, original, "photo.jpg", "true")
    assert image["format"] == "jpg"
    assert download(account, image) == original
    plain = stored(account, tiff(), "plain.tiff", None)
    assert plain["format"] == "tiff"
    assert download(account, plain) == tiff()


@pytest.mark.parametrize("value", ["yes please", "gif", "2"])
def test_bad_values_are_400(account, value):
    response = post(account, tiff(), "scan.tiff", value)
    assert response.status_code == 400
    assert "optimize_source" in response.get_json()["error"]["message"]
