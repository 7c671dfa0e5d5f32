"""The operation table: every implemented parameter's type, default and range, enforced
identically on the URL path and the stack-JSON path."""

from __future__ import annotations

import pytest

from stacks.errors import NotImplementedOperation, StackError, UnknownOperation
from stacks.operations import (
    OPERATIONS,
    describe_operations,
    implemented_operations,
    lookup_operation,
)
from stacks.values import Kind

NONE = object()  # "no default" in the expectations below

# Typed from rokka-api.md §3 (and the brief where the reference is silent): the table in
# stacks/operations.py must agree with this, parameter by parameter.
# op -> param -> (kind, default, minimum, maximum)
EXPECTED: dict[str, dict[str, tuple[Kind, object, float | None, float | None]]] = {
    "resize": {
        "width": (Kind.INTEGER, NONE, 1, 10000),
        "height": (Kind.INTEGER, NONE, 1, 10000),
        "mode": (Kind.STRING, "box", None, None),
        "upscale": (Kind.BOOLEAN, True, None, None),
        "upscale_dpr": (Kind.BOOLEAN, True, None, None),
        "sharpen": (Kind.BOOLEAN, False, None, None),
    },
    "crop": {
        "width": (Kind.INTEGER, NONE, 1, 99999),
        "height": (Kind.INTEGER, NONE, 1, 99999),
        "anchor": (Kind.STRING, "auto", None, None),
        "fallback": (Kind.STRING, "center_center", None, None),
        "mode": (Kind.STRING, "absolute", None, None),
        "scale": (Kind.NUMBER, 100, 0, 100),
        "movearea_x": (Kind.NUMBER, 0, -100, 100),
        "movearea_y": (Kind.NUMBER, 0, -100, 100),
        "area": (Kind.STRING, None, None, None),
    },
    "autorotate": {
        "width": (Kind.INTEGER, NONE, 1, 10000),
        "height": (Kind.INTEGER, NONE, 1, 10000),
        "rotation_direction": (Kind.STRING, None, None, None),
    },
    "rotate": {
        "angle": (Kind.NUMBER, NONE, -360, 360),
        "background_color": (Kind.STRING, "FFFFFF", None, None),
        "background_opacity": (Kind.NUMBER, 0, 0, 100),
    },
    "blur": {
        "sigma": (Kind.NUMBER, 4, 0, 100),
        "radius": (Kind.INTEGER, 0, 0, 500),
    },
    "grayscale": {},
    "sepia": {},
    "trim": {"fuzzy": (Kind.NUMBER, 0, 0, 100)},
    "noop": {},
    "alpha": {
        "mode": (Kind.STRING, "mask", None, None),
        "opacity": (Kind.INTEGER, 50, 0, 100),
    },
    "modulate": {
        "brightness": (Kind.INTEGER, 100, 0, 500),
        "saturation": (Kind.INTEGER, 100, 0, 500),
        "hue": (Kind.INTEGER, 0, 0, 360),
    },
    "sharpen": {
        "m1": (Kind.NUMBER, 0.4, 0, 100),
        "m2": (Kind.NUMBER, 0.8, 0, 100),
        "sigma": (Kind.NUMBER, 0.7, 0.1, 10),
        "x1": (Kind.NUMBER, 2.0, 0, 100),
        "y2": (Kind.NUMBER, 10.0, 0, 100),
        "y3": (Kind.NUMBER, 20.0, 0, 100),
    },
    "multiply": {
        "factor": (Kind.NUMBER, 0.96, 0, 1),
        "factor_color": (Kind.STRING, None, None, None),
    },
    "circlemask": {},
    "composition": {
        "mode": (Kind.STRING, "foreground", None, None),
        "width": (Kind.INTEGER, NONE, 1, 10000),
        "height": (Kind.INTEGER, NONE, 1, 10000),
        "resize_mode": (Kind.STRING, "box", None, None),
        "resize_to_primary": (Kind.BOOLEAN, False, None, None),
        "anchor": (Kind.STRING, "center_center", None, None),
        "secondary_color": (Kind.STRING, "000000", None, None),
        "secondary_opacity": (Kind.INTEGER, 100, 0, 100),
        "secondary_image": (Kind.IMAGE_HASH, None, None, None),
        "secondary_stack": (Kind.STRING, None, None, None),
        "secondary_stack_variables": (Kind.VARIABLES, None, None, None),
        "angle": (Kind.NUMBER, 0, -360, 360),
        "empty_primary": (Kind.BOOLEAN, False, None, None),
        "cache": (Kind.BOOLEAN, False, None, None),
    },
    "dropshadow": {
        "horizontal": (Kind.INTEGER, 0, -100, 100),
        "vertical": (Kind.INTEGER, 0, -100, 100),
        "opacity": (Kind.INTEGER, 100, 0, 100),
        "sigma": (Kind.NUMBER, 0.5, 0, 10000),
        "blur_radius": (Kind.NUMBER, 0, 0, 10000),
        "color": (Kind.STRING, "000000", None, None),
    },
    "text": {
        "font": (Kind.FILE_HASH, NONE, None, None),
        "text": (Kind.STRING, NONE, None, None),
        "size": (Kind.NUMBER, 16, 1, 1000),
        "color": (Kind.STRING, "000000", None, None),
        "opacity": (Kind.INTEGER, 100, 0, 100),
        "angle": (Kind.NUMBER, 0, -360, 360),
        "anchor": (Kind.STRING, "center_center", None, None),
        "width": (Kind.INTEGER, None, 1, 10000),
        "height": (Kind.INTEGER, None, 1, 10000),
        "spacing": (Kind.INTEGER, 0, 0, 1000),
        "align": (Kind.STRING, "left", None, None),
        "resize_to_box": (Kind.BOOLEAN, False, None, None),
    },
    "primitive": {
        "count": (Kind.INTEGER, 20, 1, 200),
        "mode": (Kind.INTEGER, 0, 0, 9),
    },
    "glitch": {
        "amount": (Kind.INTEGER, 4, 0, 10),
        "random": (Kind.STRING, None, None, None),
    },
    "face": {
        "secondary_image": (Kind.IMAGE_HASH, NONE, None, None),
        "leftFeature": (Kind.STRING, NONE, None, None),
        "rightFeature": (Kind.STRING, NONE, None, None),
        "anchor": (Kind.STRING, "center_center", None, None),
        "scale": (Kind.NUMBER, 1.0, 0.01, 10),
    },
    # (for a list, the maximum is the most items it may hold)
    "svgdynamic": {"changes": (Kind.OBJECT_LIST, NONE, None, 100)},
    "svg2bitmap": {},
}
NOT_IMPLEMENTED = ("addframes",)
# Not implemented because they cannot be, and the 400 says why.
NOT_POSSIBLE = {
    "addframes": "does not say what the frames parameter holds",
}
FEATURES = ("eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "mouthUp", "mouthDown")
ENUMS = {
    ("resize", "mode"): ("box", "absolute", "fill"),
    ("crop", "mode"): ("absolute", "ratio", "box", "area"),
    ("autorotate", "rotation_direction"): ("clockwise", "counterclockwise"),
    ("alpha", "mode"): ("mask", "extract", "remove", "apply"),
    ("composition", "mode"): ("foreground", "background"),
    ("composition", "resize_mode"): ("box", "absolute", "fill"),
    ("text", "align"): ("left", "centre", "right"),
    ("face", "leftFeature"): FEATURES,
    ("face", "rightFeature"): FEATURES,
}

PARAMS = [(op, name, *spec) for op, params in EXPECTED.items() for name, spec in params.items()]
NUMERIC = [p for p in PARAMS if p[2] in (Kind.INTEGER, Kind.NUMBER)]


def test_implemented_operations_are_exactly_the_expected_ones() -> None:
    assert [spec.name for spec in implemented_operations()] == list(EXPECTED)


@pytest.mark.parametrize("op", EXPECTED)
def test_every_operation_has_enabled_true_and_nothing_unexpected(op: str) -> None:
    spec = OPERATIONS[op]
    assert [p.name for p in spec.params] == [*EXPECTED[op], "enabled"]
    enabled = spec.param("enabled")
    assert (enabled.kind, enabled.default) == (Kind.BOOLEAN, True)


@pytest.mark.parametrize(("op", "name", "kind", "default", "low", "high"), PARAMS)
def test_parameter_matches_reference(op, name, kind, default, low, high) -> None:
    param = OPERATIONS[op].param(name)
    assert param.kind is kind
    assert (param.default if param.has_default else NONE) == default
    assert (param.minimum, param.maximum) == (low, high)


@pytest.mark.parametrize(("op", "name", "kind", "default", "low", "high"), NUMERIC)
def test_range_is_enforced_on_both_paths(op, name, kind, default, low, high) -> None:
    spec = OPERATIONS[op]
    for inside in (low, high):
        assert spec.options_from_json({name: inside}) == {name: inside}
    assert spec.options_from_text({name: str(high)}) == {name: high}
    step = 1 if kind is Kind.INTEGER else 0.5
    for outside in (low - step, high + step):
        with pytest.raises(StackError) as error:
            spec.options_from_json({name: outside})
        assert (error.value.operation, error.value.parameter) == (op, name)
        assert op in error.value.message and name in error.value.message
    with pytest.raises(StackError) as error:
        spec.options_from_text({name: str(high + step)})
    assert (error.value.operation, error.value.parameter, error.value.status) == (op, name, 400)


# JSON values of the wrong JSON type, per kind: `True` is not an integer, `1.0` is not an
# integer, `"5"` is not a number, `1` is not a boolean, NaN/inf are not numbers.
WRONG_JSON = {
    Kind.INTEGER: [True, False, "5", 1.0, 1.5, [], {}, float("nan")],
    Kind.NUMBER: [True, "5", [], {}, float("nan"), float("inf"), float("-inf")],
    Kind.BOOLEAN: [1, 0, "true", [], 1.0],
    Kind.STRING: [5, True, [], {}, 1.5],
    Kind.OBJECT_LIST: [
        "x",
        {},
        [1],
        [{"id": "a", "attr": "b"}],
        [{"id": "a", "attr": "b", "value": "c", "extra": "d"}],
        [{"id": ["a"], "attr": "b", "value": "c"}],
        [{"id": "a", "attr": "b", "value": "x" * 1001}],
        [{"id": "a", "attr": "b", "value": "line\nbreak"}],
        [{"id": "a", "attr": "b", "value": "c"}] * 101,
    ],
    Kind.IMAGE_HASH: [5, True, [], {}, 1.5],
    Kind.FILE_HASH: [5, True, [], {}, 1.5, "ABCDEF", "abc", "g" * 40],
    Kind.VARIABLES: [
        5,
        True,
        [],
        ["w=1"],
        "w",
        "w=1&&t=2",
        {"w": [1]},
        {"w": None},
        {"w": {"x": 1}},
        {"w": float("inf")},
        {"bad-name": 1},
        {"": 1},
        {"w": "x" * 1001},
        {"w": "line\nbreak"},
        {"w": "$other"},  # an expression belongs in the expressions field
        {f"v{i}": i for i in range(51)},
    ],
}
TYPED = [(op, name, kind, wrong) for op, name, kind, *_ in PARAMS for wrong in WRONG_JSON[kind]]


@pytest.mark.parametrize(("op", "name", "kind", "wrong"), TYPED)
def test_wrong_json_type_is_rejected(op: str, name: str, kind: Kind, wrong: object) -> None:
    with pytest.raises(StackError) as error:
        OPERATIONS[op].options_from_json({name: wrong})
    assert (error.value.operation, error.value.parameter) == (op, name)


@pytest.mark.parametrize(("op", "name"), ENUMS)
def test_enum_values(op: str, name: str) -> None:
    spec = OPERATIONS[op]
    assert spec.param(name).values == ENUMS[(op, name)]
    for value in ENUMS[(op, name)]:
        assert spec.options_from_text({name: value}) == {name: value}
    for bad in ("BOX", "", "box ", "other"):
        with pytest.raises(StackError):
            spec.options_from_text({name: bad})


@pytest.mark.parametrize(
    "anchor",
    [
        "auto",
        "subjectarea",
        "croparea",
        "smart",
        "face",
        "center_center",
        "left_top",
        "right_bottom",
        "0_0",
        "10000_10000",
        "120_center",
        "left-top",
        "9999_1",
    ],
)
def test_crop_anchor_accepts_reference_grammar(anchor: str) -> None:
    crop = OPERATIONS["crop"]
    assert crop.options_from_json({"anchor": anchor, "fallback": anchor}) == {
        "anchor": anchor,
        "fallback": anchor,
    }


@pytest.mark.parametrize(
    "anchor",
    [
        "",
        "top_left",
        "center",
        "10001_0",
        "01_0",
        "-1_0",
        "center_center_x",
        "Auto",
        "auto\n",
        "xauto",
        "center__center",
        "1.5_2",
    ],
)
def test_crop_anchor_rejects_other_strings(anchor: str) -> None:
    with pytest.raises(StackError) as error:
        OPERATIONS["crop"].options_from_json({"anchor": anchor})
    assert error.value.parameter == "anchor"


@pytest.mark.parametrize("area", ["landscape_16_9", "A", "x9"])
def test_crop_area_pattern_accepts(area: str) -> None:
    assert OPERATIONS["crop"].options_from_text({"area": area}) == {"area": area}


@pytest.mark.parametrize("area", ["", "a.b", "a b", "ä", "a/b"])
def test_crop_area_pattern_rejects(area: str) -> None:
    with pytest.raises(StackError):
        OPERATIONS["crop"].options_from_text({"area": area})


@pytest.mark.parametrize(
    ("op", "name"), [("rotate", "background_color"), ("multiply", "factor_color")]
)
@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("FFFFFF", True),
        ("0f0F0f", True),
        ("FFF", False),
        ("GGGGGG", False),
        ("#FFFFFF", False),
        ("FFFFFFF", False),
        ("FFFFFF\n", False),
    ],
)
def test_hex_colours(op: str, name: str, value: str, ok: bool) -> None:
    spec = OPERATIONS[op]
    if ok:
        assert spec.options_from_json({name: value}) == {name: value}
    else:
        with pytest.raises(StackError):
            spec.options_from_json({name: value})


