"""Sources the bundled libvips can't read: HEIC, JPEG XL, PDF, PSD (engine/foreign.py).

Each file is made in the test by its own library (pillow-heif, pillow-jxl-plugin, Pillow's
PDF writer, psd-tools), uploaded through the API, and rendered; the render is decoded and
compared with the picture the file was made from. EPS and video are refused with 415.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.engine.conftest import decode
from tests.webapp.test_render import upload


def picture(width: int = 120, height: int = 80) -> Image.Image:
    """Left half red, right half blue, a green square in the top-left quarter."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] = (220, 30, 30)
    pixels[:, width // 2 :] = (30, 30, 220)
    pixels[5 : height // 4, 5 : width // 4] = (30, 200, 30)
    return Image.fromarray(pixels, "RGB")


def heic(image: Image.Image) -> bytes:
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out, quality=95)
    return out.getvalue()


def jxl(image: Image.Image) -> bytes:
    import pillow_jxl  # noqa: F401

    out = io.BytesIO()
    image.save(out, format="JXL", lossless=True)
    return out.getvalue()


def psd(image: Image.Image) -> bytes:
    from psd_tools import PSDImage

    out = io.BytesIO()
    PSDImage.frompil(image).save(out)
    return out.getvalue()


def pdf(*pages: Image.Image, resolution: float = 72.0) -> bytes:
    out = io.BytesIO()
    pages[0].save(
        out, format="PDF", resolution=resolution, save_all=True, append_images=list(pages[1:])
    )
    return out.getvalue()


def assert_like(rendered: np.ndarray, image: Image.Image, tolerance: float = 12) -> None:
    expected = np.asarray(image.resize((rendered.shape[1], rendered.shape[0])).convert("RGB"))
    assert np.abs(rendered[..., :3].astype(int) - expected.astype(int)).mean() < tolerance


@pytest.mark.parametrize(
    ("fmt", "make", "mime"),
    [
        ("heic", heic, "image/heic"),
        ("jxl", jxl, "image/jxl"),
        ("psd", psd, "image/vnd.adobe.photoshop"),
    ],
)
def test_upload_and_render(client, account, fmt, make, mime):
    image = picture()
    stored = upload(account, make(image), name=f"p.{fmt}")
    assert (stored["width"], stored["height"]) == (120, 80)
    assert stored["format"] == fmt and stored["mimetype"] == mime
    for ext in ("png", "jpg"):
        url = f"/{account.org}/dynamic/resize-width-60/{stored['hash']}.{ext}"
        response = client.get(url)
        assert response.status_code == 200, response.get_data(as_text=True)
        rendered = decode(response.data)
        assert rendered.shape[:2] == (40, 60)
        assert_like(rendered, image)


def test_pdf_pages_and_resolution(client, account):
    first, second = picture(300, 200), Image.new("RGB", (300, 200), (240, 200, 0))
    stored = upload(account, pdf(first, second), name="doc.pdf")
    # 300x200 pt at 200 dpi is 833 px wide, under 1000: rokka doubles to 400 dpi
    assert (stored["width"], stored["height"]) == (1667, 1112)  # PDFium rounds up
    assert stored["format"] == "pdf" and stored["mimetype"] == "application/pdf"
    base = f"/{account.org}/dynamic/resize-width-150"
    page1 = decode(client.get(f"{base}/{stored['hash']}.png").data)
    assert page1.shape[:2] == (100, 150)
    assert_like(page1, first)
    page2 = client.get(f"{base}/o-pdf.page-2/{stored['hash']}.png")
    assert page2.status_code == 200, page2.get_data(as_text=True)
    assert np.abs(decode(page2.data)[..., :3].astype(int) - (240, 200, 0)).max() <= 6
    # pdf.dpi sets the decoded size: 100 dpi is 417 px, doubled to 834 (under 1000)
    native = decode(client.get(f"/{account.org}/dynamic/o-pdf.dpi-100/{stored['hash']}.png").data)
    assert native.shape[:2] == (556, 834)
    missing = client.get(f"{base}/o-pdf.page-3/{stored['hash']}.png")
    assert missing.status_code == 400
    assert "pdf.page 3" in missing.get_json()["error"]["message"]


def test_pdf_budgets(client, account):
    # 900x600 pt: 2500x1667 px at the default 200 dpi; at 1000 dpi 12500x8333 px (104 MP),
    # past the 50 MP render budget: refused before any pixel
    stored = upload(account, pdf(picture(300, 200), resolution=24), name="big.pdf")
    assert (stored["width"], stored["height"]) == (2500, 1667)
    over = client.get(
        f"/{account.org}/dynamic/resize-width-100/o-pdf.dpi-1000/{stored['hash']}.png"
    )
    assert over.status_code == 400
    assert "too large" in over.get_json()["error"]["message"]
    # a page of 150 x 100 inches is 600 MP at upload: refused from its header
    huge = {"filedata": (io.BytesIO(pdf(picture(300, 200), resolution=2)), "huge.pdf")}
    refused = account.request(
        "POST", f"/sourceimages/{account.org}", data=huge, content_type="multipart/form-data"
    )
    assert refused.status_code == 422
    assert "too large" in refused.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"),
        ("mp4", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64)),
        ("webm", b"\x1aE\xdf\xa3" + bytes(64)),
    ],
)
def test_eps_and_video_are_415(account, label, data):
    form = {"filedata": (io.BytesIO(data), f"x.{label}")}
    response = account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )
    assert response.status_code == 415, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == 415
    assert "not supported" in response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("truncated heic", lambda: heic(picture())[:300]),
        ("truncated jxl", lambda: jxl(picture())[:40]),
        ("truncated psd", lambda: psd(picture())[:100]),
        ("pdf without pages", lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"),
        ("psb", lambda: b"8BPS\x00\x02" + bytes(60)),
    ],
)
def test_broken_files_are_422(account, label, data):
    form = {"filedata": (io.BytesIO(data()), "broken.bin")}
    response = account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )
    assert response.status_code == 422, (label, response.get_data(as_text=True))
    assert response.get_json()["error"]["code"] == 422
