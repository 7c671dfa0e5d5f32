"""engine/landmarks.py as tables: choosing the eyes and the mouth among detector hits,
the points read off them, and the stored ``detection_eyemouth`` form both ways."""

from __future__ import annotations

import pytest

from engine.landmarks import (
    FEATURES,
    Rect,
    eye_pair,
    eyemouth_metadata,
    mouth,
    parse_eyemouth,
    points,
)
from stacks.operations import FACE_FEATURES

FACE = Rect(0, 0, 100, 100)
LEFT_EYE, RIGHT_EYE = Rect(15, 25, 20, 20), Rect(65, 25, 20, 20)


def test_stacks_declares_the_features_the_engine_finds():
    assert FACE_FEATURES == FEATURES


@pytest.mark.parametrize(
    ("hits", "expected"),
    [
        ([LEFT_EYE, RIGHT_EYE], (LEFT_EYE, RIGHT_EYE)),
        ([RIGHT_EYE, LEFT_EYE], (LEFT_EYE, RIGHT_EYE)),  # image-left eye first
        ([LEFT_EYE, Rect(20, 30, 5, 5), RIGHT_EYE], (LEFT_EYE, RIGHT_EYE)),  # largest wins
        ([LEFT_EYE], None),  # one eye is not a pair
        ([LEFT_EYE, Rect(65, 70, 20, 20)], None),  # a hit in the lower face is no eye
        ([Rect(5, 25, 20, 20), Rect(30, 25, 15, 15)], None),  # both in the left half
    ],
)
def test_eye_pair(hits, expected):
    assert eye_pair(FACE, hits) == expected


@pytest.mark.parametrize(
    ("hits", "eyes", "expected"),
    [
        ([Rect(30, 70, 40, 20)], (LEFT_EYE, RIGHT_EYE), Rect(30, 70, 40, 20)),
        ([Rect(30, 30, 40, 20)], (LEFT_EYE, RIGHT_EYE), None),  # at eye height
        ([Rect(35, 48, 30, 10)], (LEFT_EYE, RIGHT_EYE), None),  # the nostrils: too high
        ([Rect(0, 70, 20, 20)], (LEFT_EYE, RIGHT_EYE), None),  # off to the side
        # of two, the larger; of two as large, the one under the middle between the eyes
        ([Rect(35, 62, 30, 10), Rect(25, 70, 50, 24)], (LEFT_EYE, RIGHT_EYE), Rect(25, 70, 50, 24)),
        ([Rect(20, 70, 40, 20), Rect(31, 72, 40, 20)], (LEFT_EYE, RIGHT_EYE), Rect(31, 72, 40, 20)),
        ([Rect(30, 70, 40, 20)], None, Rect(30, 70, 40, 20)),  # without eyes: lower half
        ([Rect(30, 20, 40, 20)], None, None),
    ],
)
def test_mouth(hits, eyes, expected):
    assert mouth(FACE, hits, eyes) == expected


def test_points_from_the_boxes():
    found = points((LEFT_EYE, RIGHT_EYE), Rect(30, 70, 40, 20))
    assert found == {
        "eyeLeft": (25, 35),
        "eyeRight": (75, 35),
        "mouthLeft": (36, 80),
        "mouthRight": (64, 80),
        "mouthUp": (50, 75),
        "mouthDown": (50, 85),
    }
    assert points(None, None) == {}
    assert set(points((LEFT_EYE, RIGHT_EYE), None)) == {"eyeLeft", "eyeRight"}


def test_stored_form_and_back():
    faces = [
        {"eyeLeft": (25.4, 35.0), "eyeRight": (75.0, 35.6), "mouthLeft": (36, 80)},
        {"eyeLeft": (200, 40), "eyeRight": (240, 42)},
    ]
    stored = eyemouth_metadata(faces)
    assert stored["faces"][0] == {
        "width": 50,
        "height": 45,
        "x": 25,
        "y": 35,
        "eyeLeft": {"x": 25, "y": 35},
        "eyeRight": {"x": 75, "y": 36},
        "mouthLeft": {"x": 36, "y": 80},
    }
    assert (stored["x"], stored["y"], stored["width"], stored["height"]) == (25, 35, 215, 45)
    assert parse_eyemouth(stored) == (
        {"eyeLeft": (25.0, 35.0), "eyeRight": (75.0, 36.0), "mouthLeft": (36.0, 80.0)},
        {"eyeLeft": (200.0, 40.0), "eyeRight": (240.0, 42.0)},
    )
    assert eyemouth_metadata([]) == {"faces": []}


@pytest.mark.parametrize(
    "raw",
    [None, [], "x", {"faces": "x"}, {"faces": [1, {"eyeLeft": {"x": "1", "y": 2}}]}],
)
def test_malformed_stored_landmarks_are_skipped(raw):
    assert parse_eyemouth(raw) == ()
