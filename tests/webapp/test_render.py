"""Render URLs through the whole Flask app: pixels, headers, statuses."""

from __future__ import annotations

import io
import json
import threading

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Account
from tests.engine.conftest import decode, png, red_centre, red_mask, scene
from webapp import create_app
from webapp.renderpool import pool_for
from webapp.signing import signature


def upload(account, data: bytes, name: str = "scene.png", **fields: str) -> dict:
    form = {"filedata": (io.BytesIO(data), name), **fields}
    response = account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.get_json()["items"][0]


def set_area(account, image_hash: str, kind: str, area: dict) -> str:
    response = account.request(
        "PUT",
        f"/sourceimages/{account.org}/{image_hash}/meta/dynamic/{kind}",
        data=json.dumps(area),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["hash"]


def configured(tmp_path, org: str, **settings: object) -> tuple[Flask, FlaskClient, str]:
    """An app with ``settings``, an admin of ``org``, and one uploaded 100x80 image's hash."""
    app = create_app({"data_dir": str(tmp_path / "d"), **settings})
    client = app.test_client()
    account = Account(client, org, f"admin@{org}.example")
    return app, client, upload(account, png(scene(100, 80)))["hash"]


@pytest.fixture
def square_image(account) -> str:
    """A 400x300 grey PNG with a red 40x40 square at (320, 220), and no areas."""
    return upload(account, png(scene(400, 300, square=(320, 220, 40))))["hash"]


def get(client, url: str, **headers: str):
    return client.get(url, headers=headers)


def test_subject_area_is_centred_by_auto_crop(client, account, square_image):
    with_area = set_area(
        account, square_image, "subject_area", {"x": 320, "y": 220, "width": 40, "height": 40}
    )
    response = get(client, f"/{account.org}/dynamic/crop-width-100-height-100/{with_area}.png")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    pixels = decode(response.data)
    assert pixels.shape[:2] == (100, 100)
    x, y = red_centre(pixels)
    # the box 290..390 x 190..290 is centred on the square (340, 240)
    assert abs(x - 49.5) <= 1.5 and abs(y - 49.5) <= 1.5


def test_without_area_a_centred_crop_misses_the_square(client, account, square_image):
    response = get(client, f"/{account.org}/dynamic/crop-width-100-height-100/{square_image}.png")
    assert response.status_code == 200
    assert not red_mask(decode(response.data)).any()


def test_crop_area_is_cut_exactly(client, account, square_image):
    cropped = set_area(
        account, square_image, "crop_area", {"x": 300, "y": 200, "width": 80, "height": 60}
    )
    response = get(
        client, f"/{account.org}/dynamic/crop-width-16-height-9-mode-ratio/{cropped}.png"
    )
    pixels = decode(response.data)
    assert pixels.shape[:2] == (60, 80)
    x, y = red_centre(pixels)
    assert abs(x - 39.5) <= 1.5 and abs(y - 39.5) <= 1.5


def test_named_area_and_its_fallback(client, account, square_image):
    areas = {"landscape_16_9": {"crop_area": {"x": 240, "y": 180, "width": 160, "height": 90}}}
    with_multi = set_area(account, square_image, "multi_areas", areas)
    url = "/{org}/dynamic/crop-width-16-height-9-mode-ratio-area-landscape_16_9/{h}.png"
    named = decode(get(client, url.format(org=account.org, h=with_multi)).data)
    assert named.shape[:2] == (90, 160)
    x, y = red_centre(named)  # the square (320..360, 220..260) inside the 240,180 area
    assert abs(x - 99.5) <= 1.5 and abs(y - 59.5) <= 1.5
    plain = decode(get(client, url.format(org=account.org, h=square_image)).data)
    assert plain.shape[:2] == (225, 400)  # the largest centred 16:9 box of 400x300
    x, y = red_centre(plain)  # box y 37.5..262.5, so the square centre 240 lands at 202.5
    assert abs(x - 339.5) <= 1.5 and abs(y - 202) <= 1.5


def test_resize_then_crop_keeps_the_subject(client, account, square_image):
    with_area = set_area(
        account, square_image, "subject_area", {"x": 320, "y": 220, "width": 40, "height": 40}
    )
    stack = {
        "operations": [
            {"name": "resize", "options": {"width": 200, "height": 200, "mode": "fill"}},
            {"name": "crop", "options": {"width": 200, "height": 200}},
        ]
    }
    put = account.request("PUT", f"/stacks/{account.org}/square", data=json.dumps(stack))
    assert put.status_code == 201
    pixels = decode(get(client, f"/{account.org}/square/{with_area}.png").data)
    assert pixels.shape[:2] == (200, 200)
    assert red_mask(pixels).any()


def test_headers_etag_and_304(client, account, square_image):
    url = f"/{account.org}/dynamic/resize-width-50/{square_image}/some-slug.jpg"
    first = get(client, url)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "image/jpeg"
    assert first.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Vary" not in first.headers
    etag = first.headers["ETag"]
    assert etag.startswith('"')
    again = get(client, url, **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert get(client, url).data == first.data  # cache hit, same bytes
    head = client.head(url)
    assert head.status_code == 200 and head.data == b""


def test_short_hash_and_autoformat(client, account, square_image):
    url = f"/{account.org}/dynamic/resize-width-50--o-autoformat-true/{square_image[:6]}.png"
    webp = get(client, url, Accept="image/webp,*/*")
    assert webp.status_code == 200
    assert webp.headers["Content-Type"] in ("image/webp", "image/avif")
    assert webp.headers["Vary"] == "Accept"
    plain = get(client, url, Accept="image/png")
    assert plain.headers["Content-Type"] == "image/png"
    assert plain.headers["ETag"] != webp.headers["ETag"]


def test_content_disposition_and_source_file(client, account, square_image):
    stacks = {
        "dl": {"operations": [{"name": "noop"}], "options": {"content_disposition": "attachment"}},
        "orig": {"operations": [], "options": {"source_file": True}},
    }
    for name, body in stacks.items():
        assert (
            account.request(
                "PUT", f"/stacks/{account.org}/{name}", data=json.dumps(body)
            ).status_code
            == 201
        )
    attached = get(client, f"/{account.org}/dl/{square_image}.png")
    assert attached.headers["Content-Disposition"].startswith("attachment")
    original = get(client, f"/{account.org}/orig/{square_image}.jpg")
    assert original.status_code == 200
    assert original.headers["Content-Type"] == "image/png"
    assert original.data == png(scene(400, 300, square=(320, 220, 40)))


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/{org}/dynamic/resize-width-0/{h}.png", 400),
        ("/{org}/dynamic/resize-width-1_0/{h}.png", 400),
        ("/{org}/dynamic/rotate-angle-nan/{h}.png", 400),
        ("/{org}/dynamic/addframes/{h}.png", 400),
        ("/{org}/dynamic/resize-width-[$w]/{h}.png", 400),
        ("/{org}/dynamic/resize-width-10000-height-10000-mode-absolute--o-dpr-10/{h}.png", 400),
        ("/{org}/dynamic/noop--o-dpr-2/{h}.png", 400),
        ("/{org}/dynamic/noop/{h}.bmp", 400),
        ("/{org}/nostack/{h}.png", 404),
        ("/{org}/dynamic/noop/{missing}.png", 404),
        ("/{org}/dynamic/noop/ABCDEF.png", 404),
        ("/{org}/dynamic/noop/..%2F..%2Fetc%2Fpasswd.png", 404),
        ("/{org}/dynamic/noop/{h}.jpg.png", 404),
        ("/nosuchorg/dynamic/noop/{h}.png", 404),
        ("/sourceimages/dynamic/noop/{h}.png", 404),
    ],
)
def test_bad_render_urls(client, account, square_image, path, status):
    url = path.format(org=account.org, h=square_image, missing="0" * 40)
    response = get(client, url)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json()["error"]["code"] == status


