"""IIIF Image API 3.0 on render URLs (docs/render.md "IIIF").

The source is the official validator's test image, rebuilt from the validator's own table
of colours: a 1000x1000 grid of 10x10 squares of 100 pixels. Pixel checks decode the
answer and compare square colours with a tolerance; the last test runs the official IIIF
validator's level 0 and 1 tests for version 3.0 against a real ``cropstack serve``.
"""

from __future__ import annotations

import io
import json
import logging
import urllib.request
import uuid

import numpy as np
import pytest
import pyvips

from tests.conftest import Account
from tests.engine.conftest import decode
from tests.realserver import running_server
from tests.webapp.test_render import upload
from webapp.signing import signature


def _colours() -> list[list[tuple[int, int, int]]]:
    from iiif_validator.validator import ValidationInfo

    return ValidationInfo().colorInfo


def grid_png() -> bytes:
    """The validator's 1000x1000 test image: colour ``colours[x][y]`` at column x, row y."""
    pixels = np.zeros((1000, 1000, 3), dtype=np.uint8)
    for x, column in enumerate(_colours()):
        for y, colour in enumerate(column):
            pixels[y * 100 : (y + 1) * 100, x * 100 : (x + 1) * 100] = colour
    image = pyvips.Image.new_from_array(pixels, interpretation="srgb")
    return image.write_to_buffer(".png")


@pytest.fixture
def grid(account: Account) -> str:
    return upload(account, grid_png(), name="grid.png")["hash"]


def colour_at(pixels: np.ndarray, x: int, y: int) -> np.ndarray:
    return pixels[y, x, :3].astype(int)


def assert_colour(pixels: np.ndarray, x: int, y: int, column: int, row: int) -> None:
    expected = np.array(_colours()[column][row])
    got = colour_at(pixels, x, y)
    assert np.abs(got - expected).max() <= 8, (x, y, got, expected)


def test_info_json(client, account, grid):
    response = client.get(f"/{account.org}/_iiif/3/{grid}/info.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = response.get_json()
    assert body["id"] == f"http://localhost/{account.org}/_iiif/3/{grid}"
    assert (body["width"], body["height"]) == (1000, 1000)
    assert body["profile"] == "level1" and body["type"] == "ImageService3"
    assert body["@context"] == "http://iiif.io/api/image/3/context.json"
    ld = client.get(
        f"/{account.org}/_iiif/3/{grid}/info.json", headers={"Accept": "application/ld+json"}
    )
    assert ld.headers["Content-Type"].startswith("application/ld+json")
    # the latest version without a number, and a short hash
    latest = client.get(f"/{account.org}/_iiif/{grid[:8]}/info.json").get_json()
    assert latest["id"].endswith(f"/_iiif/{grid[:8]}")


def test_base_uri_redirects_to_info(client, account, grid):
    response = client.get(f"/{account.org}/_iiif/3/{grid}")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/_iiif/3/{grid}/info.json")


def test_full_max_is_the_image(client, account, grid):
    response = client.get(f"/{account.org}/_iiif/3/{grid}/full/max/0/default.png")
    assert response.status_code == 200 and response.mimetype == "image/png"
    pixels = decode(response.data)
    assert pixels.shape[:2] == (1000, 1000)
    for column, row in ((0, 0), (3, 7), (9, 9)):
        assert_colour(pixels, column * 100 + 50, row * 100 + 50, column, row)


def test_region_by_pixels_and_percent(client, account, grid):
    for region in ("200,300,200,100", "pct:20,30,20,10"):
        response = client.get(f"/{account.org}/_iiif/3/{grid}/{region}/max/0/default.png")
        pixels = decode(response.data)
        assert pixels.shape[:2] == (100, 200), region
        assert_colour(pixels, 50, 50, 2, 3)
        assert_colour(pixels, 150, 50, 3, 3)


def test_square_region_and_region_past_the_edge(client, account, grid):
    square = decode(client.get(f"/{account.org}/_iiif/3/{grid}/square/100,/0/default.png").data)
    assert square.shape[:2] == (100, 100)
    clipped = client.get(f"/{account.org}/_iiif/3/{grid}/900,950,500,500/max/0/default.png")
    pixels = decode(clipped.data)
    assert pixels.shape[:2] == (50, 100)
    assert_colour(pixels, 50, 25, 9, 9)


def test_sizes(client, account, grid):
    cases = {
        "100,": (100, 100),
        ",250": (250, 250),
        "pct:25": (250, 250),
        "300,200": (200, 300),  # w,h distorts (shape is rows, columns)
        "!300,200": (200, 200),
        "^1200,": (1200, 1200),
    }
    for size, shape in cases.items():
        response = client.get(f"/{account.org}/_iiif/3/{grid}/full/{size}/0/default.png")
        assert response.status_code == 200, (size, response.get_data(as_text=True))
        pixels = decode(response.data)
        assert pixels.shape[:2] == shape, size
        # the top-left and bottom-right squares stay in their corners
        assert_colour(pixels, 2, 2, 0, 0)
        assert_colour(pixels, shape[1] - 3, shape[0] - 3, 9, 9)


def test_a_region_at_a_smaller_size(client, account, grid):
    pixels = decode(
        client.get(f"/{account.org}/_iiif/3/{grid}/500,500,500,500/250,/0/default.png").data
    )
    assert pixels.shape[:2] == (250, 250)
    assert_colour(pixels, 25, 25, 5, 5)
    assert_colour(pixels, 225, 225, 9, 9)


def test_rotation_and_gray(client, account, grid):
    turned = decode(
        client.get(f"/{account.org}/_iiif/3/{grid}/0,0,200,100/max/90/default.png").data
    )
    assert turned.shape[:2] == (200, 100)
    # clockwise: the region's top-left square ends up top-right
    assert_colour(turned, 75, 25, 0, 0)
    assert_colour(turned, 75, 175, 1, 0)
    grey = decode(client.get(f"/{account.org}/_iiif/3/{grid}/full/100,/0/gray.png").data)
    channels = grey if grey.ndim == 2 else grey[..., :3]
    if channels.ndim == 3:
        assert np.abs(channels[..., 0].astype(int) - channels[..., 2].astype(int)).max() <= 1


@pytest.mark.parametrize("fmt", ["jpg", "webp", "gif"])
def test_formats(client, account, grid, fmt):
    response = client.get(f"/{account.org}/_iiif/3/{grid}/full/200,/0/default.{fmt}")
    assert response.status_code == 200
    pixels = decode(response.data)
    assert pixels.shape[:2] == (200, 200)
    assert_colour(pixels, 10, 10, 0, 0) if fmt != "gif" else None


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("full/max/0/default.pdf", 400),
        ("full/max/0/bitonal.jpg", 400),
        ("full/max/!0/default.jpg", 400),
        ("full/max/45x/default.jpg", 400),
        ("2000,0,10,10/max/0/default.jpg", 400),
        ("full/1001,/0/default.jpg", 400),
        ("full/^3000,/0/default.jpg", 400),
        ("nope/max/0/default.jpg", 400),
        ("full/max/0", 400),
    ],
)
def test_bad_parameters(client, account, grid, path, status):
    response = client.get(f"/{account.org}/_iiif/3/{grid}/{path}")
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == status
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_unknown_images_and_versions(client, account, grid):
    assert client.get(f"/{account.org}/_iiif/3/{'ab' * 20}/info.json").status_code == 404
    assert client.get(f"/{account.org}/_iiif/3/a%2Fb/info.json").status_code == 404
    assert client.get(f"/nobody/_iiif/3/{grid}/info.json").status_code == 404
    assert client.get(f"/{account.org}/_iiif/2/{grid}/info.json").status_code == 400


