"""The stack option table (rokka-api.md §2.3) and GET /stackoptions."""

from __future__ import annotations

import pytest

from stacks.errors import StackError
from stacks.options import (
    STACK_OPTIONS,
    complete_options,
    describe_stack_options,
    options_from_json,
    options_from_text,
)

# name -> (default, minimum, maximum) typed from rokka-api.md §2.3 (2026 defaults).
EXPECTED = {
    "basestack": (None, None, None),
    "optim.quality": (5, 0, 10),
    "jpg.quality": (80, 1, 100),
    "webp.quality": (80, 1, 100),
    "heif.quality": (40, 1, 100),
    "avif.quality": (45, 1, 100),
    "jxl.quality": (70, 1, 100),
    "gif.quality": (70, 1, 100),
    "jp2.quality": (40, 1, 100),
    "av1.quality": (70, 1, 100),
    "webm.quality": (50, 1, 100),
    "mp4.quality": (50, 1, 100),
    "pngquant.quality": (98, 10, 100),
    "png.compression_level": (7, 0, 9),
    "interlacing.mode": ("plane", None, None),
    "source_file": (False, None, None),
    "remote_fullurl_allow": (False, None, None),
    "remote_fullurl_whitelist": (None, None, None),
    "remote_basepath": (None, None, None),
    "autoformat": (False, None, None),
    "autoformat.exclude": (None, None, None),
    "autoformat.include": (None, None, None),
    "dpr": (1.0, 1, 10),
    "content_disposition": ("inline", None, None),
    "optim.disable_all": (False, None, None),
    "optim.immediate": (False, None, None),
    "optim.ttl_shared": (False, None, None),
    "timing_origin": (None, None, None),
    "transparency.color": (None, None, None),
    "jpg.transparency.color": ("FFFFFF", None, None),
    "jpg.transparency.autoformat": ("false", None, None),
    "jpg.transparency.convert": (False, None, None),
    "timestamp": (None, None, None),
    "fps": (10, 1, 25),
    "dpi": (None, 10, 5000),
    "pdf.dpi": (200, 10, 1000),
    "pdf.page": (1, 1, 1000),
    "min_video_width": (None, 0, 6000),
    "min_video_height": (None, 0, 2200),
    "protected": (False, None, None),
}
STACK_ONLY = (
    "basestack",
    "source_file",
    "remote_fullurl_allow",
    "remote_fullurl_whitelist",
    "remote_basepath",
    "protected",
)


def test_table_has_exactly_the_reference_options() -> None:
    assert set(STACK_OPTIONS) == set(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_default_and_range(name: str) -> None:
    param = STACK_OPTIONS[name]
    assert (param.default, param.minimum, param.maximum) == EXPECTED[name]


@pytest.mark.parametrize("name", [n for n, (_, low, high) in EXPECTED.items() if low is not None])
def test_ranges_enforced(name: str) -> None:
    _, low, high = EXPECTED[name]
    assert options_from_json({name: high}) == {name: high}
    with pytest.raises(StackError) as error:
        options_from_json({name: high + 1})
    assert error.value.parameter == name
    with pytest.raises(StackError):
        options_from_json({name: low - 1})


def test_complete_options_fills_every_default() -> None:
    complete = complete_options({"jpg.quality": 50})
    assert complete["jpg.quality"] == 50
    assert {k: v for k, v in complete.items() if k != "jpg.quality"} == {
        k: d for k, (d, _, _) in EXPECTED.items() if k != "jpg.quality"
    }


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ({"jpg.quality": "90"}, {"jpg.quality": 90}),
        ({"dpr": "2"}, {"dpr": 2}),
        ({"dpr": "1.5"}, {"dpr": 1.5}),
        ({"autoformat": "true"}, {"autoformat": True}),
        ({"af": "1"}, {"autoformat": True}),
        ({"af": "false"}, {"autoformat": False}),
        ({"content_disposition": "attachment"}, {"content_disposition": "attachment"}),
        ({"interlacing.mode": "none"}, {"interlacing.mode": "none"}),
        ({"autoformat.exclude": "webp,avif"}, {"autoformat.exclude": "webp,avif"}),
        ({"jpg.transparency.color": "00ff00"}, {"jpg.transparency.color": "00ff00"}),
    ],
)
def test_options_from_text(pairs: dict, expected: dict) -> None:
    assert options_from_text(pairs) == expected


@pytest.mark.parametrize(
    ("pairs", "parameter"),
    [
        ({"dpr": "0.5"}, "dpr"),
        ({"dpr": "11"}, "dpr"),
        ({"dpr": "nan"}, "dpr"),
        ({"jpg.quality": "0"}, "jpg.quality"),
        ({"jpg.quality": "1e2"}, "jpg.quality"),
        ({"content_disposition": "inline;x"}, "content_disposition"),
        ({"autoformat.exclude": "webp,,avif"}, "autoformat.exclude"),
        ({"autoformat.exclude": "jpeg"}, "autoformat.exclude"),
        ({"nosuch": "1"}, "nosuch"),
        ({"autoformat": "yes"}, "autoformat"),
    ],
)
def test_options_from_text_rejects(pairs: dict, parameter: str) -> None:
    with pytest.raises(StackError) as error:
        options_from_text(pairs)
    assert error.value.parameter == parameter and error.value.status == 400


@pytest.mark.parametrize("name", STACK_ONLY)
def test_security_sensitive_options_cannot_come_from_urls(name: str) -> None:
    with pytest.raises(StackError, match="cannot be set in a render URL"):
        options_from_text({name: "true"})


def test_json_options_need_json_types() -> None:
    assert options_from_json({"autoformat": True, "dpr": 2.5}) == {"autoformat": True, "dpr": 2.5}
    for bad in (
        {"autoformat": "true"},
        {"jpg.quality": True},
        {"jpg.quality": "80"},
        {"jpg.transparency.autoformat": False},
        {"dpr": float("inf")},
    ):
        with pytest.raises(StackError):
            options_from_json(bad)
    with pytest.raises(StackError):
        options_from_json(["jpg.quality"])


def test_remote_fullurl_whitelist_is_a_list_of_strings() -> None:
    value = {"remote_fullurl_whitelist": ["^https://a/", "b"]}
    assert options_from_json(value) == value
    with pytest.raises(StackError):
        options_from_json({"remote_fullurl_whitelist": [1]})


def test_describe_stack_options_shape_matches_recording(recording) -> None:
    recorded = recording("stackoptions_get.json")[0]["response"]
    described = describe_stack_options()
    assert list(described) == ["properties"]
    assert set(recorded["properties"]) <= set(described["properties"])
    # 2026 docs changed remote_fullurl_allow's default from null to false (rokka-api.md §2.3).
    assert recorded["properties"]["remote_fullurl_allow"]["type"] == ["boolean", "null"]
    assert described["properties"]["remote_fullurl_allow"]["type"] == "boolean"
    for name, prop in recorded["properties"].items():
        mine = described["properties"][name]
        if name != "remote_fullurl_allow":
            assert mine["type"] == prop["type"], name
        assert mine.get("values") == prop.get("values"), name
        assert (mine.get("minimum"), mine.get("maximum")) == (
            prop.get("minimum"),
            prop.get("maximum"),
        ), name
