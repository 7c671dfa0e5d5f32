"""svgdynamic and glitch through the render route: stacks carry the options, the render
process applies them, and refusals are the JSON 400 of every bad request."""

from __future__ import annotations

from tests.engine.conftest import decode, png, scene
from tests.engine.test_svgdynamic import LINE
from tests.webapp.test_render_headers import put_stack, upload

MAGENTA = {"id": "line", "attr": "stroke", "value": "#ff00ff"}


def test_stack_with_svgdynamic_recolours_the_svg(client, account):
    image = upload(account, LINE, "line.svg")
    put_stack(
        account, "logo", {"operations": [{"name": "svgdynamic", "options": {"changes": [MAGENTA]}}]}
    )
    response = client.get(f"/{account.org}/logo/{image}.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert decode(response.data)[50, 50, :3].tolist() == [255, 0, 255]
    plain = client.get(f"/{account.org}/dynamic/noop/{image}.png")
    assert decode(plain.data)[50, 50, :3].tolist() == [255, 104, 64]
    assert plain.headers["ETag"] != response.headers["ETag"]


def test_svgdynamic_refusals_are_json_400(client, account):
    photo = upload(account, png(scene(40, 30)), "photo.png")
    put_stack(
        account, "logo", {"operations": [{"name": "svgdynamic", "options": {"changes": [MAGENTA]}}]}
    )
    not_svg = client.get(f"/{account.org}/logo/{photo}.png")
    assert not_svg.status_code == 400
    assert "needs an SVG source image" in not_svg.get_json()["error"]["message"]
    in_url = client.get(f"/{account.org}/dynamic/svgdynamic/{photo}.png")
    assert in_url.status_code == 400 and "changes" in in_url.get_json()["error"]["message"]
    bad = client.put(
        f"/stacks/{account.org}/broken",
        json={"operations": [{"name": "svgdynamic", "options": {"changes": [{"id": "x"}]}}]},
        headers=account.headers,
    )
    assert bad.status_code == 400 and "changes" in bad.get_json()["error"]["message"]


def test_glitch_in_a_url_is_repeatable(client, account):
    image = upload(account, png(scene(160, 120, square=(40, 30, 60))), "scene.png")
    url = f"/{account.org}/dynamic/glitch-amount-10-random-abc/{image}.png"
    first = client.get(url)
    assert first.status_code == 200
    assert client.get(url).data == first.data
    other = client.get(f"/{account.org}/dynamic/glitch-amount-10-random-xyz/{image}.png")
    assert other.status_code == 200 and other.headers["ETag"] != first.headers["ETag"]


def test_addframes_says_why_it_is_refused(client, account):
    image = upload(account, png(scene(40, 30)), "scene.png")
    response = client.get(f"/{account.org}/dynamic/addframes/{image}.png")
    assert response.status_code == 400
    message = response.get_json()["error"]["message"]
    assert "operation addframes is not implemented" in message
    assert "does not say what the frames parameter holds" in message


def test_primitive_renders_in_the_render_process(client, account):
    image = upload(account, png(scene(160, 120, square=(40, 30, 60))), "scene.png")
    url = f"/{account.org}/dynamic/primitive-count-30-mode-2/{image}.png"
    response = client.get(url)
    assert response.status_code == 200
    pixels = decode(response.data)
    assert pixels.shape[:2] == (120, 160)
    assert pixels[55:65, 65:75, 0].mean() > 180  # the red square, drawn with rectangles
    nine = client.get(f"/{account.org}/dynamic/primitive-mode-9/{image}.png")
    assert nine.status_code == 400 and "mode 9" in nine.get_json()["error"]["message"]


def test_svgdynamic_in_a_secondary_stack_recolours_the_watermark(client, account):
    # rokka's documented use: a logo changed by svgdynamic, composed onto a photo.
    photo = upload(account, png(scene(200, 200)), "photo.png")
    logo = upload(account, LINE, "line.svg")
    put_stack(
        account, "logo", {"operations": [{"name": "svgdynamic", "options": {"changes": [MAGENTA]}}]}
    )
    op = f"composition-mode-background-secondary_stack-logo-secondary_image-{logo}-anchor-left_top"
    response = client.get(f"/{account.org}/dynamic/{op}/{photo}.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    pixels = decode(response.data)
    assert pixels[50, 50, :3].tolist() == [255, 0, 255]  # the line of the 100x100 logo
    assert pixels[150, 150, :3].tolist() == [128, 128, 128]  # the photo around it