def test_null_is_accepted_only_for_null_defaults() -> None:
    assert OPERATIONS["crop"].options_from_json({"area": None}) == {"area": None}
    with pytest.raises(StackError):
        OPERATIONS["crop"].options_from_json({"width": None})


def test_unknown_parameter_names_operation_and_parameter() -> None:
    with pytest.raises(StackError) as error:
        OPERATIONS["resize"].options_from_text({"widht": "10"})
    assert (error.value.operation, error.value.parameter) == ("resize", "widht")


@pytest.mark.parametrize("name", NOT_IMPLEMENTED)
def test_known_but_not_implemented(name: str) -> None:
    with pytest.raises(NotImplementedOperation) as error:
        lookup_operation(name)
    assert error.value.message.startswith(f"operation {name} is not implemented")
    if name in NOT_POSSIBLE:
        assert NOT_POSSIBLE[name] in error.value.message
    assert error.value.status == 400


def test_svgdynamic_changes_are_objects_of_texts() -> None:
    spec = OPERATIONS["svgdynamic"]
    given = [
        {"id": "line", "attr": "stroke-width", "value": 5},
        {"id": "a", "attr": "b", "value": ""},
    ]
    assert spec.options_from_json({"changes": given}) == {
        "changes": [
            {"id": "line", "attr": "stroke-width", "value": "5"},
            {"id": "a", "attr": "b", "value": ""},
        ]
    }
    with pytest.raises(StackError, match="cannot be set in a render URL"):
        spec.options_from_text({"changes": "x"})
    with pytest.raises(StackError, match="changes is required"):
        spec.complete({})
    described = spec.describe()["properties"]["changes"]
    assert described["type"] == "array" and described["maxItems"] == 100
    assert described["items"]["required"] == ["id", "attr", "value"]


