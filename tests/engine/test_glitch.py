"""glitch: databending that is the same for the same ``random`` and keeps size and alpha."""

from __future__ import annotations

import numpy as np
import pyvips

import engine
from engine.operations.glitch import corrupt
from tests.engine.conftest import decode, op, plan, png


def _photo(width: int = 320, height: int = 240) -> bytes:
    x = np.linspace(0, 255, width)[None, :, None]
    y = np.linspace(0, 255, height)[:, None, None]
    arr = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2).astype(np.uint8)
    return png(pyvips.Image.new_from_array(arr, interpretation="srgb"))


def _render(source: bytes, **options) -> np.ndarray:  # noqa: ANN003
    return decode(engine.render(plan(op("glitch", **options)), source).body).astype(int)


def _changed(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels that differ by more than JPEG noise."""
    return float((np.abs(a - b).max(axis=2) > 40).mean())


def test_same_random_same_glitch_other_random_other_glitch():
    source = _photo()
    first = _render(source, amount=5, random="one")
    assert np.array_equal(first, _render(source, amount=5, random="one"))
    other = _render(source, amount=5, random="two")
    assert _changed(first, other) > 0.005


def test_glitch_changes_bands_and_more_with_more_amount():
    source = _photo()
    original = decode(source).astype(int)
    assert np.array_equal(_render(source, amount=0, random="a"), original)
    light = _changed(_render(source, amount=1, random="a"), original)
    heavy = _changed(_render(source, amount=10, random="a"), original)
    assert 0 < light < heavy < 0.6
    # A corrupted byte spoils the rest of its 16 px band; the rows are glitched in bands.
    rows = (np.abs(_render(source, amount=10, random="a") - original).max(axis=2) > 40).any(axis=1)
    assert 0 < rows.sum() < len(rows)


def test_glitch_keeps_size_and_alpha():
    arr = np.zeros((100, 160, 4), dtype=np.uint8)
    arr[..., 0] = 200
    arr[..., 3] = np.linspace(0, 255, 160)[None, :].astype(np.uint8)
    source = png(pyvips.Image.new_from_array(arr, interpretation="srgb"))
    out = engine.render(plan(op("glitch", amount=10, random="z")), source)
    pixels = decode(out.body)
    assert (out.width, out.height) == (160, 100)
    assert np.array_equal(pixels[..., 3], arr[..., 3])


def test_corruption_never_touches_markers():
    image = pyvips.Image.black(64, 64, bands=3) + 100
    data = bytes(image.cast("uchar").jpegsave_buffer(restart_interval=8))
    broken = corrupt(data, 50, b"seed")
    assert len(broken) == len(data) and broken != data
    assert [i for i, b in enumerate(data) if b == 0xFF] == [
        i for i, b in enumerate(broken) if b == 0xFF
    ]
    assert [data[i + 1] for i, b in enumerate(data[:-1]) if b == 0xFF] == [
        broken[i + 1] for i, b in enumerate(broken[:-1]) if b == 0xFF
    ]
