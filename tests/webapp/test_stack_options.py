"""Every option of ``GET /stackoptions`` changes what a client receives, or is refused.

``test_every_advertised_option_has_a_check`` walks ``/stackoptions``: each option there must
have a check in ``CHECKS`` below, which renders through the whole app and looks at what a
user would (decoded pixels, the format sniffed from the bytes, sizes, headers, statuses).
The options cropstack refuses must answer 400 in a stack and in a render URL.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import pyvips
from flask.testing import FlaskClient

from stacks.options import REFUSED_OPTIONS
from tests.conftest import Account
from tests.engine.conftest import decode, scene
from webapp import create_app

# ----------------------------------------------------------------------------- fixtures


def _photo(width: int = 160, height: int = 120) -> pyvips.Image:
    """Smooth colour gradients plus noise: thousands of colours, as a photo has."""
    rng = np.random.default_rng(9)
    y, x = np.mgrid[0:height, 0:width]
    arr = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    arr = np.clip(arr + rng.normal(0, 6, arr.shape), 0, 255).astype(np.uint8)
    return pyvips.Image.new_from_array(arr, interpretation="srgb")


def _disc() -> pyvips.Image:
    """A 100x100 RGBA image: an opaque red disc on a fully transparent background."""
    y, x = np.mgrid[0:100, 0:100]
    inside = (x - 50) ** 2 + (y - 50) ** 2 < 40**2
    arr = np.zeros((100, 100, 4), np.uint8)
    arr[inside] = (255, 0, 0, 255)
    return pyvips.Image.new_from_array(arr, interpretation="srgb")


class World:
    """One app, one organization and the uploaded test images (hashes)."""

    def __init__(self, client: FlaskClient, account: Account) -> None:
        self.client = client
        self.account = account
        self.photo = self.upload(bytes(_photo().pngsave_buffer()), "photo.png")
        self.disc = self.upload(bytes(_disc().pngsave_buffer()), "disc.png")
        self.grey = self.upload(bytes(scene(64, 48).pngsave_buffer()), "grey.png")

    def upload(self, data: bytes, name: str) -> str:
        response = self.account.request(
            "POST",
            f"/sourceimages/{self.account.org}",
            data={"filedata": (io.BytesIO(data), name)},
            content_type="multipart/form-data",
        )
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        return response.get_json()["items"][0]["hash"]

    def get(self, path: str, **headers: str):  # noqa: ANN201
        return self.client.get(f"/{self.account.org}/{path}", headers=headers)

    def dynamic(self, image: str, ext: str, options: str = "", ops: str = "noop", **headers: str):  # noqa: ANN201
        """A 200 render of ``dynamic/{ops}[/o-...]/{image}.{ext}``."""
        middle = f"{ops}/{options}/" if options else f"{ops}/"
        response = self.get(f"dynamic/{middle}{image}.{ext}", **headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response

    def put_stack(self, name: str, stack: dict[str, Any]):  # noqa: ANN201
        return self.account.request(
            "PUT", f"/stacks/{self.account.org}/{name}?overwrite=true", data=json.dumps(stack)
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    app = create_app({"data_dir": str(tmp_path_factory.mktemp("options") / "data")})
    app.testing = True
    client = app.test_client()
    yield World(client, Account(client, "acme", "admin@acme.example"))


# ----------------------------------------------------------------------------- readers


def sniffed(body: bytes) -> str:
    """The format of encoded bytes by their signature (independent of the server's sniff)."""
    if body.startswith(b"\x89PNG"):
        return "png"
    if body.startswith(b"\xff\xd8"):
        return "jpg"
    if body.startswith(b"GIF8"):
        return "gif"
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "webp-lossless" if body[12:16] == b"VP8L" else "webp"
    if body[4:12] == b"ftypavif":
        return "avif"
    return "unknown"


def png_colour_type(body: bytes) -> int:
    """IHDR colour type: 2 truecolour, 3 palette, 6 truecolour with alpha."""
    assert body[12:16] == b"IHDR"
    return body[25]


def png_ppm(body: bytes) -> int:
    """pHYs pixels per metre (x) of a PNG, 0 when there is no pHYs chunk."""
    at = body.find(b"pHYs")
    return struct.unpack(">I", body[at + 4 : at + 8])[0] if at > 0 else 0


def colours(body: bytes) -> int:
    pixels = decode(body)[..., :3].reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


def jpeg_progressive(body: bytes) -> bool:
    return b"\xff\xc2" in body


# ----------------------------------------------------------------------------- checks


def check_basestack(w: World) -> None:
    assert w.put_stack("grey-base", {"operations": [{"name": "grayscale"}]}).status_code == 201
    stack = {
        "operations": [{"name": "resize", "options": {"width": 40}}],
        "options": {"basestack": "grey-base"},
    }
    assert w.put_stack("greyed", stack).status_code == 201
    px = decode(w.get(f"greyed/{w.photo}.png").data)
    assert px.shape[1] == 40
    assert np.abs(px[..., 0].astype(int) - px[..., 2].astype(int)).max() <= 2


def check_optim_quality(w: World) -> None:
    low = w.dynamic(w.photo, "jpg", "o-optim.quality-0").data
    default = w.dynamic(w.photo, "jpg").data
    high = w.dynamic(w.photo, "jpg", "o-optim.quality-10").data
    assert len(low) < len(default) < len(high)
    # An explicit jpg.quality wins; optim.disable_all switches the level off.
    fixed = w.dynamic(w.photo, "jpg", "o-jpg.quality-80").data
    assert w.dynamic(w.photo, "jpg", "o-jpg.quality-80-optim.quality-0").data == fixed
    assert w.dynamic(w.photo, "jpg", "o-optim.disable_all-true-optim.quality-0").data == fixed


def _smaller_at_low_quality(w: World, ext: str, key: str) -> None:
    low = w.dynamic(w.photo, ext, f"o-{key}-20").data
    high = w.dynamic(w.photo, ext, f"o-{key}-90").data
    assert len(low) < len(high) * 0.7


def check_jpg_quality(w: World) -> None:
    _smaller_at_low_quality(w, "jpg", "jpg.quality")


def check_webp_quality(w: World) -> None:
    _smaller_at_low_quality(w, "webp", "webp.quality")
    assert sniffed(w.dynamic(w.photo, "webp", "o-webp.quality-100").data) == "webp-lossless"
    assert sniffed(w.dynamic(w.photo, "webp", "o-webp.quality-99").data) == "webp"


def check_avif_quality(w: World) -> None:
    _smaller_at_low_quality(w, "avif", "avif.quality")


def check_heif_quality(w: World) -> None:
    _smaller_at_low_quality(w, "heic", "heif.quality")


def check_jxl_quality(w: World) -> None:
    _smaller_at_low_quality(w, "jxl", "jxl.quality")


def _pdf(w: World) -> str:
    """A two-page PDF (red, then blue) of 300x200 pt, uploaded once."""
    if not hasattr(w, "pdf_hash"):
        from PIL import Image

        pages = [
            Image.new("RGB", (300, 200), (220, 20, 20)),
            Image.new("RGB", (300, 200), (20, 20, 220)),
        ]
        out = io.BytesIO()
        pages[0].save(out, format="PDF", resolution=72, save_all=True, append_images=pages[1:])
        w.pdf_hash = w.upload(out.getvalue(), "doc.pdf")
    return w.pdf_hash


def check_pdf_dpi(w: World) -> None:
    image = _pdf(w)
    # 300 pt at 200 dpi is 834 px (< 1000, so doubled: 1667); at 500 dpi 2084 px
    assert decode(w.dynamic(image, "png").data).shape[1] == 1667
    assert decode(w.dynamic(image, "png", "o-pdf.dpi-500").data).shape[1] == 2084


def check_pdf_page(w: World) -> None:
    image = _pdf(w)
    first = decode(w.dynamic(image, "png", ops="resize-width-30").data)
    second = decode(w.dynamic(image, "png", "o-pdf.page-2", ops="resize-width-30").data)
    assert first[..., 0].mean() > 200 and second[..., 2].mean() > 200


def check_gif_quality(w: World) -> None:
    low = w.dynamic(w.photo, "gif", "o-gif.quality-10").data
    default = w.dynamic(w.photo, "gif").data
    assert sniffed(low) == sniffed(default) == "gif"
    assert colours(low) <= 4 < 64 < colours(default)
    assert len(low) < len(default)


def check_pngquant_quality(w: World) -> None:
    plain = w.dynamic(w.photo, "png").data  # rokka's first, unoptimised answer
    default = w.dynamic(w.photo, "png", "o-optim.immediate-true").data  # quality 98
    lossless = w.dynamic(w.photo, "png", "o-pngquant.quality-100").data
    rough = w.dynamic(w.photo, "png", "o-pngquant.quality-10").data
    assert png_colour_type(default) == 3 and png_colour_type(lossless) == 2
    assert png_colour_type(plain) == 2
    assert colours(default) <= 256 < colours(lossless)
    assert len(default) < len(lossless) / 2
    assert colours(rough) < colours(default) and len(rough) < len(default)
    # The quantised image stays close to the original (mean error of a few levels).
    error = np.abs(decode(default).astype(int) - decode(lossless).astype(int)).mean()
    assert error < 6
    # Lossless WebP gets the same treatment (near-lossless preprocessing).
    webp_exact = w.dynamic(w.photo, "webp", "o-webp.quality-100-pngquant.quality-100").data
    webp_rough = w.dynamic(w.photo, "webp", "o-webp.quality-100-pngquant.quality-10").data
    assert sniffed(webp_rough) == "webp-lossless"
    assert len(webp_rough) < len(webp_exact)


def check_png_compression_level(w: World) -> None:
    stored = w.dynamic(w.photo, "png", "o-png.compression_level-0-pngquant.quality-100").data
    packed = w.dynamic(w.photo, "png", "o-png.compression_level-9-pngquant.quality-100").data
    assert len(packed) < len(stored)
    assert np.array_equal(decode(packed), decode(stored))


def check_interlacing_mode(w: World) -> None:
    assert not jpeg_progressive(w.dynamic(w.photo, "jpg", "o-interlacing.mode-none").data)
    assert jpeg_progressive(w.dynamic(w.photo, "jpg", "o-interlacing.mode-plane").data)


def check_source_file(w: World) -> None:
    original = bytes(_photo().jpegsave_buffer(Q=91))
    image = w.upload(original, "original.jpg")
    assert (
        w.put_stack("original", {"operations": [], "options": {"source_file": True}}).status_code
        == 201
    )
    assert w.get(f"original/{image}.jpg").data == original


def check_autoformat(w: World) -> None:
    response = w.dynamic(w.photo, "jpg", "o-autoformat-true", Accept="image/webp,*/*")
    assert response.headers["Content-Type"] == "image/webp" and sniffed(response.data) == "webp"
    assert response.headers["Vary"] == "Accept"
    # A PNG asked for becomes lossless WebP, unless webp.quality is set.
    png = w.dynamic(w.photo, "png", "o-autoformat-true", Accept="image/webp")
    assert sniffed(png.data) == "webp-lossless"
    set_q = w.dynamic(w.photo, "png", "o-autoformat-true-webp.quality-80", Accept="image/webp")
    assert sniffed(set_q.data) == "webp"
    plain = w.dynamic(w.photo, "jpg", "o-autoformat-true", Accept="*/*")
    assert sniffed(plain.data) == "jpg"
    # JPEG XL for a client that takes it (and not AVIF); a PNG asked for stays lossless
    jxl = w.dynamic(w.photo, "jpg", "o-autoformat-true", Accept="image/jxl,image/webp")
    assert jxl.headers["Content-Type"] == "image/jxl" and jxl.headers["Vary"] == "Accept"
    lossless = w.dynamic(w.photo, "png", "o-autoformat-true", Accept="image/jxl")
    assert lossless.headers["Content-Type"] == "image/jxl"
    assert np.array_equal(_jxl_pixels(lossless.data), decode(w.dynamic(w.photo, "png").data))


def _jxl_pixels(body: bytes) -> np.ndarray:
    import pillow_jxl  # noqa: F401
    from PIL import Image

    picture = Image.open(io.BytesIO(body))
    return np.asarray(picture.convert("RGBA" if "A" in picture.getbands() else "RGB"))


def check_autoformat_exclude(w: World) -> None:
    both = "image/avif,image/webp,*/*"
    on = "o-autoformat-true"
    assert sniffed(w.dynamic(w.photo, "jpg", on, Accept=both).data) == "avif"
    no_avif = w.dynamic(w.photo, "jpg", f"{on}-autoformat.exclude-avif", Accept=both)
    assert sniffed(no_avif.data) == "webp"
    assert no_avif.headers["Content-Type"] == "image/webp"
    neither = w.dynamic(w.photo, "jpg", f"{on}-autoformat.exclude-avif,webp", Accept=both)
    assert sniffed(neither.data) == "jpg" and neither.headers["Content-Type"] == "image/jpeg"
    no_webp = w.dynamic(w.photo, "png", f"{on}-autoformat.exclude-webp", Accept="image/webp")
    assert sniffed(no_webp.data) == "png"
    # lossless_to_lossy: a PNG asked for never becomes lossy AVIF or lossy WebP.
    assert sniffed(w.dynamic(w.photo, "png", on, Accept=both).data) == "avif"
    lossless = f"{on}-autoformat.exclude-lossless_to_lossy"
    assert sniffed(w.dynamic(w.photo, "png", lossless, Accept=both).data) == "webp-lossless"
    set_q = f"{lossless}-webp.quality-80"
    assert sniffed(w.dynamic(w.photo, "png", set_q, Accept="image/webp").data) == "webp-lossless"
    assert sniffed(w.dynamic(w.photo, "jpg", lossless, Accept=both).data) == "avif"
    # lossy_to_lossless: a JPEG asked for never becomes lossless WebP (webp.quality 100).
    lossy = f"{on}-webp.quality-100"
    assert sniffed(w.dynamic(w.photo, "jpg", lossy, Accept="image/webp").data) == "webp-lossless"
    kept = w.dynamic(
        w.photo, "jpg", f"{lossy}-autoformat.exclude-lossy_to_lossless", Accept="image/webp"
    )
    assert sniffed(kept.data) == "webp"
    # The conversions cropstack never makes can be excluded (nothing changes, no error).
    svg = w.dynamic(w.photo, "jpg", f"{on}-autoformat.exclude-svg,svg_to_png", Accept="image/webp")
    assert sniffed(svg.data) == "webp"


def check_autoformat_include(w: World) -> None:
    options = "o-autoformat-true-autoformat.include-avif"
    response = w.dynamic(w.photo, "jpg", options, Accept="image/avif,image/webp")
    assert response.headers["Content-Type"] == "image/avif" and sniffed(response.data) == "avif"


def check_dpr(w: World) -> None:
    px = decode(w.dynamic(w.photo, "png", "o-dpr-2", ops="resize-width-50").data)
    assert px.shape[1] == 100
    assert w.get(f"dynamic/noop/o-dpr-2/{w.photo}.png").status_code == 400


def check_content_disposition(w: World) -> None:
    response = w.dynamic(w.photo, "jpg", "o-content_disposition-attachment")
    assert response.headers["Content-Disposition"].startswith('attachment; filename="')
    assert response.headers["Content-Disposition"].endswith('.jpg"')
    assert "Content-Disposition" not in w.dynamic(w.photo, "jpg").headers


def check_optim_disable_all(w: World) -> None:
    off = w.dynamic(w.photo, "png", "o-optim.immediate-true-optim.disable_all-true").data
    assert png_colour_type(off) == 2 and colours(off) > 256
    assert png_colour_type(w.dynamic(w.photo, "png", "o-optim.immediate-true").data) == 3


def check_optim_immediate(w: World) -> None:
    now = w.dynamic(w.photo, "png", "o-optim.immediate-true").data
    later = w.dynamic(w.photo, "png", "o-optim.immediate-false").data
    assert png_colour_type(now) == 3 and png_colour_type(later) == 2
    assert len(now) < len(later) / 2
    assert w.dynamic(w.photo, "png").data == later  # off by default, as rokka's first answer
    stack = {"operations": [], "options": {"optim.immediate": True}}
    assert w.put_stack("eager", stack).status_code in (200, 201)


def check_transparency_color(w: World) -> None:
    px = decode(w.dynamic(w.disc, "png", "o-transparency.color-00FF00").data)
    assert px.shape[2] == 3
    assert tuple(px[0, 0]) == (0, 255, 0) and tuple(px[50, 50]) == (255, 0, 0)


def check_jpg_transparency_color(w: World) -> None:
    px = decode(w.dynamic(w.disc, "jpg", "o-jpg.transparency.color-0000FF").data)
    assert np.abs(px[2, 2].astype(int) - (0, 0, 255)).max() <= 8
    white = decode(w.dynamic(w.disc, "jpg").data)
    assert white[2, 2].min() >= 247


def check_jpg_transparency_autoformat(w: World) -> None:
    on = "o-jpg.transparency.autoformat-true"
    webp = w.dynamic(w.disc, "jpg", on, Accept="image/webp,*/*")
    assert webp.headers["Content-Type"] == "image/webp" and sniffed(webp.data) == "webp"
    assert webp.headers["Vary"] == "Accept"
    alpha = decode(webp.data)
    assert alpha.shape[2] == 4 and alpha[0, 0, 3] == 0 and alpha[50, 50, 3] == 255
    for accept in ("*/*", None):
        headers = {"Accept": accept} if accept else {}
        response = w.dynamic(w.disc, "jpg", on, **headers)
        assert response.headers["Content-Type"] == "image/png" and sniffed(response.data) == "png"
        assert decode(response.data)[0, 0, 3] == 0
    as_png = w.dynamic(w.disc, "jpg", "o-jpg.transparency.autoformat-png", Accept="image/webp")
    assert sniffed(as_png.data) == "webp"
    # No visible alpha: the JPEG asked for.
    opaque = w.dynamic(w.grey, "jpg", on, Accept="image/webp")
    assert opaque.headers["Content-Type"] == "image/jpeg" and sniffed(opaque.data) == "jpg"
    # Off (the default): flattened JPEG.
    assert sniffed(w.dynamic(w.disc, "jpg", Accept="image/webp").data) == "jpg"
    attachment = w.dynamic(w.disc, "jpg", f"{on}-content_disposition-attachment")
    assert attachment.headers["Content-Disposition"].endswith('.png"')


def check_jpg_transparency_convert(w: World) -> None:
    options = "o-jpg.transparency.autoformat-true-jpg.transparency.convert-true"
    response = w.dynamic(w.disc, "jpg", options, Accept="image/webp")
    assert response.headers["Content-Type"] == "image/jpeg" and sniffed(response.data) == "jpg"


def check_dpi(w: World) -> None:
    body = w.dynamic(w.photo, "png", "o-dpi-300").data
    assert png_ppm(body) == round(300 / 0.0254)
    assert png_ppm(w.dynamic(w.photo, "png").data) != round(300 / 0.0254)
    lossless = w.dynamic(w.photo, "png", "o-dpi-72-optim.disable_all-true").data
    assert png_ppm(lossless) == round(72 / 0.0254)


def check_protected(w: World) -> None:
    stack = {"operations": [{"name": "noop"}], "options": {"protected": True}}
    assert w.put_stack("secret", stack).status_code == 201
    assert w.get(f"secret/{w.photo}.png").status_code == 403


def _remote_answer(w: World, stack: str, remote: str) -> tuple[int, str]:
    """Status and message of a render of ``-{remote}-`` through ``stack``. The app's SSRF
    guard refuses loopback (403 "private ...") before connecting: that answer shows the
    remote options switched fetching on, without any server."""
    response = w.get(f"{stack}/-{remote}-.png")
    return response.status_code, response.get_json()["error"]["message"]


def check_remote_basepath(w: World) -> None:
    ops = [{"name": "noop"}]
    assert w.put_stack("plain", {"operations": ops}).status_code in (200, 201)
    stack = {"operations": ops, "options": {"remote_basepath": "http://127.0.0.1:9/"}}
    assert w.put_stack("based", stack).status_code in (200, 201)
    assert _remote_answer(w, "plain", "a.png")[0] == 404
    status, message = _remote_answer(w, "based", "a.png")
    assert status == 403 and "private" in message


def check_remote_fullurl_allow(w: World) -> None:
    ops = [{"name": "noop"}]
    stack = {"operations": ops, "options": {"remote_fullurl_allow": True}}
    assert w.put_stack("full", stack).status_code in (200, 201)
    assert _remote_answer(w, "dynamic/noop", "http://127.0.0.1:9/a.png")[0] == 404
    status, message = _remote_answer(w, "full", "http://127.0.0.1:9/a.png")
    assert status == 403 and "private" in message


def check_remote_fullurl_whitelist(w: World) -> None:
    for name, patterns, expected in (
        ("listed", [r"^127\.0\.0\.1$"], "private"),
        ("unlisted", [r"\.example$"], "whitelist"),
    ):
        options = {"remote_fullurl_allow": True, "remote_fullurl_whitelist": patterns}
        stack = {"operations": [{"name": "noop"}], "options": options}
        assert w.put_stack(name, stack).status_code in (200, 201)
        status, message = _remote_answer(w, name, "http://127.0.0.1:9/a.png")
        assert status == 403 and expected in message, message


CHECKS: dict[str, Callable[[World], None]] = {
    "basestack": check_basestack,
    "optim.quality": check_optim_quality,
    "jpg.quality": check_jpg_quality,
    "webp.quality": check_webp_quality,
    "avif.quality": check_avif_quality,
    "gif.quality": check_gif_quality,
    "heif.quality": check_heif_quality,
    "jxl.quality": check_jxl_quality,
    "pdf.dpi": check_pdf_dpi,
    "pdf.page": check_pdf_page,
    "pngquant.quality": check_pngquant_quality,
    "png.compression_level": check_png_compression_level,
    "interlacing.mode": check_interlacing_mode,
    "source_file": check_source_file,
    "autoformat": check_autoformat,
    "autoformat.exclude": check_autoformat_exclude,
    "autoformat.include": check_autoformat_include,
    "dpr": check_dpr,
    "content_disposition": check_content_disposition,
    "optim.disable_all": check_optim_disable_all,
    "optim.immediate": check_optim_immediate,
    "transparency.color": check_transparency_color,
    "jpg.transparency.color": check_jpg_transparency_color,
    "jpg.transparency.autoformat": check_jpg_transparency_autoformat,
    "jpg.transparency.convert": check_jpg_transparency_convert,
    "dpi": check_dpi,
    "protected": check_protected,
    "remote_fullurl_allow": check_remote_fullurl_allow,
    "remote_fullurl_whitelist": check_remote_fullurl_whitelist,
    "remote_basepath": check_remote_basepath,
}


def test_every_advertised_option_has_a_check(world: World) -> None:
    advertised = world.client.get("/stackoptions").get_json()["properties"]
    assert set(advertised) == set(CHECKS)
    assert not set(advertised) & set(REFUSED_OPTIONS)


@pytest.mark.parametrize("name", CHECKS)
def test_option_has_an_observable_effect(world: World, name: str) -> None:
    CHECKS[name](world)


@pytest.mark.parametrize("name", REFUSED_OPTIONS)
def test_refused_option_is_400_in_a_stack_and_a_url(world: World, name: str) -> None:
    stack = {"operations": [{"name": "noop"}], "options": {name: 1}}
    saved = world.put_stack("refused", stack)
    assert saved.status_code == 400
    assert saved.get_json()["error"]["message"].startswith(f"stack option {name} is not supported")
    rendered = world.get(f"dynamic/noop/o-{name}-1/{world.photo}.png")
    assert rendered.status_code == 400
    assert f"stack option {name} is not supported" in rendered.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("area", "size"),
    [
        ({"x": 20, "y": 10, "width": 96, "height": 54}, (54, 96)),  # 16:9: cut exactly
        ({"x": 20, "y": 10, "width": 96, "height": 72}, (72, 96)),  # 4:3: cut exactly too
        ({"x": 100, "y": 80, "width": 96, "height": 54}, (34, 60)),  # clipped: 16:9 part
    ],
)
def test_named_area_with_mode_ratio(world: World, area: dict, size: tuple) -> None:
    """rokka cuts a crop area exactly; a 16:9 one answers 16:9 even past the image edge."""
    response = world.account.request(
        "PUT",
        f"/sourceimages/{world.account.org}/{world.photo}/meta/dynamic/multi_areas",
        data=json.dumps({"landscape_16_9": {"crop_area": area}}),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    with_area = response.get_json()["hash"]
    ops = "crop-width-16-height-9-mode-ratio-area-landscape_16_9"
    px = decode(world.dynamic(with_area, "png", "o-pngquant.quality-100", ops=ops).data)
    assert px.shape[:2] == size
    original = decode(world.dynamic(world.photo, "png", "o-pngquant.quality-100").data)
    top = area["y"] + (min(area["height"], 120 - area["y"]) - size[0]) // 2
    expected = original[top : top + size[0], area["x"] : area["x"] + size[1]]
    assert np.abs(px.astype(int) - expected.astype(int)).max() <= 2
