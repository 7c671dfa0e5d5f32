"""Stack JSON: recorded rokka.js bodies parse and round-trip; everything else is a 400."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.errors import ExpressionsNotSupported, NotImplementedOperation, StackError
from stacks.operations import OperationItem
from stacks.stack import StackDefinition, parse_stack_json, validate_stack_name

from .conftest import load_recording

CREATES = [
    "stacks_create.json",
    "stacks_create_0_26.json",
    "stacks_create_expressions.json",
    "stacks_create_overwrite.json",
    "stacks_create_overwrite_0_26.json",
]
RESPONSE_KEYS = ("stack_operations", "stack_options", "stack_expressions", "stack_variables")


def _stack_name(path: str) -> str:
    return path.split("?")[0].rsplit("/", 1)[1]


@pytest.mark.parametrize("file", CREATES)
def test_recorded_create_bodies_round_trip(file: str) -> None:
    (call,) = load_recording(file)
    stack = parse_stack_json(call["body"], _stack_name(call["path"]))
    expected = {key: call["response"][key] for key in RESPONSE_KEYS}
    assert stack.to_json() == expected


@pytest.mark.parametrize("file", ["stacks_get.json", "stacks_list.json"])
def test_recorded_stack_objects_parse_back(file: str) -> None:
    (call,) = load_recording(file)
    items = call["response"].get("items", [call["response"]])
    for item in items:
        stack = parse_stack_json(item, item["name"])
        assert stack.to_json() == {key: item[key] for key in RESPONSE_KEYS}


def test_to_json_keeps_only_given_options() -> None:
    stack = parse_stack_json({"operations": [{"name": "resize", "options": {"width": 5}}]}, "s")
    assert stack.to_json()["stack_operations"] == [{"name": "resize", "options": {"width": 5}}]


def test_legacy_bare_list() -> None:
    stack = parse_stack_json(
        [{"name": "grayscale"}, {"name": "blur", "options": {"sigma": 2}}], "s"
    )
    assert stack.operations == (OperationItem("grayscale"), OperationItem("blur", {"sigma": 2}))
    assert stack.options == {}


def test_swagger_names_and_description() -> None:
    stack = parse_stack_json(
        {
            "stack_operations": [{"name": "noop", "options": {}}],
            "stack_options": {"autoformat": True},
            "stack_variables": {"w": 300, "label": "thumb"},
            "stack_expressions": [],
            "description": "thumbs",
        },
        "s",
    )
    assert stack.options == {"autoformat": True}
    assert stack.variables == {"w": 300, "label": "thumb"}
    assert stack.to_json()["description"] == "thumbs"


@pytest.mark.parametrize(
    "body",
    [
        {"operations": [], "variables": {"w": 300, "h": "$w / 2"}},
        {"operations": [{"name": "resize", "options": {"width": "$w"}}]},
        {"operations": [{"name": "resize", "options": {"width": "[$w * 2]"}}]},
        {"operations": [{"name": "crop", "options": {"width": 5, "height": 5, "anchor": "$a"}}]},
        {
            "operations": [
                {"name": "resize", "options": {"mode": "fill"}, "expressions": {"width": "$w"}}
            ]
        },
    ],
)
def test_expression_values_are_stored_and_echoed(body) -> None:
    stack = parse_stack_json(body, "s")
    echoed = stack.to_json()
    assert echoed["stack_variables"] == body.get("variables", {})
    for sent, got in zip(body["operations"], echoed["stack_operations"], strict=True):
        assert got["options"] == sent["options"]
        assert got.get("expressions", {}) == sent.get("expressions", {})
    assert parse_stack_json(echoed, "s") == stack  # a fetched stack can be PUT back


def test_stack_options_cannot_be_expressions() -> None:
    # rokka: variables and expressions reach stack options only through stack expressions
    with pytest.raises(ExpressionsNotSupported, match="stack option dpr cannot be an expression"):
        parse_stack_json({"options": {"dpr": "$d"}}, "s")


@pytest.mark.parametrize(
    ("body", "where", "position"),
    [
        ({"variables": {"h": "$w /"}}, "variable h", 4),
        (
            {"operations": [{"name": "resize", "expressions": {"width": "$w * * 2"}}]},
            "operation resize: expression for width",
            5,
        ),
        (
            {"operations": [{"name": "resize", "options": {"width": "[$w +]"}}]},
            "operation resize: option width",
            4,
        ),
        (
            {"expressions": [{"expression": "options.dpr >= ", "overrides": {}}]},
            "stack expression 1",
            15,
        ),
        ({"expressions": [{"expression": "nosuch > 1", "overrides": {}}]}, "stack expression 1", 0),
    ],
)
def test_expression_syntax_errors_name_the_place_and_position(body, where, position) -> None:
    with pytest.raises(StackError) as error:
        parse_stack_json(body, "s")
    assert error.value.status == 400
    assert error.value.message.startswith(where + ": expression ")
    assert error.value.message.endswith(f"at position {position}")


def test_echo_fields_of_a_get_response_are_tolerated() -> None:
    body = {"name": "x", "organization": "o", "created": "2019", "link": "/l", "operations": []}
    assert parse_stack_json(body, "s") == StackDefinition("s")


def test_stack_expressions_are_stored() -> None:
    body = {
        "expressions": [
            {"expression": "options.dpr >= 2", "overrides": {"options": {"jpg.quality": 60}}},
            {"expression": "image.width > 100", "overrides": {"variables": {"w": 5}}},
        ]
    }
    stack = parse_stack_json(body, "s")
    assert stack.to_json()["stack_expressions"] == body["expressions"]


@pytest.mark.parametrize(
    "expressions",
    [
        {"expression": "true"},
        [{"expression": "", "overrides": {}}],
        [{"expression": 5, "overrides": {}}],
        [{"expression": "true", "overrides": {"operations": []}}],
        [{"expression": "true", "overrides": {"options": {"jpg.quality": 500}}}],
        [{"expression": "true", "overrides": {"options": {"nosuch": 1}}}],
        [{"expression": "true", "overrides": {"options": {"protected": False}}}],
        [{"expression": "true", "overrides": {"options": {"basestack": "other"}}}],
        [{"expression": "true", "overrides": {"options": {"source_file": True}}}],
        [{"expression": "true", "overrides": {"variables": {"a b": 1}}}],
        [{"expression": "true", "overrides": {}, "extra": 1}],
        [{"expression": "x" * 1001, "overrides": {}}],
        ["x"],
    ],
)
def test_bad_stack_expressions(expressions: Any) -> None:
    with pytest.raises(StackError):
        parse_stack_json({"expressions": expressions}, "s")


@pytest.mark.parametrize(
    "operation",
    [
        {"name": "resize", "expressions": {"nosuch": "1"}},
        {"name": "resize", "expressions": {"width": 5}},
        {"name": "resize", "expressions": ["width"]},
        {"name": "crop", "expressions": {"width": "$w"}},  # height is still required
    ],
)
def test_bad_operation_expressions(operation) -> None:
    with pytest.raises(StackError) as error:
        parse_stack_json({"operations": [operation]}, "s")
    assert error.value.operation == operation["name"]


def test_empty_operation_expressions_are_fine() -> None:
    body = {"operations": [{"name": "grayscale", "expressions": {}}]}
    assert parse_stack_json(body, "s").operations == (OperationItem("grayscale"),)


@pytest.mark.parametrize(
    ("body", "operation", "parameter"),
    [
        ({"operations": [{"name": "resize", "options": {"width": 0}}]}, "resize", "width"),
        ({"operations": [{"name": "resize", "options": {"width": True}}]}, "resize", "width"),
        ({"operations": [{"name": "resize", "options": {"width": "100"}}]}, "resize", "width"),
        ({"operations": [{"name": "resize", "options": {}}]}, "resize", "width"),
        ({"operations": [{"name": "crop", "options": {"width": 5}}]}, "crop", "height"),
        ({"operations": [{"name": "rotate", "options": {"angle": 400}}]}, "rotate", "angle"),
        ({"operations": [{"name": "resize", "options": {"width": 5, "x": 1}}]}, "resize", "x"),
        ({"operations": [{"name": "resize", "options": {"width": 5}, "x": 1}]}, "resize", "x"),
        ({"options": {"jpg.quality": 0}}, None, "jpg.quality"),
        ({"options": {"nosuch": 0}}, None, "nosuch"),
        ({"options": {"dpr": 2}}, None, "dpr"),
        ({"variables": {"a-b": 1}}, None, "a-b"),
        ({"variables": {"a": [1]}}, None, "a"),
        ({"nosuch": 1}, None, "nosuch"),
        ({"operations": [], "stack_operations": []}, None, "operations"),
        ({"options": {"basestack": "s"}}, None, "basestack"),
        ({"options": {"basestack": "Upper"}}, None, "basestack"),
        ({"description": 5}, None, "description"),
    ],
)
def test_invalid_bodies_name_what_is_wrong(
    body: Any, operation: str | None, parameter: str
) -> None:
    with pytest.raises(StackError) as error:
        parse_stack_json(body, "s")
    assert (error.value.status, error.value.operation, error.value.parameter) == (
        400,
        operation,
        parameter,
    )


@pytest.mark.parametrize(
    "body",
    [
        "x",
        5,
        None,
        {"operations": {}},
        {"operations": ["resize"]},
        {"operations": [{"name": 5}]},
        {"operations": [{"options": {}}]},
        {"options": []},
        {"variables": []},
        {"operations": [{"name": "grayscale"}] * 51},
    ],
)
def test_structurally_invalid_bodies(body: Any) -> None:
    with pytest.raises(StackError):
        parse_stack_json(body, "s")


def test_not_implemented_and_unknown_operations() -> None:
    with pytest.raises(NotImplementedOperation, match="operation addframes is not implemented"):
        parse_stack_json({"operations": [{"name": "addframes"}]}, "s")
    with pytest.raises(StackError, match="unknown operation"):
        parse_stack_json({"operations": [{"name": "explode"}]}, "s")


def test_source_file_is_exclusive() -> None:
    assert parse_stack_json({"options": {"source_file": True}}, "s").options == {
        "source_file": True
    }
    for body in (
        {"options": {"source_file": True, "jpg.quality": 50}},
        {"options": {"source_file": True}, "operations": [{"name": "grayscale"}]},
    ):
        with pytest.raises(StackError, match="source_file") as error:
            parse_stack_json(body, "s")
        assert error.value.parameter == "source_file"
    # source_file false is an ordinary option
    parse_stack_json({"options": {"source_file": False, "jpg.quality": 50}}, "s")


def test_dpr_with_resize_saves() -> None:
    body = {"operations": [{"name": "resize", "options": {"width": 5}}], "options": {"dpr": 2}}
    assert parse_stack_json(body, "s").options == {"dpr": 2}


@pytest.mark.parametrize("name", ["mystack", "my-stack_1", "_preview_x", "A"])
def test_valid_stack_names(name: str) -> None:
    assert validate_stack_name(name) == name


@pytest.mark.parametrize("name", ["dynamic", "_private", "", "a/b", "a.b", "a" * 101, "..", 5])
def test_invalid_stack_names(name: Any) -> None:
    with pytest.raises(StackError):
        validate_stack_name(name)


def test_definition_is_frozen() -> None:
    stack = parse_stack_json({"options": {"jpg.quality": 50}}, "s")
    with pytest.raises(TypeError):
        stack.options["jpg.quality"] = 1  # type: ignore[index]
