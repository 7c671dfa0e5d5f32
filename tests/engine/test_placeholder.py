"""``.blur``: the BlurHash of the rendered image, decoded back to check what it carries."""

from __future__ import annotations

import blurhash
import numpy as np
import pytest
import pyvips

import engine
from tests.engine.conftest import decode, op, plan, png, scene


def _gradient(width: int, height: int) -> pyvips.Image:
    """Warm on the left, cool on the right, darker towards the bottom (moderate contrast)."""
    x = np.linspace(0, 1, width)[None, :]
    y = np.linspace(0, 1, height)[:, None]
    r = 200 - 80 * x - 40 * y
    g = 120 + 0 * x - 30 * y
    b = 60 + 120 * x - 20 * y
    arr = np.stack([r, g, b], axis=2).clip(0, 255).astype(np.uint8)
    return pyvips.Image.new_from_array(arr, interpretation="srgb")


def _hash(body: bytes) -> str:
    text = body.decode("ascii")
    assert len(text) == 28  # 4 + 2 x 12 components
    assert blurhash.components(text) == (4, 3)
    return text


def _to_linear(srgb: np.ndarray) -> np.ndarray:
    v = srgb / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    v = np.clip(linear, 0.0, 1.0)
    return 255.0 * np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def _average(pixels: np.ndarray) -> np.ndarray:
    """The average colour of sRGB ``pixels`` (0-255), averaged in linear light as light
    mixes (a BlurHash's first component is exactly that), as sRGB 0-255."""
    return _to_srgb(_to_linear(pixels[..., :3].astype(float)).mean(axis=(0, 1)))


def _decoded_mean(text: str, width: int = 32, height: int = 24) -> np.ndarray:
    """The average colour of the placeholder a front end paints from ``text``."""
    return _average(np.asarray(blurhash.decode(text, width, height), dtype=float))


@pytest.mark.parametrize(
    ("image", "ops"),
    [
        (_gradient(400, 300), ()),
        (_gradient(300, 600), (op("resize", width=120),)),
        (scene(400, 300, square=(100, 50, 150)), (op("rotate", angle=90),)),
        (scene(400, 300, colour=(20, 160, 90), square=(0, 0, 400)), ()),
    ],
    ids=["gradient", "portrait-resized", "square-rotated", "flat-green"],
)
def test_hash_decodes_to_the_rendered_images_average_colour(image, ops):
    source = png(image)
    blur = engine.render(plan(*ops, fmt="blur"), source)
    assert blur.mimetype == "text/plain" and blur.ext == "blur"
    text = _hash(blur.body)
    rendered = decode(engine.render(plan(*ops, fmt="png"), source).body)
    # Within 3 of 255 levels per channel: the hash quantises its mean to 8 bits and the
    # decoded placeholder rounds each pixel.
    assert np.abs(_decoded_mean(text) - _average(rendered)).max() < 3
    assert (blur.width, blur.height) == (rendered.shape[1], rendered.shape[0])


def test_hash_follows_the_operations():
    # Crop to the red square: the placeholder is red, not the grey around it.
    source = png(scene(400, 300, square=(250, 100, 80)))
    whole = _hash(engine.render(plan(fmt="blur"), source).body)
    cropped = _hash(
        engine.render(
            plan(op("crop", width=80, height=80, anchor="250_100"), fmt="blur"), source
        ).body
    )
    assert _decoded_mean(whole)[0] < 160
    red = _decoded_mean(cropped)
    assert red[0] > 230 and red[1] < 30 and red[2] < 30


def test_hash_keeps_where_the_colours_are():
    # Left half black, right half white: the decoded placeholder is dark left, light right.
    arr = np.zeros((100, 200, 3), dtype=np.uint8)
    arr[:, 100:] = 255
    text = _hash(engine.render(plan(fmt="blur"), png(pyvips.Image.new_from_array(arr))).body)
    decoded = np.asarray(blurhash.decode(text, 40, 20), dtype=float)
    # (4 cosines cannot draw a hard edge: the halves blur into each other towards the middle)
    left, right = decoded[:, :8].mean(), decoded[:, -8:].mean()
    assert left < 110 and right > 200 and right - left > 120


def test_transparent_pixels_count_as_the_jpeg_background():
    # Fully transparent pixels are flattened like a JPEG render: onto white by default,
    # onto jpg.transparency.color when the stack sets it.
    arr = np.zeros((50, 50, 4), dtype=np.uint8)
    source = png(pyvips.Image.new_from_array(arr, interpretation="srgb"))
    white = _decoded_mean(_hash(engine.render(plan(fmt="blur"), source).body))
    assert white.min() > 250
    blue = engine.render(plan(fmt="blur", **{"jpg.transparency.color": "0000FF"}), source)
    assert np.abs(_decoded_mean(_hash(blue.body)) - [0, 0, 255]).max() < 4


def test_same_render_same_hash():
    source = png(_gradient(64, 64))
    first = engine.render(plan(op("blur", sigma=2), fmt="blur"), source).body
    assert engine.render(plan(op("blur", sigma=2), fmt="blur"), source).body == first


def test_blur_is_never_swapped_for_an_image_format():
    assert engine.negotiate("blur", "image/avif,image/webp,*/*", True) == ("blur", False)
