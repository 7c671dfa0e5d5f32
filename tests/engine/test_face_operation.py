"""The ``face`` operation, pixel by pixel, on synthetic landmarks (exact geometry): size,
turn and anchor of the secondary, faces without the features, images never detected,
features moved by earlier operations, and the work bound."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import pyvips

import engine
from engine.errors import BadSourceOption
from engine.geometry import Size
from engine.operations.face import FaceParameters, placement
from tests.engine.conftest import decode, op, plan, png, scene

BLUE = (0, 0, 255)
GREEN = (0, 255, 0)


def secondary(width: int = 40, height: int = 10) -> engine.Resource:
    """A blue bar with a green right half: shows where the secondary's sides went."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[:, : width // 2] = BLUE
    arr[:, width // 2 :] = GREEN
    data = png(pyvips.Image.new_from_array(arr, interpretation="srgb"))
    return engine.Resource(data, engine.inspect(data), None)


def eyemouth(*faces: dict[str, tuple[int, int]]) -> dict[str, Any]:
    return {
        "detection_face": {"faces": []},
        "detection_eyemouth": {
            "faces": [{n: {"x": x, "y": y} for n, (x, y) in f.items()} for f in faces]
        },
    }


def render(*ops, metadata: dict[str, Any] | None, source: bytes | None = None) -> np.ndarray:
    out = engine.render(
        plan(*ops),
        source or png(scene(200, 100)),
        dynamic_metadata=metadata,
        resources={"abcdef": secondary()},
    )
    return decode(out.body)


def mask(pixels: np.ndarray, colour: tuple[int, int, int], tol: int = 60) -> np.ndarray:
    return np.abs(pixels[..., :3].astype(int) - np.array(colour)).max(axis=-1) <= tol


def bounds(found: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(found)
    assert len(xs), "nothing found"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def face(**options: Any):  # noqa: ANN201
    given = {"secondary_image": "abcdef", "leftFeature": "eyeLeft", "rightFeature": "eyeRight"}
    return op("face", **{**given, **options})


EYES = {"eyeLeft": (60, 50), "eyeRight": (100, 50)}
TOL = 1  # px: bilinear edges


def assert_box(found: tuple[int, int, int, int], expected: tuple[int, int, int, int]) -> None:
    assert all(abs(a - b) <= TOL for a, b in zip(found, expected, strict=True)), (found, expected)


def test_default_centres_the_secondary_between_the_features_as_wide_as_they_are_apart():
    px = render(face(), metadata=eyemouth(EYES))
    assert px.shape == (100, 200, 3)  # the image keeps its size
    # 40 px apart: the 40 x 10 bar, blue half on the left eye, green on the right.
    assert_box(bounds(mask(px, BLUE)), (60, 45, 79, 54))
    assert_box(bounds(mask(px, GREEN)), (80, 45, 99, 54))


@pytest.mark.parametrize(
    ("anchor", "blue"),
    [
        ("left_top", (60, 50, 79, 59)),  # top-left corner on the left eye
        ("left_center", (60, 45, 79, 54)),
        ("right_bottom", (60, 40, 79, 49)),  # bottom-right corner on the right eye
        ("center_bottom", (60, 40, 79, 49)),  # bottom edge's middle between the eyes
        ("0_0", (60, 50, 79, 59)),  # pixel (0, 0) of the secondary on the left eye
        ("20_5", (40, 45, 59, 54)),  # its middle (20, 5) on the left eye
    ],
)
def test_anchor_says_which_point_of_the_secondary_sits_where(anchor, blue):
    px = render(face(anchor=anchor), metadata=eyemouth(EYES))
    assert_box(bounds(mask(px, BLUE)), blue)


def test_scale_multiplies_the_size_and_pixel_anchors_scale_with_it():
    px = render(face(scale=2), metadata=eyemouth(EYES))
    assert_box(bounds(mask(px, BLUE)), (40, 40, 79, 59))
    assert_box(bounds(mask(px, GREEN)), (80, 40, 119, 59))
    # pixel 20_5 of the stored secondary is its middle at any scale
    px = render(face(scale=2, anchor="20_5"), metadata=eyemouth(EYES))
    assert_box(bounds(mask(px, BLUE)), (20, 40, 59, 59))


def test_the_secondary_turns_with_the_line_between_the_features():
    # The right eye 45 degrees below-right of the left one.
    px = render(face(), metadata=eyemouth({"eyeLeft": (60, 40), "eyeRight": (100, 80)}))
    blue = np.argwhere(mask(px, BLUE)).mean(axis=0)
    green = np.argwhere(mask(px, GREEN)).mean(axis=0)
    dy, dx = green - blue
    assert abs(np.degrees(np.arctan2(dy, dx)) - 45) < 3
    # centred on the midpoint (80, 60)
    centre = np.argwhere(mask(px, BLUE) | mask(px, GREEN)).mean(axis=0)
    assert abs(centre[1] - 80) <= 1.5 and abs(centre[0] - 60) <= 1.5


def test_every_face_with_both_features_gets_one_and_others_stay_as_they_were():
    faces = eyemouth(
        {"eyeLeft": (20, 30), "eyeRight": (40, 30)},
        {"mouthLeft": (120, 70), "mouthRight": (160, 70)},  # no eyes: left alone
        {"eyeLeft": (140, 20), "eyeRight": (180, 20)},
    )
    px = render(face(), metadata=faces)
    blue = mask(px, BLUE)
    assert_box(bounds(blue[:, :100]), (20, 28, 29, 32))
    assert_box(bounds(blue[:, 100:]), (140 - 100, 15, 159 - 100, 24))
    original = decode(png(scene(200, 100)))[..., :3]
    assert np.array_equal(px[50:, 100:], original[50:, 100:])
    # the mouth works as features as well
    px = render(face(leftFeature="mouthLeft", rightFeature="mouthRight"), metadata=faces)
    assert_box(bounds(mask(px, BLUE)), (120, 65, 139, 74))


def test_detection_without_landmarks_leaves_the_image_unchanged():
    source = png(scene(200, 100))
    px = render(face(), metadata=eyemouth(), source=source)
    assert np.array_equal(px, decode(source)[..., :3])


@pytest.mark.parametrize("metadata", [None, {"detection_face": {"faces": []}}])
def test_an_image_never_detected_is_a_400_that_says_what_to_do(metadata):
    with pytest.raises(BadSourceOption) as caught:
        render(face(), metadata=metadata)
    assert caught.value.status == 400
    assert "detection_face" in caught.value.message


def test_features_follow_earlier_operations():
    # Half size: the eyes are 20 px apart at (30, 25) and (50, 25).
    px = render(op("resize", width=100), face(), metadata=eyemouth(EYES))
    assert px.shape == (50, 100, 3)
    assert_box(bounds(mask(px, BLUE)), (30, 23, 39, 27))
    # A crop that cuts the left eye away leaves that face alone.
    px = render(op("crop", width=100, height=100, anchor="80_0"), face(), metadata=eyemouth(EYES))
    assert not mask(px, BLUE).any() and not mask(px, GREEN).any()
    # A crop that keeps both moves them.
    px = render(op("crop", width=100, height=60, anchor="40_20"), face(), metadata=eyemouth(EYES))
    assert_box(bounds(mask(px, BLUE)), (20, 25, 39, 34))


def test_secondaries_covering_more_than_half_the_image_are_a_400():
    with pytest.raises(engine.OverBudget) as caught:
        render(face(scale=10), metadata=eyemouth(EYES))
    assert caught.value.status == 400
    assert "scale" in caught.value.message


def test_a_transparent_secondary_shows_the_image_through_it():
    arr = np.zeros((10, 40, 4), dtype=np.uint8)
    arr[:, :20] = (*BLUE, 255)  # left half opaque blue, right half fully transparent
    data = png(pyvips.Image.new_from_array(arr, interpretation="srgb"))
    source = png(scene(200, 100))
    out = engine.render(
        plan(face()),
        source,
        dynamic_metadata=eyemouth(EYES),
        resources={"abcdef": engine.Resource(data, engine.inspect(data), None)},
    )
    px = decode(out.body)
    assert px.shape[2] == 3  # an opaque image stays opaque
    assert_box(bounds(mask(px, BLUE)), (60, 45, 79, 54))
    original = decode(source)[..., :3]
    assert np.abs(px[46:54, 82:98].astype(int) - original[46:54, 82:98]).max() <= 2


@pytest.mark.parametrize(
    ("left", "right", "anchor", "expected"),
    [
        ((0, 0), (30, 0), "center_center", (30, 8, 0.0, (15.0, 4.0), (15.0, 0.0))),
        ((0, 0), (0, 30), "left_top", (30, 8, 90.0, (0.0, 0.0), (0, 0))),
        ((10, 10), (10.5, 10), "center_center", None),  # less than a pixel apart
    ],
)
def test_placement_table(left, right, anchor, expected):
    p = FaceParameters("abcdef", "eyeLeft", "eyeRight", anchor, 1.0)
    placed = placement(left, right, Size(60, 16), p)
    if expected is None:
        assert placed is None
        return
    assert placed is not None
    width, height, angle, anchor_point, target = expected
    assert (placed.width, placed.height) == (width, height)
    assert placed.angle == pytest.approx(angle)
    assert placed.anchor == pytest.approx(anchor_point)
    assert placed.target == pytest.approx(target)