def test_face_refuses_area_keyword_anchors_it_could_not_place() -> None:
    # Its anchor is a point of the secondary image: X_Y only.
    spec = lookup_operation("face")
    assert spec.options_from_text({"anchor": "right_bottom"}) == {"anchor": "right_bottom"}
    assert spec.options_from_text({"anchor": "20_5"}) == {"anchor": "20_5"}
    for keyword in ("auto", "face", "smart", "subjectarea"):
        with pytest.raises(StackError):
            spec.options_from_text({"anchor": keyword})


@pytest.mark.parametrize("name", ["resizer", "", "RESIZE", "o", "__class__"])
def test_unknown_operation(name: str) -> None:
    with pytest.raises(UnknownOperation) as error:
        lookup_operation(name)
    assert error.value.status == 400 and "unknown operation" in error.value.message


@pytest.mark.parametrize(
    ("op", "given", "complete"),
    [
        (
            "resize",
            {"width": 10},
            {
                "width": 10,
                "height": None,
                "mode": "box",
                "upscale": True,
                "upscale_dpr": True,
                "sharpen": False,
                "enabled": True,
            },
        ),
        ("blur", {}, {"sigma": 4, "radius": 0, "enabled": True}),
        ("grayscale", {"enabled": False}, {"enabled": False}),
    ],
)
def test_complete_fills_defaults(op: str, given: dict, complete: dict) -> None:
    assert OPERATIONS[op].complete(given) == complete