def test_protected_images_need_a_signature(client, account):
    form = {
        "filedata": (io.BytesIO(grid_png()), "p.png"),
        "options[0]": json.dumps({"protected": True}),
    }
    image = account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    ).get_json()["items"][0]["hash"]
    path = f"/{account.org}/_iiif/3/{image}/full/100,/0/default.jpg"
    assert client.get(path).status_code == 403
    key = account.request("GET", f"/organizations/{account.org}").get_json()["signing_keys"][0]
    assert client.get(f"{path}?sig={signature(path, key['key'])}").status_code == 200


def _post_upload(base: str, key: str, org: str, data: bytes) -> str:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="filedata"; filename="g.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{base}/sourceimages/{org}",
        data=body,
        method="POST",
        headers={"Api-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["items"][0]["hash"]


def test_the_official_validator_passes_level_1(tmp_path):
    from iiif_validator.validator import ImageAPI, TestSuite, ValidationInfo

    logging.getLogger("iiif_validator").setLevel(logging.ERROR)
    with running_server(tmp_path, "--signup", workers=1) as base:
        signup = urllib.request.Request(
            f"{base}/users",
            data=json.dumps({"email": "v@iiif.example", "organization": "iiif"}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(signup, timeout=30) as response:
            key = json.loads(response.read())["api_key"]
        image = _post_upload(base, key, "iiif", grid_png())
        server = base.removeprefix("http://")
        tests = TestSuite(ValidationInfo()).list_tests("3.0")
        chosen = sorted(name for name, t in tests.items() if t["level"] <= 1)
        assert len(chosen) >= 20
        failures = []
        for name in chosen:
            result = ImageAPI(image, server, "iiif/_iiif/3", "http", "", "3.0", debug=False)
            TestSuite(ValidationInfo()).run_test(name, result)
            if result.exception is not None:
                error = result.exception
                failures.append(f"{name}: {error} {result.urls}")
        assert not failures, "\n".join(failures)
