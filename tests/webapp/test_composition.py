"""composition with a secondary image through the whole app: the image is found in the
render's organization (never another's), travels to the render process and counts in the
render's budget."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import pyvips

from tests.conftest import Account
from tests.engine.conftest import GREY, decode, png, scene
from tests.webapp.test_render import set_area, upload
from webapp import create_app
from webapp.signing import signature

BLUE = (0, 0, 255)


def blue_mask(pixels: np.ndarray) -> np.ndarray:
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r < 60) & (g < 60) & (b > 200)


def _error(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["error"]["code"] == status
    return body["error"]["message"]


@pytest.fixture
def images(account) -> tuple[str, dict]:
    """(hash of a 100x80 grey primary, the upload answer of a 20x10 blue watermark)."""
    primary = upload(account, png(scene(100, 80)))["hash"]
    mark = upload(account, png(scene(20, 10, square=(0, 0, 20), colour=BLUE)), "mark.png")
    return primary, mark


def test_watermark_from_the_same_organization_lands_at_the_anchor(client, account, images):
    primary, mark = images
    url = (
        f"/{account.org}/dynamic/composition-mode-background-secondary_image-{mark['hash']}"
        f"-anchor-right_bottom/{primary}.png"
    )
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    pixels = decode(response.data)
    assert pixels.shape[:2] == (80, 100)
    ys, xs = np.nonzero(blue_mask(pixels))
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (80, 99, 70, 79)
    assert abs(int(pixels[10, 10, 0]) - GREY) <= 2


def test_short_hash_names_the_secondary_too(client, account, images):
    primary, mark = images
    short = mark["short_hash"]
    assert len(short) < 40
    op = f"composition-mode-background-secondary_image-{short}"
    url = f"/{account.org}/dynamic/{op}/{primary}.png"
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    ys, xs = np.nonzero(blue_mask(decode(response.data)))
    assert (xs.min(), ys.min()) == (40, 35)  # centred by default


def test_stored_stack_with_a_watermark_renders(client, account, images):
    primary, mark = images
    stack = {
        "operations": [
            {"name": "resize", "options": {"width": 50}},
            {
                "name": "composition",
                "options": {
                    "mode": "background",
                    "secondary_image": mark["hash"],
                    "anchor": "left_top",
                    "width": 10,
                },
            },
        ]
    }
    put = account.request("PUT", f"/stacks/{account.org}/marked", data=json.dumps(stack))
    assert put.status_code == 201, put.get_data(as_text=True)
    response = client.get(f"/{account.org}/marked/{primary}.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    pixels = decode(response.data)
    assert pixels.shape[:2] == (40, 50)
    ys, xs = np.nonzero(blue_mask(pixels))
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (0, 9, 0, 4)


def test_secondary_of_another_organization_is_not_found(client, account, member, images):
    primary, _ = images
    other = member("globex")
    # Content of their own (equal bytes would have the same hash in both organizations).
    theirs = upload(other, png(scene(21, 11, square=(0, 0, 20), colour=BLUE)))["hash"]
    url = f"/{account.org}/dynamic/composition-secondary_image-{theirs}/{primary}.png"
    message = _error(client.get(url), 404)
    assert "secondary_image" in message and theirs in message
    # Their own render of the same hash works: it is the organization that matters.
    own = upload(other, png(scene(100, 80)))["hash"]
    ok = client.get(f"/globex/dynamic/composition-secondary_image-{theirs}/{own}.png")
    assert ok.status_code == 200, ok.get_data(as_text=True)


def test_missing_secondary_is_not_found(client, account, images):
    primary, _ = images
    url = f"/{account.org}/dynamic/composition-secondary_image-ffffff/{primary}.png"
    message = _error(client.get(url), 404)
    assert "composition" in message and "ffffff" in message


@pytest.mark.parametrize("value", ["FFFFFF", "abc", "zzzzzz", "..%2Fx"])
def test_malformed_secondary_hash_is_400(client, account, images, value):
    primary, _ = images
    url = f"/{account.org}/dynamic/composition-secondary_image-{value}/{primary}.png"
    assert "secondary_image" in _error(client.get(url), 400)


def test_disabled_composition_needs_no_secondary(client, account, images):
    primary, _ = images
    url = f"/{account.org}/dynamic/composition-secondary_image-ffffff-enabled-false/{primary}.png"
    assert client.get(url).status_code == 200


def test_secondary_keeps_its_own_subject_area_when_filled(client, account):
    primary = upload(account, png(scene(100, 80)))["hash"]
    # A 200x100 secondary, blue only in its right quarter, with its subject area there.
    arr = np.full((100, 200, 3), GREY, dtype=np.uint8)
    arr[:, 150:] = BLUE
    mark = upload(
        account, png(pyvips.Image.new_from_array(arr, interpretation="srgb")), "wide2.png"
    )["hash"]
    mark = set_area(account, mark, "subject_area", {"x": 160, "y": 0, "width": 40, "height": 100})
    url = (
        f"/{account.org}/dynamic/composition-mode-background-secondary_image-{mark}"
        f"-width-50-height-50-resize_mode-fill-anchor-left_top/{primary}.png"
    )
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    pixels = decode(response.data)
    # Covering 50x50 scales it to 100x50; the cut keeps the subject (x 80-100 of the cover),
    # so the 50x50 box is 50-100: its right half is blue.
    box = pixels[:50, :50]
    assert blue_mask(box)[:, 30:].all()
    assert not blue_mask(box)[:, :20].any()


def _jpeg(side: int) -> bytes:
    return bytes(pyvips.Image.black(side, side, bands=3).jpegsave_buffer(Q=50))


def test_huge_secondary_counts_against_the_work_budget(tmp_path):
    app = create_app({"data_dir": str(tmp_path / "d"), "max_render_work": 20})
    client = app.test_client()
    account = Account(client, "acme", "admin@acme.example")
    primary = upload(account, png(scene(100, 80)))["hash"]
    big = upload(account, _jpeg(3000), "big.jpg")["hash"]
    assert client.get(f"/acme/dynamic/noop/{primary}.png").status_code == 200
    url = f"/acme/dynamic/composition-secondary_image-{big}-width-10/{primary}.png"
    assert "too expensive" in _error(client.get(url), 400)


def test_huge_secondary_counts_against_the_pixel_budget(tmp_path):
    data = str(tmp_path / "d")
    first = create_app({"data_dir": data})
    account = Account(first.test_client(), "acme", "admin@acme.example")
    primary = upload(account, png(scene(100, 80)))["hash"]
    big = upload(account, _jpeg(2000), "big.jpg")["hash"]
    # The same data served with a lower pixel budget: 4 MP secondary, 1 MP allowed.
    client = create_app({"data_dir": data, "max_render_pixels": 1_000_000}).test_client()
    assert client.get(f"/acme/dynamic/noop/{primary}.png").status_code == 200
    url = f"/acme/dynamic/composition-secondary_image-{big}-width-10/{primary}.png"
    message = _error(client.get(url), 400)
    assert "composition secondary_image" in message and "2000x2000" in message


def test_animated_primary_gets_the_watermark_on_every_frame(client, account):
    frames = [scene(60, 40, square=(i * 10, 0, 10)) for i in range(3)]
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 40)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100, 100, 100])
    gif = upload(account, bytes(strip.gifsave_buffer()), "anim.gif")["hash"]
    mark = upload(account, png(scene(10, 10, square=(0, 0, 10), colour=BLUE)), "m.png")["hash"]
    url = (
        f"/{account.org}/dynamic/composition-mode-background-secondary_image-{mark}"
        f"-anchor-right_bottom/{gif}.gif"
    )
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    out = pyvips.Image.new_from_buffer(response.data, "", n=-1)
    assert out.get("n-pages") == 3
    pixels = out.numpy()
    for i in range(3):
        frame = pixels[i * 40 : (i + 1) * 40]
        assert blue_mask(frame)[30:, 50:].all(), i
        assert not blue_mask(frame)[:30].any(), i


def _put_stack(account, name: str, definition: dict) -> None:
    put = account.request("PUT", f"/stacks/{account.org}/{name}", data=json.dumps(definition))
    assert put.status_code == 201, put.get_data(as_text=True)


# rokka's template demo: a colour box of its own, coloured by a variable.
BOX_STACK = {
    "operations": [
        {
            "name": "composition",
            "options": {"width": 30, "height": 12, "empty_primary": True},
            "expressions": {"secondary_color": "$color"},
        }
    ],
    "variables": {"color": "00FF00"},
}


def test_secondary_stack_renders_its_own_canvas(client, account, images):
    primary, _ = images
    _put_stack(account, "box", BOX_STACK)
    op = "composition-mode-background-secondary_stack-box-anchor-left_top"
    response = client.get(f"/{account.org}/dynamic/{op}/{primary}.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    pixels = decode(response.data)
    assert pixels.shape[:2] == (80, 100)
    green = (pixels[..., 1] > 200) & (pixels[..., 0] < 60) & (pixels[..., 2] < 60)
    ys, xs = np.nonzero(green)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (0, 29, 0, 11)


def test_secondary_stack_variables_and_url_variables_reach_the_stack(client, account, images):
    primary, _ = images
    _put_stack(account, "box", BOX_STACK)
    op = "composition-mode-background-secondary_stack-box-anchor-left_top"
    # A URL variable the secondary stack declares is passed on ...
    response = client.get(f"/{account.org}/dynamic/{op}/v-color-0000FF/{primary}.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert blue_mask(decode(response.data))[:12, :30].all()
    # ... and secondary_stack_variables win over it.
    stack = {
        "operations": [
            {
                "name": "composition",
                "options": {
                    "mode": "background",
                    "secondary_stack": "box",
                    "secondary_stack_variables": "color=FF0000",
                    "anchor": "right_bottom",
                },
            }
        ]
    }
    _put_stack(account, "framed", stack)
    response = client.get(f"/{account.org}/framed/v-color-0000FF/{primary}.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    pixels = decode(response.data)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    ys, xs = np.nonzero(red)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (70, 99, 68, 79)


def test_secondary_stack_renders_the_secondary_image(client, account, images):
    primary, mark = images
    _put_stack(account, "small", {"operations": [{"name": "resize", "options": {"width": 10}}]})
    op = (
        f"composition-mode-background-secondary_stack-small-secondary_image-{mark['hash']}"
        "-anchor-left_top"
    )
    response = client.get(f"/{account.org}/dynamic/{op}/{primary}.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    ys, xs = np.nonzero(blue_mask(decode(response.data)))
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (0, 9, 0, 4)


def test_missing_secondary_stack_is_not_found(client, account, images):
    primary, _ = images
    url = f"/{account.org}/dynamic/composition-secondary_stack-nostack/{primary}.png"
    assert "secondary_stack nostack" in _error(client.get(url), 404)


def test_secondary_stack_of_secondary_stacks_is_refused(client, account, images):
    primary, _ = images
    _put_stack(account, "box", BOX_STACK)
    inner = {"operations": [{"name": "composition", "options": {"secondary_stack": "box"}}]}
    _put_stack(account, "nested", inner)
    url = f"/{account.org}/dynamic/composition-secondary_stack-nested/{primary}.png"
    assert "one level" in _error(client.get(url), 400)


def test_secondary_stack_work_counts_in_the_budget(tmp_path):
    app = create_app({"data_dir": str(tmp_path / "d"), "max_render_work": 30})
    client = app.test_client()
    account = Account(client, "acme", "admin@acme.example")
    primary = upload(account, png(scene(100, 80)))["hash"]
    # A big canvas turned by an odd angle: cheap to describe, dear to render.
    heavy = {
        "operations": [
            {
                "name": "composition",
                "options": {"width": 2000, "height": 2000, "empty_primary": True},
            },
            {"name": "rotate", "options": {"angle": 33}},
        ]
    }
    _put_stack(account, "heavy", heavy)
    url = "/acme/dynamic/composition-secondary_stack-heavy-width-10/" + primary + ".png"
    assert "too expensive" in _error(client.get(url), 400)


def test_replacing_the_secondary_stack_changes_the_render_not_a_cached_copy(
    client, account, images
):
    primary, _ = images
    _put_stack(account, "box", BOX_STACK)
    url = f"/{account.org}/dynamic/composition-mode-background-secondary_stack-box/{primary}.png"
    first = client.get(url)
    assert first.status_code == 200
    blue = {**BOX_STACK, "variables": {"color": "0000FF"}}
    put = account.request("PUT", f"/stacks/{account.org}/box?overwrite=true", data=json.dumps(blue))
    assert put.status_code == 200, put.get_data(as_text=True)
    second = client.get(url)
    assert second.status_code == 200
    assert second.headers["ETag"] != first.headers["ETag"]
    assert blue_mask(decode(second.data)).sum() == 30 * 12
    assert not blue_mask(decode(first.data)).any()


def test_headers_the_secondary_stack_reads_are_in_vary(client, account, images):
    primary, _ = images
    reading = {
        "operations": [
            {
                "name": "composition",
                "options": {"width": 8, "height": 8, "empty_primary": True},
                "expressions": {
                    "secondary_color": "request.headers.save_data == 'on' ? '0000FF' : '00FF00'"
                },
            }
        ]
    }
    _put_stack(account, "reader", reading)
    url = f"/{account.org}/dynamic/composition-secondary_stack-reader-mode-background/{primary}.png"
    plain = client.get(url)
    saving = client.get(url, headers={"Save-Data": "on"})
    assert plain.status_code == saving.status_code == 200
    assert "Save-Data" in saving.headers["Vary"]
    assert blue_mask(decode(saving.data)).sum() == 64
    assert not blue_mask(decode(plain.data)).any()


def test_a_render_reads_at_most_ten_other_sources(client, account, images):
    primary, _ = images
    marks = [upload(account, png(scene(8 + i, 8)), f"m{i}.png")["hash"] for i in range(11)]
    ops = "--".join(f"composition-mode-background-secondary_image-{m}" for m in marks)
    assert "at most 10" in _error(client.get(f"/{account.org}/dynamic/{ops}/{primary}.png"), 400)
    fine = "--".join(f"composition-mode-background-secondary_image-{m}" for m in marks[:10])
    assert client.get(f"/{account.org}/dynamic/{fine}/{primary}.png").status_code == 200


def test_referenced_bytes_are_bounded_together(tmp_path):
    data = str(tmp_path / "d")
    first = create_app({"data_dir": data})
    account = Account(first.test_client(), "acme", "admin@acme.example")
    primary = upload(account, png(scene(100, 80)))["hash"]
    marks = [upload(account, _jpeg(300 + i), f"b{i}.jpg") for i in range(2)]
    limit = max(m["size"] for m in marks) + 10  # each fits, both together do not
    client = create_app({"data_dir": data, "max_upload_bytes": limit}).test_client()
    one = f"composition-secondary_image-{marks[0]['hash']}"
    two = f"{one}--composition-secondary_image-{marks[1]['hash']}"
    assert client.get(f"/acme/dynamic/{one}/{primary}.png").status_code == 200
    assert "too large together" in _error(client.get(f"/acme/dynamic/{two}/{primary}.png"), 400)


def _signed(path: str, key: str) -> str:
    return f"{path}?sig={signature(path, key)}"


def _signing_key(account) -> str:
    org = account.request("GET", f"/organizations/{account.org}").get_json()
    return org["signing_keys"][0]["key"]


def test_protected_secondary_image_needs_a_signed_url(client, account, images):
    primary, _ = images
    form = {
        "filedata": (io.BytesIO(png(scene(12, 12, colour=BLUE, square=(0, 0, 12)))), "p.png"),
        "options[0]": json.dumps({"protected": True}),
    }
    posted = account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )
    secret = posted.get_json()["items"][0]["hash"]
    path = (
        f"/{account.org}/dynamic/composition-mode-background-secondary_image-{secret}/{primary}.png"
    )
    assert _error(client.get(path), 403)
    ok = client.get(_signed(path, _signing_key(account)))
    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert blue_mask(decode(ok.data)).sum() == 144


def test_protected_secondary_stack_needs_a_signed_url(client, account, images):
    primary, _ = images
    _put_stack(account, "secret", {**BOX_STACK, "options": {"protected": True}})
    path = (
        f"/{account.org}/dynamic/composition-mode-background-secondary_stack-secret/{primary}.png"
    )
    assert _error(client.get(path), 403)
    assert client.get(_signed(path, _signing_key(account))).status_code == 200


def test_operations_listing_publishes_composition_and_dropshadow(client):
    listed = client.get("/operations").get_json()
    composition = listed["composition"]["properties"]
    assert composition["secondary_image"]["type"] == "string"
    assert composition["secondary_image"]["pattern"] == "^[0-9a-f]{6,40}$"
    assert composition["anchor"]["default"] == "center_center"
    assert composition["secondary_opacity"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 100,
        "default": 100,
        "description": composition["secondary_opacity"]["description"],
    }
    shadow = listed["dropshadow"]["properties"]
    assert set(shadow) == {
        "horizontal",
        "vertical",
        "opacity",
        "sigma",
        "blur_radius",
        "color",
        "enabled",
    }
    assert shadow["sigma"]["default"] == 0.5 and shadow["opacity"]["default"] == 100


def test_stack_with_a_watermark_is_stored_as_written(account, images):
    _, mark = images
    stack = {
        "operations": [
            {
                "name": "composition",
                "options": {"mode": "background", "secondary_image": mark["short_hash"]},
            }
        ]
    }
    _put_stack(account, "wm", stack)
    stored = account.request("GET", f"/stacks/{account.org}/wm").get_json()
    assert stored["stack_operations"][0]["options"] == stack["operations"][0]["options"]
