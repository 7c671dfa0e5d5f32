"""Fonts uploaded as source images: accepted as TTF/OTF files (never as images), listed and
searchable like images, refused with a 4xx when broken or hostile, never rendered."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from tests.conftest import Account
from tests.engine.conftest import GREY, decode, png, scene
from tests.fontfiles import block_otf, block_ttf
from webapp import create_app


def _upload(account: Account, data: bytes, name: str):
    form = {"filedata": (io.BytesIO(data), name)}
    return account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )


def _error(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == status
    return body["error"]["message"]


def _count(account: Account) -> int:
    return account.request("GET", f"/sourceimages/{account.org}").get_json()["total"]


@pytest.mark.parametrize(
    ("make", "fmt", "mime"), [(block_ttf, "ttf", "font/ttf"), (block_otf, "otf", "font/otf")]
)
def test_a_font_uploads_as_a_source_image(account, make, fmt: str, mime: str):
    data = make()
    response = _upload(account, data, f"Blocks.{fmt}")
    assert response.status_code == 200, response.get_data(as_text=True)
    item = response.get_json()["items"][0]
    assert (item["format"], item["mimetype"], item["name"]) == (fmt, mime, f"Blocks.{fmt}")
    assert (item["width"], item["height"], item["size"]) == (800, 480, len(data))
    # fetched back, downloaded byte for byte
    got = account.request("GET", f"/sourceimages/{account.org}/{item['hash']}")
    assert got.status_code == 200 and got.get_json()["format"] == fmt
    download = account.request("GET", f"/sourceimages/{account.org}/{item['hash']}/download")
    assert download.status_code == 200 and download.data == data


def test_fonts_are_listed_and_searchable_by_format(account):
    _upload(account, png(scene(20, 20)), "a.png")
    font = _upload(account, block_ttf(), "Blocks.ttf").get_json()["items"][0]
    listed = account.request("GET", f"/sourceimages/{account.org}?format=ttf").get_json()
    assert [i["hash"] for i in listed["items"]] == [font["hash"]]
    facets = account.request("GET", f"/sourceimages/{account.org}?facets=format").get_json()
    assert sorted(f["value"] for f in facets["facets"]["format"]) == ["png", "ttf"]


def test_a_font_in_a_batch_with_an_image_stores_both(account):
    form = {
        "a": (io.BytesIO(png(scene(20, 20))), "a.png"),
        "b": (io.BytesIO(block_ttf()), "b.ttf"),
    }
    response = account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [i["format"] for i in response.get_json()["items"]] == ["png", "ttf"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (block_ttf()[:300], "broken"),
        (block_ttf()[:-200], "broken"),
        (b"\x00\x01\x00\x00" + bytes(6000), "broken"),
        (b"OTTO" + b"\xff" * 6000, "broken"),
    ],
)
def test_broken_fonts_are_refused_with_422_and_nothing_is_stored(account, data, message):
    assert message in _error(_upload(account, data, "bad.ttf"), 422)
    assert _count(account) == 0


def test_wrong_magic_is_not_a_font(account):
    # WOFF is not accepted (rokka documents TTF), nor is a font with its magic changed
    for data in (b"wOFF" + block_ttf()[4:], b"wOF2" + bytes(6000)):
        message = _error(_upload(account, data, "font.woff"), 422)
        assert message == "not an image, or an unsupported format"
    assert _count(account) == 0


def test_a_font_over_max_font_bytes_is_refused(tmp_path):
    data = block_ttf()
    app = create_app({"data_dir": str(tmp_path / "d"), "max_font_bytes": len(data) - 1})
    account = Account(app.test_client(), "acme", "admin@acme.example")
    assert "font too large" in _error(_upload(account, data, "big.ttf"), 422)
    assert _count(account) == 0


def test_a_font_is_never_rendered(account):
    font = _upload(account, block_ttf(), "Blocks.ttf").get_json()["items"][0]
    # nor delivered by a stack that delivers originals: fonts are often licensed for use,
    # not for redistribution
    stack = {"operations": [], "options": {"source_file": True}}
    created = account.request("PUT", f"/stacks/{account.org}/orig", data=json.dumps(stack))
    assert created.status_code == 201, created.get_data(as_text=True)
    for url in (
        f"/{account.org}/dynamic/noop/{font['hash']}.png",
        f"/{account.org}/dynamic/resize-width-100/{font['short_hash']}.jpg",
        f"/{account.org}/orig/{font['hash']}.png",
        f"/{account.org}/_iiif/3/{font['hash']}/info.json",
        f"/{account.org}/_iiif/3/{font['hash']}/full/max/0/default.png",
    ):
        message = _error(account.client.get(url), 422)
        assert "is a font" in message and "text operation" in message


# -- the text operation through render URLs -------------------------------------------------


def _image_and_font(account: Account) -> tuple[str, dict]:
    image = _upload(account, png(scene(200, 100)), "scene.png").get_json()["items"][0]
    font = _upload(account, block_ttf(), "Blocks.ttf").get_json()["items"][0]
    return image["hash"], font


def _ink(body: bytes) -> tuple[int, int, int, int]:
    pixels = decode(body)
    ys, xs = np.nonzero(np.any(pixels[..., :3] != GREY, axis=-1))
    assert len(xs), "no text was drawn"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def test_text_renders_in_the_uploaded_font(account):
    image, font = _image_and_font(account)
    for ref in (font["hash"], font["short_hash"]):
        url = f"/{account.org}/dynamic/text-font-{ref}-text-XX-size-20-anchor-10_5/{image}.png"
        response = account.client.get(url)
        assert response.status_code == 200, response.get_data(as_text=True)
        # two 12 x 20 px blocks with their top-left corner at (10, 5)
        assert _ink(response.data) == (10, 5, 33, 24)


def test_text_from_a_stack_variable_sent_in_the_query(account):
    # rokka's documented way to put any text in a URL: a variable, sent as JSON in ?v=
    image, font = _image_and_font(account)
    stack = {
        "operations": [
            {
                "name": "text",
                "options": {"font": font["short_hash"], "size": 20, "anchor": "0_0"},
                "expressions": {"text": "$text1"},
            }
        ],
        "variables": {"text1": "XX"},
    }
    created = account.request("PUT", f"/stacks/{account.org}/caption", data=json.dumps(stack))
    assert created.status_code == 201, created.get_data(as_text=True)
    default = account.client.get(f"/{account.org}/caption/{image}.png")
    assert _ink(default.data) == (0, 0, 23, 19)
    given = account.client.get(
        f"/{account.org}/caption/{image}.png", query_string={"v": json.dumps({"text1": "X-X & X"})}
    )
    assert given.status_code == 200, given.get_data(as_text=True)
    assert _ink(given.data) == (0, 0, 7 * 12 - 1, 19)


def test_a_font_of_another_organization_is_not_found(account, other_account):
    image, _ = _image_and_font(account)
    theirs = _upload(other_account, block_ttf("Theirs"), "t.ttf").get_json()["items"][0]
    url = f"/{account.org}/dynamic/text-font-{theirs['hash']}-text-XX/{image}.png"
    message = _error(account.client.get(url), 404)
    assert theirs["hash"] in message


def test_an_image_is_not_a_font(account):
    image, _ = _image_and_font(account)
    url = f"/{account.org}/dynamic/text-font-{image}-text-XX/{image}.png"
    assert "not a TTF/OTF font" in _error(account.client.get(url), 400)


def test_text_needs_a_font_and_a_text(account):
    image, font = _image_and_font(account)
    for ops in ("text-text-XX", f"text-font-{font['hash']}"):
        message = _error(account.client.get(f"/{account.org}/dynamic/{ops}/{image}.png"), 400)
        assert "is required" in message


def test_too_much_text_is_refused_before_rendering(account):
    image, font = _image_and_font(account)
    stack = {
        "operations": [
            {"name": "text", "options": {"font": font["hash"], "text": "X" * 1000, "size": 1000}}
        ]
    }
    assert (
        account.request("PUT", f"/stacks/{account.org}/huge", data=json.dumps(stack)).status_code
        == 201
    )
    assert "too expensive" in _error(account.client.get(f"/{account.org}/huge/{image}.png"), 400)


def test_rokkas_watermark_demo_stack_renders_a_diagonal_watermark(account):
    # The stack of rokka's "Watermark with Text" demo, with this organization's font.
    image = _upload(account, png(scene(600, 300)), "wide.png").get_json()["items"][0]["hash"]
    font = _upload(account, block_ttf(), "Blocks.ttf").get_json()["items"][0]["short_hash"]
    stack = {
        "operations": [
            {
                "name": "resize",
                "options": {"mode": "fill", "upscale": False},
                "expressions": {"width": "$width"},
            },
            {
                "name": "text",
                "options": {"resize_to_box": True},
                "expressions": {
                    "opacity": "$o",
                    "text": "$t",
                    "width": "$width - 50",
                    "height": "$width / 7",
                    "font": "$font",
                    "color": "$color",
                    "angle": "-rad2deg(atan(image.height / image.width))",
                },
            },
        ],
        "variables": {"width": "500", "t": "My Watermark", "o": 20, "color": "000000"},
    }
    stack["variables"]["font"] = font
    created = account.request("PUT", f"/stacks/{account.org}/watermark", data=json.dumps(stack))
    assert created.status_code == 201, created.get_data(as_text=True)
    response = account.client.get(f"/{account.org}/watermark/{image}.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    pixels = decode(response.data)
    assert pixels.shape[:2] == (250, 500)
    # 20 % black over grey 128 in the middle; the text rises to the right (a negative,
    # counter-clockwise angle): ink near the bottom left and top right corners only
    assert np.allclose(pixels[125, 250], 102, atol=2)
    inked = np.any(pixels != GREY, axis=-1)
    assert inked[200:240, 20:80].any() and inked[10:50, 420:480].any()
    assert not inked[0:40, 0:60].any() and not inked[210:250, 440:500].any()


def test_text_inside_a_secondary_stack_gets_its_font(account):
    # rokka's template demo: a sub stack draws white text on a coloured box, the main
    # stack puts that box on the image with composition's secondary_stack.
    image = _upload(account, png(scene(300, 200)), "scene.png").get_json()["items"][0]["hash"]
    font = _upload(account, block_ttf(), "Blocks.ttf").get_json()["items"][0]["short_hash"]
    sub = {
        "operations": [
            {
                "name": "composition",
                "options": {
                    "mode": "background",
                    "width": 120,
                    "height": 40,
                    "empty_primary": True,
                    "secondary_color": "0000FF",
                },
            },
            {
                "name": "text",
                "options": {"font": font, "text": "XX", "size": 20, "color": "FFFFFF"},
            },
        ]
    }
    main = {
        "operations": [
            {
                "name": "composition",
                "options": {"mode": "background", "secondary_stack": "box", "anchor": "10_10"},
            }
        ]
    }
    for name, stack in (("box", sub), ("framed", main)):
        created = account.request("PUT", f"/stacks/{account.org}/{name}", data=json.dumps(stack))
        assert created.status_code == 201, created.get_data(as_text=True)
    response = account.client.get(f"/{account.org}/framed/{image}.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    pixels = decode(response.data)
    # the 120 x 40 blue box at (10, 10), the 24 x 20 white text centred in it
    assert tuple(pixels[12, 12, :3]) == (0, 0, 255)
    assert tuple(pixels[30, 70, :3]) == (255, 255, 255)
    white = np.all(pixels[..., :3] == 255, axis=-1)
    ys, xs = np.nonzero(white)
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (58, 20, 81, 39)
