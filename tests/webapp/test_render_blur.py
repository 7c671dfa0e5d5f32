"""``GET /{org}/{stack}/{hash}.blur``: the BlurHash of the render, as rokka's docs show it."""

from __future__ import annotations

import blurhash
import numpy as np

from tests.engine.conftest import png, scene
from tests.webapp.images import gif
from tests.webapp.test_render_headers import put_stack, upload

LONG_CACHE = "public, max-age=31536000, immutable"


def _red_square(account) -> str:  # noqa: ANN001
    return upload(account, png(scene(200, 100, square=(120, 20, 60))), "scene.png")


def test_blur_answers_the_hash_as_text(client, account):
    image = _red_square(account)
    response = client.get(
        f"/{account.org}/dynamic/crop-width-60-height-60-anchor-120_20/{image}.blur"
    )
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.headers["Cache-Control"] == LONG_CACHE
    text = response.get_data(as_text=True)
    assert blurhash.components(text) == (4, 3) and len(text) == 28
    decoded = np.asarray(blurhash.decode(text, 16, 16), dtype=float).mean(axis=(0, 1))
    assert decoded[0] > 230 and decoded[1] < 30 and decoded[2] < 30  # the red square
    # Conditional requests and HEAD like every render.
    etag = response.headers["ETag"]
    assert (
        client.get(
            f"/{account.org}/dynamic/crop-width-60-height-60-anchor-120_20/{image}.blur",
            headers={"If-None-Match": etag},
        ).status_code
        == 304
    )
    head = client.head(f"/{account.org}/dynamic/crop-width-60-height-60-anchor-120_20/{image}.blur")
    assert head.status_code == 200 and head.mimetype == "text/plain"


def test_blur_of_a_stored_stack_and_of_its_png_differ_only_in_format(client, account):
    image = _red_square(account)
    put_stack(account, "thumb", {"operations": [{"name": "resize", "options": {"width": 50}}]})
    blur = client.get(f"/{account.org}/thumb/{image}.blur")
    as_png = client.get(f"/{account.org}/thumb/{image}.png")
    assert blur.status_code == 200 and as_png.status_code == 200
    assert blur.headers["ETag"] != as_png.headers["ETag"]
    # Served again (from the render cache) it is the same text.
    assert client.get(f"/{account.org}/thumb/{image}.blur").data == blur.data


def test_autoformat_never_turns_a_hash_into_an_image(client, account):
    image = _red_square(account)
    response = client.get(
        f"/{account.org}/dynamic/options-autoformat-true/{image}.blur",
        headers={"Accept": "image/avif,image/webp,*/*"},
    )
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert blurhash.components(response.get_data(as_text=True)) == (4, 3)


def test_animation_hashes_its_first_frame(client, account):
    image = upload(account, gif(3, size=20), "moving.gif")
    response = client.get(f"/{account.org}/dynamic/noop/{image}.blur")
    assert response.status_code == 200
    assert len(response.get_data(as_text=True)) == 28


def test_blur_errors_are_the_usual_json(client, account):
    image = _red_square(account)
    bad = client.get(f"/{account.org}/dynamic/resize-width-0/{image}.blur")
    assert bad.status_code == 400 and "width" in bad.get_json()["error"]["message"]
    missing = client.get(f"/{account.org}/dynamic/noop/{'0' * 40}.blur")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == 404
    huge = client.get(
        f"/{account.org}/dynamic/resize-width-9000-height-9000-mode-absolute/{image}.blur"
    )
    assert huge.status_code == 400 and huge.get_json()["error"]["code"] == 400
