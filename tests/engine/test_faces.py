"""engine.faces on its own: the detection size and boxes scaled back to the stored size."""

from __future__ import annotations

from importlib import resources

import pytest
import pyvips

from engine.faces import (
    CASCADE_PASSES_PER_MP,
    DETECT_SIDE,
    LANDMARK_PASSES_PER_FACE,
    MAX_LANDMARK_FACES,
    cascade_work,
    detect_faces,
    detection_size,
    merge_profiles,
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
    # The scans grow with the pixels; the landmark scans (a fixed size per face, at most
    # MAX_LANDMARK_FACES faces) add the same amount to every detection.
    fixed = MAX_LANDMARK_FACES * LANDMARK_PASSES_PER_FACE
    assert cascade_work(Size(300, 300)) - fixed == pytest.approx(
        4 * (cascade_work(Size(150, 150)) - fixed)
    )
    # past PROFILE_SIDE the profile scans run on a shrunk copy: only the frontal part grows
    big, small = cascade_work(Size(1024, 1024)), cascade_work(Size(512, 512))
    assert big - small == pytest.approx((1024**2 - 512**2) / 1e6 * CASCADE_PASSES_PER_MP)


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


# The cameraman's head in scikit-image's camera.png (512 x 512), turned to the image's
# right in profile, measured by eye: x, y, width, height.
CAMERAMAN = (190, 100, 75, 95)


def _camera(mirrored: bool) -> bytes:
    image = pyvips.Image.new_from_buffer(
        (resources.files("skimage.data") / "camera.png").read_bytes(), ""
    )
    return bytes((image.fliphor() if mirrored else image).pngsave_buffer())


def _inside_share(box: tuple[int, int, int, int], area: tuple[int, int, int, int]) -> float:
    ix = max(0, min(box[0] + box[2], area[0] + area[2]) - max(box[0], area[0]))
    iy = max(0, min(box[1] + box[3], area[1] + area[3]) - max(box[1], area[1]))
    return ix * iy / (box[2] * box[3])


@pytest.mark.parametrize("mirrored", [False, True], ids=["looking right", "looking left"])
def test_profiles_are_found_looking_either_way(mirrored):
    (face,) = detect_faces(_camera(mirrored), width=512, height=512)
    x, y, w, h = CAMERAMAN
    expected = (512 - x - w, y, w, h) if mirrored else CAMERAMAN
    assert _inside_share((face.x, face.y, face.width, face.height), expected) > 0.6, face
    assert face.landmarks == ()  # landmarks are looked for in frontal faces only


@pytest.mark.parametrize(
    ("frontal", "profiles", "expected"),
    [
        ([], [], []),
        ([(10, 10, 50, 50)], [(15, 12, 45, 45)], [(10, 10, 50, 50)]),  # the same face
        ([(10, 10, 50, 50)], [(200, 10, 40, 40)], [(10, 10, 50, 50), (200, 10, 40, 40)]),
        # the two directions found one face: the larger box is kept
        ([], [(100, 100, 40, 40), (104, 98, 44, 44)], [(104, 98, 44, 44)]),
        # a small profile inside a large one is the same face too
        ([], [(100, 100, 80, 80), (120, 120, 20, 20)], [(100, 100, 80, 80)]),
        # just touching is not overlapping
        ([(0, 0, 10, 10)], [(10, 0, 10, 10)], [(0, 0, 10, 10), (10, 0, 10, 10)]),
    ],
)
def test_profiles_merge_with_frontal_faces(frontal, profiles, expected):
    assert merge_profiles(frontal, profiles) == expected
