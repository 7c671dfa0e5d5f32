"""composition's ``secondary_stack_variables`` written as an object (in the options, or
as an object of expressions) and ``cache: true`` (the secondary stack rendered once into
the render cache and reused) through the whole app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pyvips

from tests.conftest import Account
from tests.engine.conftest import decode, png, scene
from tests.webapp.test_composition import BOX_STACK, _error, _put_stack, blue_mask, images
from tests.webapp.test_render import upload
from webapp import create_app

__all__ = ["images"]  # the fixture, used by the tests below


@pytest.fixture
def images_off(tmp_path: Path):  # noqa: ANN201
    """An app with the render cache off: (app, client, account, primary hash, mark hash)."""
    app = create_app({"data_dir": str(tmp_path / "off"), "render_cache": False})
    client = app.test_client()
    account = Account(client, "acme", "admin@acme.example")
    primary = upload(account, png(scene(100, 80)))["hash"]
    mark = upload(account, png(scene(20, 10)), "mark.png")["hash"]
    return app, client, account, primary, mark


RED = (255, 0, 0)


def red_mask(pixels: np.ndarray) -> np.ndarray:
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r > 200) & (g < 60) & (b < 60)


def green_mask(pixels: np.ndarray) -> np.ndarray:
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (g > 200) & (r < 60) & (b < 60)


def framed(options: dict | None = None, expressions: dict | None = None) -> dict:
    """A stack putting the ``box`` stack's render at the bottom right of the image."""
    entry: dict = {
        "name": "composition",
        "options": {
            "mode": "background",
            "secondary_stack": "box",
            "anchor": "right_bottom",
            **(options or {}),
        },
    }
    if expressions:
        entry["expressions"] = expressions
    return {"operations": [entry]}


def box_of(pixels: np.ndarray, mask=red_mask) -> tuple[int, int, int, int]:  # noqa: ANN001
    ys, xs = np.nonzero(mask(pixels))
    assert len(xs), "nothing of that colour"
    return int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())


def get(client, url: str) -> np.ndarray:  # noqa: ANN001
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return decode(response.data)


# -- secondary_stack_variables as an object ------------------------------------------------


def test_variables_object_reaches_the_secondary_stack(client, account, images):
    primary, _ = images
    _put_stack(account, "box", BOX_STACK)
    stack = framed({"secondary_stack_variables": {"color": "FF0000"}})
    _put_stack(account, "framed", stack)
    shown = account.request("GET", f"/stacks/{account.org}/framed").get_json()
    assert shown["stack_operations"][0]["options"]["secondary_stack_variables"] == {
        "color": "FF0000"
    }
    pixels = get(client, f"/{account.org}/framed/{primary}.png")
    assert box_of(pixels) == (70, 99, 68, 79)


def test_variables_object_of_expressions_is_evaluated(client, account, images):
    primary, _ = images
    _put_stack(account, "box", BOX_STACK)
    # rokka's docs: "secondary_stack_variables": {"w": "image.width", ...} in expressions
    stack = framed(
        expressions={
            "secondary_stack_variables": {"color": "image.width > 50 ? '0000FF' : 'FF0000'"}
        }
    )
    _put_stack(account, "framed", stack)
    pixels = get(client, f"/{account.org}/framed/{primary}.png")  # 100 px wide: blue
    assert box_of(pixels, blue_mask) == (70, 99, 68, 79)


def test_a_variables_object_with_an_expression_inside_is_400(account):
    stack = framed({"secondary_stack_variables": {"color": "$c"}})
    response = account.request("PUT", f"/stacks/{account.org}/framed", data=json.dumps(stack))
    assert "expressions" in _error(response, 400)


# -- cache ------------------------------------------------------------------------------


def box_files(app) -> list[Path]:  # noqa: ANN001
    """The cached renders of the ``box`` stack (cache/<org>/box/<image hash>/<key>.png)."""
    root = Path(app.extensions["cropstack.settings"].data_dir) / "cache"
    return sorted(root.glob("*/box/*/*.png"))


def cached_stack(mark: str, cache: bool = True) -> dict:
    return framed({"secondary_image": mark, "cache": cache})


def test_cache_keeps_one_render_of_the_secondary_for_every_image(app, client, account, images):
    primary, mark = images
    other = upload(account, png(scene(120, 90)))["hash"]
    _put_stack(account, "box", BOX_STACK)
    _put_stack(account, "kept", cached_stack(mark["hash"]))
    _put_stack(account, "plain", cached_stack(mark["hash"], cache=False))
    kept = get(client, f"/{account.org}/kept/{primary}.png")
    # the same pixels as the secondary rendered in place
    assert np.array_equal(kept, get(client, f"/{account.org}/plain/{primary}.png"))
    assert box_of(kept, green_mask) == (70, 99, 68, 79)
    (entry,) = box_files(app)
    assert entry.parent.name == mark["hash"]  # under the image the box stack renders
    # Another image: the box is not rendered again, the kept one is composed. Shown by
    # replacing the kept render's bytes (storage-level fault injection) with a red box.
    red = pyvips.Image.black(30, 12) + list(RED)
    entry.write_bytes(bytes(red.cast("uchar").copy(interpretation="srgb").pngsave_buffer()))
    pixels = get(client, f"/{account.org}/kept/{other}.png")
    assert box_of(pixels) == (90, 119, 78, 89)
    assert box_files(app) == [entry]


def test_replacing_the_secondary_stack_renders_it_again(app, client, account, images):
    primary, mark = images
    _put_stack(account, "box", BOX_STACK)
    _put_stack(account, "kept", cached_stack(mark["hash"]))
    assert box_of(get(client, f"/{account.org}/kept/{primary}.png"), green_mask)
    blue_box = {**BOX_STACK, "variables": {"color": "0000FF"}}
    replaced = account.request(
        "PUT", f"/stacks/{account.org}/box?overwrite=true", data=json.dumps(blue_box)
    )
    assert replaced.status_code in (200, 201), replaced.get_data(as_text=True)
    pixels = get(client, f"/{account.org}/kept/{primary}.png")
    assert box_of(pixels, blue_mask) == (70, 99, 68, 79)


def test_cache_with_the_render_cache_off_renders_in_place(tmp_path, images_off):
    app, client, account, primary, mark = images_off
    _put_stack(account, "box", BOX_STACK)
    _put_stack(account, "kept", cached_stack(mark))
    pixels = get(client, f"/{account.org}/kept/{primary}.png")
    assert box_of(pixels, green_mask) == (70, 99, 68, 79)
    assert box_files(app) == []


def test_cache_without_a_secondary_stack_is_400_saying_why(client, account, images):
    primary, mark = images
    stack = {"operations": [{"name": "composition", "options": {"width": 9, "cache": True}}]}
    response = account.request("PUT", f"/stacks/{account.org}/c", data=json.dumps(stack))
    assert "cache needs secondary_stack" in _error(response, 400)
    ops = f"composition-secondary_image-{mark['hash']}-cache-true"
    url = f"/{account.org}/dynamic/{ops}/{primary}.png"
    assert "cache needs secondary_stack" in _error(client.get(url), 400)