def test_deleted_image_is_404(client, account, square_image):
    url = f"/{account.org}/dynamic/noop/{square_image}.png"
    assert get(client, url).status_code == 200
    assert (
        account.request("DELETE", f"/sourceimages/{account.org}/{square_image}").status_code == 204
    )
    assert get(client, url).status_code == 404


def test_render_domain_host(tmp_path):
    _, client, image = configured(tmp_path, "acme", render_domain="img.test")
    response = client.get(
        f"/dynamic/resize-width-10/{image}.png", headers={"Host": "acme.img.test"}
    )
    assert response.status_code == 200
    assert decode(response.data).shape[1] == 10


def test_protected_stack_needs_signature(client, account, square_image):
    body = {"operations": [{"name": "noop"}], "options": {"protected": True}}
    assert (
        account.request("PUT", f"/stacks/{account.org}/secret", data=json.dumps(body)).status_code
        == 201
    )
    org = account.request("GET", f"/organizations/{account.org}").get_json()
    key = org["signing_keys"][0]["key"]
    path = f"/{account.org}/secret/{square_image}.png"
    assert get(client, path).status_code == 403
    assert get(client, path + "?sig=0000000000000000").status_code == 403
    assert get(client, f"{path}?sig={signature(path, key)}").status_code == 200
    unprefixed = f"/secret/{square_image}.png"
    assert get(client, f"{path}?sig={signature(unprefixed, key)}").status_code == 200


