"""engine.faces on its own: the detection size and boxes scaled back to the stored size."""

from __future__ import annotations

from importlib import resources

import pytest
import pyvips

from engine.faces import (
    DETECT_SIDE,
    LANDMARK_PASSES_PER_FACE,
    MAX_LANDMARK_FACES,
    cascade_work,
    detect_faces,
    detection_size,
)
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
    # The face scan grows with the pixels; the landmark scans (a fixed size per face, at
    # most MAX_LANDMARK_FACES faces) add the same amount to every detection.
    fixed = MAX_LANDMARK_FACES * LANDMARK_PASSES_PER_FACE
    assert cascade_work(Size(1000, 1000)) - fixed == pytest.approx(
        4 * (cascade_work(Size(500, 500)) - fixed)
    )


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


# The astronaut's eye centres and mouth (middle of the lips) in astronaut.png, measured by
# eye on the picture, px.
EYE_LEFT, EYE_RIGHT, MOUTH = (201, 101), (247, 104), (222, 142)


def _near(point: tuple[float, float], expected: tuple[float, float], tolerance: float) -> bool:
    return abs(point[0] - expected[0]) <= tolerance and abs(point[1] - expected[1]) <= tolerance


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_eyes_and_mouth_of_the_astronaut_are_found_at_any_size(scale):
    data, side = _astronaut(scale)
    (face,) = detect_faces(data, width=side, height=side)
    points = {name: (x / scale, y / scale) for name, x, y in face.landmarks}
    assert set(points) == {"eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "mouthUp", "mouthDown"}
    assert _near(points["eyeLeft"], EYE_LEFT, 4), points
    assert _near(points["eyeRight"], EYE_RIGHT, 4), points
    middle = ((points["mouthLeft"][0] + points["mouthRight"][0]) / 2, points["mouthLeft"][1])
    assert _near(middle, MOUTH, 6), points
    # corners left and right of the middle, top above the bottom, all inside the face box
    assert points["mouthLeft"][0] < MOUTH[0] < points["mouthRight"][0]
    assert points["mouthUp"][1] < points["mouthDown"][1]
    for x, y in points.values():
        assert face.x <= x * scale <= face.x + face.width
        assert face.y <= y * scale <= face.y + face.height * 1.15


def test_a_picture_without_faces_has_no_landmarks():
    flat = pyvips.Image.black(300, 200) + 128
    assert detect_faces(bytes(flat.cast("uchar").pngsave_buffer()), width=300, height=200) == ()
