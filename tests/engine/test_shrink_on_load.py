"""A leading crop followed by a downsizing resize decodes a JPEG shrunk, with the same result.

The shrunk path is taken for JPEG sources only; a PNG of the same decoded pixels takes the
full-size path, so comparing the two checks that shrinking changes speed, not output.
"""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

import engine
from tests.engine.conftest import decode, jpeg, op, plan, png, red_centre, red_mask, scene
from tests.engine.test_render import _stored_for

# A large scene so that a 1/4 or 1/8 decode is possible for a small output.
W, H = 2400, 1600
SQUARE = (1700, 300, 160)
SUBJECT = {"subject_area": {"x": 1700, "y": 300, "width": 160, "height": 160}}


def _pair(display: pyvips.Image, orientation: int = 1) -> tuple[bytes, bytes]:
    """The same picture as a JPEG (possibly EXIF-rotated) and as a PNG of its decoded pixels."""
    jpg = jpeg(_stored_for(display, orientation))
    decoded = pyvips.Image.new_from_buffer(jpg, "").autorot()
    return jpg, png(decoded)


@pytest.mark.parametrize(
    "operations",
    [
        (op("crop", width=16, height=9, mode="ratio"), op("resize", width=300)),
        (op("crop", width=800, height=800), op("resize", width=200, height=200)),
        (op("crop", width=3, height=4, mode="ratio", anchor="left_top"), op("resize", height=100)),
    ],
)
@pytest.mark.parametrize("orientation", [1, 6])
def test_crop_then_resize_matches_full_size_decode(operations, orientation, monkeypatch):
    jpg, same_png = _pair(scene(W, H, square=SQUARE), orientation)
    shrinks: list[int] = []
    load = pyvips.Image.new_from_buffer

    def spy(data, options, **kwargs):  # noqa: ANN001, ANN202
        shrinks.append(kwargs.get("shrink", 1))
        return load(data, options, **kwargs)

    monkeypatch.setattr(pyvips.Image, "new_from_buffer", staticmethod(spy))
    shrunk = engine.render(plan(*operations), jpg, dynamic_metadata=SUBJECT)
    assert max(shrinks) >= 2, "the JPEG was decoded at full size"
    monkeypatch.undo()
    full = engine.render(plan(*operations), same_png, dynamic_metadata=SUBJECT)
    assert (shrunk.width, shrunk.height) == (full.width, full.height)
    a, b = decode(shrunk.body).astype(int), decode(full.body).astype(int)
    assert np.abs(a - b).mean() < 3.0
    if red_mask(b).any():
        assert red_centre(a) == pytest.approx(red_centre(b), abs=2.0)


def test_subject_stays_centred_through_shrunk_crop():
    jpg, _ = _pair(scene(W, H, square=SQUARE))
    p = plan(op("crop", width=1000, height=1000), op("resize", width=100, height=100))
    out = engine.render(p, jpg, dynamic_metadata=SUBJECT)
    assert (out.width, out.height) == (100, 100)
    # the 1000x1000 box centred on the square (1780, 380) is clamped to the top edge
    x, y = red_centre(decode(out.body))
    assert x == pytest.approx(49.5, abs=1.5)
    assert y == pytest.approx(38.0, abs=1.5)