def test_image_cache_purge_route(client, account, square_image, app):
    url = f"/{account.org}/dynamic/resize-width-40/{square_image}.png"
    assert get(client, url).status_code == 200
    assert get(client, url.replace("width-40", "width-30")).status_code == 200
    assert get(client, url.replace(".png", ".webp")).status_code == 200
    cache_root = app.extensions["cropstack.render_cache"].root
    assert list(cache_root.rglob("*.png"))
    purge = account.request("DELETE", f"/sourceimages/{account.org}/{square_image[:8]}/cache")
    assert purge.status_code == 200
    assert purge.get_json() == {
        "status": "ok",
        "items": [
            f"/{account.org}/dynamic/{square_image}.png",
            f"/{account.org}/dynamic/{square_image}.webp",
        ],
    }
    assert not list(cache_root.rglob("*.png"))
    again = account.request("DELETE", f"/sourceimages/{account.org}/{square_image}/cache")
    assert again.get_json() == {"status": "ok", "items": []}
    assert (
        account.request("DELETE", f"/sourceimages/{account.org}/{'0' * 40}/cache").status_code
        == 404
    )


def test_render_processes_bound_concurrency(tmp_path):
    app, client, image = configured(
        tmp_path, "busy", render_concurrency=1, render_queue_timeout=0.05
    )
    held, release = threading.Event(), threading.Event()
    lane = pool_for(app.extensions["cropstack.settings"]).lanes["cheap"]

    def hold() -> None:
        process = lane.acquire(1.0)
        held.set()
        release.wait(5)
        lane.release(process)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        response = client.get(f"/busy/dynamic/resize-width-10/{image}.png")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.get_json()["error"]["code"] == 503
    finally:
        release.set()
        holder.join()
    assert client.get(f"/busy/dynamic/resize-width-10/{image}.png").status_code == 200


def test_weak_etag_and_source_file_304(client, account, square_image):
    url = f"/{account.org}/dynamic/resize-width-30/{square_image}.png"
    etag = get(client, url).headers["ETag"]
    assert get(client, url, **{"If-None-Match": f"W/{etag}"}).status_code == 304
    assert get(client, url, **{"If-None-Match": '"other", ' + etag}).status_code == 304
    body = {"operations": [], "options": {"source_file": True}}
    put = account.request("PUT", f"/stacks/{account.org}/orig", data=json.dumps(body))
    assert put.status_code == 201
    original = get(client, f"/{account.org}/orig/{square_image}.png")
    again = get(
        client,
        f"/{account.org}/orig/{square_image}.png",
        **{"If-None-Match": original.headers["ETag"]},
    )
    assert again.status_code == 304 and again.data == b""


def test_output_limits_follow_the_settings(tmp_path):
    _, client, image = configured(tmp_path, "small", max_output_side=500, max_render_pixels=40_000)
    too_wide = client.get(f"/small/dynamic/resize-width-501-height-1-mode-absolute/{image}.png")
    assert too_wide.status_code == 400
    assert "too large" in too_wide.get_json()["error"]["message"]
    too_many = client.get(f"/small/dynamic/resize-width-250-height-250-mode-absolute/{image}.png")
    assert too_many.status_code == 400
    fits = client.get(f"/small/dynamic/resize-width-200-height-200-mode-absolute/{image}.png")
    assert fits.status_code == 200
