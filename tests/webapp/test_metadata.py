"""The identity hash and dynamic metadata normalisation (pure, no HTTP)."""

from __future__ import annotations

import hashlib

import pytest

from webapp.metadata import MetadataError, identity_hash, validate_dynamic

RECORDED = [  # (binary_hash, hash) pairs from real rokka traffic (shared/rokka-api.md §4.2)
    ("498fed612f01199cd6702f5effe5fa7bb67e44f4", "063c3dce6a528d8944a63185bd4c7b161454ee4f"),
    ("63a65da81cae86964e3369b4431b80252f9404b0", "fe5d9a097df0e93cf9570cbdb0386b137b4c9ed2"),
    ("1215617542b2926a80396eecf97980359f772aad", "b32fcb212a2a13220c5ad7f8c71bd6ef5dfd0027"),
]


@pytest.mark.parametrize(("binary_hash", "expected"), RECORDED)
def test_plain_hash_matches_rokka(binary_hash, expected):
    assert identity_hash(binary_hash, {}, False) == expected


def test_dynamic_hash_is_canonical_and_protected_differs():
    binary = hashlib.sha1(b"x").hexdigest()
    a = {"subject_area": {"x": 1, "y": 2, "width": 3, "height": 4}, "version": {"text": "v"}}
    b = {"version": {"text": "v"}, "subject_area": {"height": 4, "width": 3, "y": 2, "x": 1}}
    assert identity_hash(binary, a, False) == identity_hash(binary, b, False)
    assert identity_hash(binary, a, False) != identity_hash(binary, {}, False)
    assert identity_hash(binary, {}, True) != identity_hash(binary, {}, False)
    assert identity_hash(binary, a, True) != identity_hash(binary, a, False)
    with pytest.raises(ValueError):
        identity_hash("not-hex", {}, False)


def test_subject_area_defaults_normalise_to_the_same_value():
    short = validate_dynamic("subject_area", {"x": 5, "y": 6})
    full = validate_dynamic("subject_area", {"x": 5, "y": 6, "width": 1, "height": 1})
    assert short == full == {"width": 1, "height": 1, "x": 5, "y": 6}


def test_percentage_allows_fractions_within_0_100():
    area = validate_dynamic(
        "crop_area", {"x": 0.5, "y": 0, "width": 50, "height": 99.5, "percentage": True}
    )
    assert area["percentage"] is True and area["x"] == 0.5
    with pytest.raises(MetadataError, match="crop_area.width"):
        validate_dynamic(
            "crop_area", {"x": 0, "y": 0, "width": 100.5, "height": 1, "percentage": True}
        )