@pytest.mark.parametrize(
    ("op", "given", "parameter"),
    [
        ("resize", {}, "width"),
        ("resize", {"mode": "fill"}, "width"),
        ("crop", {"width": 1}, "height"),
        ("crop", {"height": 1}, "width"),
        ("rotate", {}, "angle"),
    ],
)
def test_complete_enforces_required_and_one_of(op: str, given: dict, parameter: str) -> None:
    with pytest.raises(StackError) as error:
        OPERATIONS[op].complete(given)
    assert (error.value.operation, error.value.parameter) == (op, parameter)


def test_describe_operations_lists_exactly_the_implemented_operations() -> None:
    described = describe_operations()
    assert list(described) == list(EXPECTED)
    for op, params in EXPECTED.items():
        assert list(described[op]["properties"]) == [*params, "enabled"]


_DOCUMENTED_DEFAULTS = {("composition", "anchor"), ("composition", "mode")}


def test_describe_operations_shape_matches_recording(recording) -> None:
    recorded = recording("operations_get.json")[0]["response"]
    described = describe_operations()
    assert described["resize"]["oneOf"] == recorded["resize"]["oneOf"] == ["width", "height"]
    assert "required" not in described["resize"]
    assert described["crop"]["required"] == recorded["crop"]["required"]
    assert described["noop"]["description"] == recorded["noop"]["description"]
    for op in set(described) & set(recorded):
        assert set(described[op]) == set(recorded[op])
        for name, prop in recorded[op]["properties"].items():
            mine = described[op]["properties"][name]
            assert mine["type"] == prop["type"], (op, name)
            # Where rokka's 2026 docs differ from the 2019 recording (rokka-api.md §3):
            # crop, blur, composition's anchor (center_center) and mode (foreground).
            differs = op in ("crop", "blur") or (op, name) in _DOCUMENTED_DEFAULTS
            assert mine.get("default") == prop.get("default") or differs, (op, name)
            assert set(prop) - {"pattern", "minimum", "maximum", "default"} <= set(mine)
