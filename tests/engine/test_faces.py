"""engine.faces on its own: the detection size and boxes scaled back to the stored size."""

from __future__ import annotations

from importlib import resources

import pytest
import pyvips

from engine.faces import DETECT_SIDE, cascade_work, detect_faces, detection_size
from engine.geometry import Size


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (Size(4000, 3000), Size(1024, 768)),
        (Size(3000, 4000), Size(768, 1024)),
        (Size(500, 300), Size(500, 300)),  # never enlarged
        (Size(1, 20000), Size(1, 1024)),
        (Size(1024, 1024), Size(1024, 1024)),
    ],
)
def test_detection_size_shrinks_the_long_side_only(size, expected):
    assert detection_size(size) == expected


def test_cascade_work_grows_with_the_scanned_pixels():
    assert cascade_work(Size(1000, 1000)) == pytest.approx(4 * cascade_work(Size(500, 500)))


def _astronaut(scale: float) -> tuple[bytes, int]:
    data = (resources.files("skimage.data") / "astronaut.png").read_bytes()
    image = pyvips.Image.new_from_buffer(data, "").resize(scale)
    return bytes(image.pngsave_buffer(compression=1)), image.width


def test_boxes_are_in_the_stored_size_whatever_size_detection_ran_at():
    small, side = _astronaut(1.0)
    (face,) = detect_faces(small, width=side, height=side)
    big, big_side = _astronaut(4.0)  # 2048 px: scanned at 1024, boxes scaled back x2
    assert big_side > DETECT_SIDE
    (large,) = detect_faces(big, width=big_side, height=big_side)
    for a, b in ((face.x, large.x), (face.y, large.y), (face.width, large.width)):
        assert abs(a * 4 - b) <= 0.1 * large.width
    assert large.x + large.width <= big_side and large.y + large.height <= big_side
