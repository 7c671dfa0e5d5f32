"""The stack option table (rokka-api.md §2.3) and GET /stackoptions."""

from __future__ import annotations

import pytest

from stacks.errors import StackError
from stacks.options import (
    REFUSED_OPTIONS,
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
    "avif.quality": (45, 1, 100),
    "heif.quality": (40, 1, 100),
    "jxl.quality": (70, 1, 100),
    "pdf.dpi": (200, 10, 1000),
    "pdf.page": (1, 1, 1000),
    "gif.quality": (70, 1, 100),
    "pngquant.quality": (98, 10, 100),
    "png.compression_level": (7, 0, 9),
    "interlacing.mode": ("plane", None, None),
    "source_file": (False, None, None),
    "autoformat": (False, None, None),
    "autoformat.exclude": (None, None, None),
    "autoformat.include": (None, None, None),
    "dpr": (1.0, 1, 10),
    "content_disposition": ("inline", None, None),
    "optim.disable_all": (False, None, None),
    "optim.immediate": (False, None, None),
    "transparency.color": (None, None, None),
    "jpg.transparency.color": ("FFFFFF", None, None),
    "jpg.transparency.autoformat": ("false", None, None),
    "jpg.transparency.convert": (False, None, None),
    "dpi": (None, 10, 5000),
    "protected": (False, None, None),
    "remote_fullurl_allow": (None, None, None),
    "remote_fullurl_whitelist": (None, None, None),
    "remote_basepath": (None, None, None),
}
STACK_ONLY = (
    "basestack",
    "source_file",
    "protected",
    "remote_fullurl_allow",
    "remote_fullurl_whitelist",
    "remote_basepath",
)
# rokka options cropstack refuses (400 naming the option and why), never silently ignores.
REFUSED = (
    "jp2.quality",
    "av1.quality",
    "webm.quality",
    "mp4.quality",
    "optim.ttl_shared",
    "timing_origin",
    "timestamp",
    "fps",
    "min_video_width",
    "min_video_height",
)


def test_table_has_exactly_the_reference_options() -> None:
    assert set(STACK_OPTIONS) == set(EXPECTED)
    assert set(REFUSED_OPTIONS) == set(REFUSED)


@pytest.mark.parametrize("name", REFUSED)
def test_refused_options_are_400_in_stacks_and_urls(name: str) -> None:
    for attempt in (lambda: options_from_json({name: 1}), lambda: options_from_text({name: "1"})):
        with pytest.raises(StackError, match=f"stack option {name} is not supported: ") as error:
            attempt()
        assert error.value.status == 400 and error.value.parameter == name
    assert name not in describe_stack_options()["properties"]


def test_optim_immediate_takes_both_values() -> None:
    assert options_from_json({"optim.immediate": True}) == {"optim.immediate": True}
    assert options_from_json({"optim.immediate": False}) == {"optim.immediate": False}
    assert options_from_text({"optim.immediate": "false"}) == {"optim.immediate": False}


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
        ({"autoformat.exclude": "jxl,svg"}, {"autoformat.exclude": "jxl,svg"}),
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


def test_describe_stack_options_shape_matches_recording(recording) -> None:
    recorded = recording("stackoptions_get.json")[0]["response"]
    described = describe_stack_options()
    assert list(described) == ["properties"]
    # Every recorded option is either described or refused (and then not described).
    assert set(recorded["properties"]) <= set(described["properties"]) | set(REFUSED)
    for name, prop in recorded["properties"].items():
        if name in REFUSED:
            continue
        mine = described["properties"][name]
        assert mine["type"] == prop["type"], name
        assert mine.get("values") == prop.get("values"), name
        assert (mine.get("minimum"), mine.get("maximum")) == (
            prop.get("minimum"),
            prop.get("maximum"),
        ), name
