"""Hostile files from shared/bad-inputs.md rows 4, 6 and 10, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyvips

from tests.webapp.images import _chunk, png
from tests.webapp.test_bad_inputs import post


def test_png_with_100000_text_chunks_is_accepted(acme):
    """Row 4: libvips keeps a bounded number of text chunks; the upload works."""
    base = png(20, 10, seed=4)
    text = b"".join(_chunk(b"tEXt", b"key\x00" + str(i).encode()) for i in range(100_000))
    hostile = base[:33] + text + base[33:]  # 8-byte signature + 25-byte IHDR chunk
    response = post(acme, hostile, "chunks.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    image = response.get_json()["items"][0]
    assert (image["width"], image["height"]) == (20, 10)
    assert len(response.get_data()) < 100_000  # no text chunk copied into the answer


def test_gif_screen_larger_than_its_frames_reports_the_loader_size(acme):
    """Row 6: a 20000x20000 logical screen with a 1x1 frame is stored as libvips sees it."""
    one = (pyvips.Image.black(1, 1, bands=3) + 200).cast("uchar").copy(interpretation="srgb")
    data = bytearray(one.gifsave_buffer())
    data[6:10] = (20000).to_bytes(2, "little") * 2  # logical screen width and height
    response = post(acme, bytes(data), "screen.gif")
    assert response.status_code == 200, response.get_data(as_text=True)
    image = response.get_json()["items"][0]
    assert (image["width"], image["height"]) == (1, 1)  # nsgif sizes the canvas by frames


def test_svg_cannot_read_other_blobs(on_local_disk, app, acme):
    """Row 10: an SVG that points at another stored blob renders without it."""
    red = np.zeros((8, 8, 3), dtype=np.uint8)
    red[..., 0] = 255
    secret = pyvips.Image.new_from_array(red).copy(interpretation="srgb").pngsave_buffer()
    assert post(acme, secret, "secret.png").status_code == 200
    store = app.extensions["cropstack.blobs"]
    (key,) = [info.key for info in store.list()]
    # Where a local store keeps it (found by name: the layout is the store's business).
    (target,) = Path(store.location).rglob(key)
    relative = f"../../{key[:2]}/{key[2:4]}/{key}"
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'width="8" height="8">'
        f'<image href="file://{target}" x="0" y="0" width="8" height="8"/>'
        f'<image xlink:href="{relative}" x="0" y="0" width="8" height="8"/>'
        f'<image href="{key}" x="0" y="0" width="8" height="8"/></svg>'
    ).encode()
    uploaded = post(acme, svg, "peek.svg")
    assert uploaded.status_code == 200, uploaded.get_data(as_text=True)
    image_hash = uploaded.get_json()["items"][0]["hash"]
    rendered = acme.client.get(f"/{acme.org}/dynamic/noop/{image_hash}.png")
    assert rendered.status_code == 200
    pixels = pyvips.Image.new_from_buffer(rendered.data, "").numpy()
    assert pixels.shape[:2] == (8, 8)
    if pixels.shape[2] == 4:
        visible = pixels[..., 3] > 0
        assert not (visible & (pixels[..., 0] > 200) & (pixels[..., 1] < 50)).any()
    else:
        assert not ((pixels[..., 0] > 200) & (pixels[..., 1] < 50)).any()
