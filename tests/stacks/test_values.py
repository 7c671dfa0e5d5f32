"""Strict text and JSON conversion (bad-inputs.md rows 18, 21)."""

from __future__ import annotations

import pytest

from stacks.errors import StackError
from stacks.operations import OPERATIONS
from stacks.values import Kind, Param

WIDTH = OPERATIONS["resize"].param("width")
ANGLE = OPERATIONS["rotate"].param("angle")
UPSCALE = OPERATIONS["resize"].param("upscale")


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("200", 200), ("10000", 10000), ("007", 7)])
def test_integer_text(text: str, value: int) -> None:
    assert WIDTH.from_text(text, operation="resize") == value


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-1",
        "10001",
        "1e3",
        "1_0",
        "+5",
        "٣",
        "１",
        "1.0",
        " 1",
        "1 ",
        "",
        "0x10",
        "nan",
        "inf",
        "1" * 5000,
        "²",
    ],
)
def test_integer_text_rejects_hostile_strings(text: str) -> None:
    with pytest.raises(StackError) as error:
        WIDTH.from_text(text, operation="resize")
    assert (error.value.status, error.value.operation, error.value.parameter) == (
        400,
        "resize",
        "width",
    )
    assert len(error.value.message) < 200  # hostile input is not echoed in full


@pytest.mark.parametrize(
    ("text", "value"), [("45", 45), ("120.3", 120.3), ("360", 360), ("0", 0), ("-360", -360)]
)
def test_number_text(text: str, value: float) -> None:
    assert ANGLE.from_text(text, operation="rotate") == value


@pytest.mark.parametrize(
    "text",
    [
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "400",
        "360.5",
        "1e2",
        "1_0",
        "+5",
        "٣",
        ".5",
        "5.",
        "1,5",
        "",
    ],
)
def test_number_text_rejects(text: str) -> None:
    with pytest.raises(StackError) as error:
        ANGLE.from_text(text, operation="rotate")
    assert error.value.parameter == "angle"


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("false", False), ("1", True), ("0", False)]
)
def test_boolean_text(text: str, value: bool) -> None:
    assert UPSCALE.from_text(text, operation="resize") is value


@pytest.mark.parametrize("text", ["True", "FALSE", "yes", "no", "on", "2", ""])
def test_boolean_text_rejects(text: str) -> None:
    with pytest.raises(StackError):
        UPSCALE.from_text(text, operation="resize")


def test_integer_json_requires_int_type() -> None:
    assert WIDTH.from_json(5, operation="resize") == 5
    for bad in (True, 5.0, "5", None):
        with pytest.raises(StackError):
            WIDTH.from_json(bad, operation="resize")


def test_string_rejects_control_characters() -> None:
    param = Param("s", Kind.STRING, "")
    assert param.from_json("ok") == "ok"
    for bad in ("a\x00b", "a\nb", "\x7f"):
        with pytest.raises(StackError):
            param.from_json(bad)


def test_list_cannot_come_from_a_url() -> None:
    with pytest.raises(StackError, match="cannot be set in a render URL"):
        Param("l", Kind.STRING_LIST, "", None).from_text("a")


def test_stack_option_errors_have_no_operation() -> None:
    with pytest.raises(StackError) as error:
        Param("jpg.quality", Kind.INTEGER, "", 80, 1, 100).from_text("101")
    assert error.value.operation is None and error.value.parameter == "jpg.quality"
    assert error.value.message.startswith("stack option jpg.quality must be an integer")


IMAGE_REF = Param("secondary_image", Kind.IMAGE_HASH, "An image.", None)
FILE_REF = Param("font", Kind.FILE_HASH, "A font file.")


@pytest.mark.parametrize("param", [IMAGE_REF, FILE_REF])
@pytest.mark.parametrize("text", ["abcdef", "0123456789abcdef0123456789abcdef01234567"])
def test_hash_parameters_take_hashes_and_short_hashes(param: Param, text: str) -> None:
    assert param.from_text(text, operation="op") == text
    assert param.from_json(text, operation="op") == text


@pytest.mark.parametrize("param", [IMAGE_REF, FILE_REF])
@pytest.mark.parametrize(
    "value", ["abcde", "ABCDEF", "abcdeg", "../etc", "a" * 41, "abcdef\n", 123456, ["abcdef"]]
)
def test_hash_parameters_refuse_anything_else(param: Param, value: object) -> None:
    with pytest.raises(StackError, match="hash"):
        if isinstance(value, str):
            param.from_text(value, operation="op")
        param.from_json(value, operation="op")


def test_hash_parameters_are_published_as_strings_with_their_pattern() -> None:
    described = IMAGE_REF.describe()
    assert described["type"] == "string"
    assert described["default"] is None
    assert described["pattern"] == "^[0-9a-f]{6,40}$"
    assert IMAGE_REF.describe(null_in_type=True)["type"] == ["string", "null"]
