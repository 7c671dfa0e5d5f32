"""The expression language: grammar, precedence, PHP-like types, errors with positions,
limits, and a seeded fuzz run (random and hostile texts only ever give ExpressionError or
StackError, quickly)."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from stacks.errors import StackError
from stacks.expression import (
    MAX_DEPTH,
    MAX_LENGTH,
    Budget,
    ExpressionError,
    Scope,
    evaluate,
    parse,
)

VARIABLES = {
    "w": 300,
    "s": "300",
    "r": "1.5",
    "t": "on",
    "z": 0,
    "f": 2.5,
    "b": True,
    "n": None,
    "long": "x" * 1000,
}
ROOTS = {
    "image": {
        "width": 1200,
        "height": 800,
        "format": "jpg",
        "meta_user": {"tag": "x"},
        "subject_area": None,
        "hasSubjectArea": False,
    },
    "request": {"headers": {"save_data": "on", "accept": "image/webp,*/*"}},
    "options": {"dpr": 2, "autoformat": True, "jpg.quality": 70},
}


def lookup(name: str) -> Any:
    if name not in VARIABLES:
        raise StackError(f"undefined variable ${name}", parameter=name)
    return VARIABLES[name]


def run(text: str, steps: int = 5000) -> Any:
    return evaluate(text, Scope(ROOTS, lookup, Budget(steps)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # literals
        ("42", 42),
        ("4.5", 4.5),
        (".5", 0.5),
        ("1_000", 1000),
        ("1e3", 1000.0),
        ("'it\\'s'", "it's"),
        ('"a\\nb"', "a\nb"),
        ("true", True),
        ("FALSE", False),
        ("null", None),
        ("[1, 'a', [2]]", [1, "a", [2]]),
        ("[1, 2,]", [1, 2]),
        ("{a: 1, 'b': 2}", {"a": 1, "b": 2}),
        # arithmetic and precedence
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("10 - 4 - 3", 3),
        ("2 ** 3 ** 2", 512),  # right associative
        ("-2 ** 2", 4),  # unary minus binds tighter (Symfony)
        ("10 / 4", 2.5),
        ("10 / 5", 2),  # int / int dividing evenly stays an int (PHP)
        ("7 % 3", 1),
        ("-7 % 3", -1),  # sign of the dividend (PHP)
        ("7.9 % 3", 1),  # % works on integers
        ("+3", 3),
        ("- -3", 3),
        ("1 + 2 ~ 3", 24),  # ~ (40) binds tighter than + (30): 1 + (2 ~ 3) = 1 + "23"
        ("'a' ~ 1.0 ~ true ~ null", "a11"),
        # comparison (PHP 8 loose rules)
        ("1 == 1.0", True),
        ("1 === 1.0", False),
        ("'1' == 1", True),
        ("'1' === 1", False),
        ("'abc' == 0", False),
        ("null == false", True),
        ("null == 0", True),
        ("'' == null", True),
        ("1 != 2", True),
        ("1 !== 1", False),
        ("2 < 10", True),
        ("'2' < '10'", True),  # numeric strings compare as numbers
        ("'b' > 'a'", True),
        ("3 >= 3", True),
        ("3 <= 2", False),
        ("[1, 2] == [1, 2]", True),
        # logic
        ("true and false", False),
        ("true && 1", True),
        ("false or 0", False),
        ("false || 'x'", True),
        ("not true", False),
        ("!0", True),
        ("not 1 == 2", False),  # Symfony: (not 1) == 2 -> false == 2 -> false
        ("true or false and false", True),  # and binds tighter
        ("'0' ? 1 : 2", 2),  # "0" is falsy in PHP
        ("[] ? 1 : 2", 2),
        # ternary, elvis, null coalescing
        ("1 > 2 ? 'a' : 'b'", "b"),
        ("true ? false ? 1 : 2 : 3", 2),
        ("0 ?: 5", 5),
        ("7 ?: 5", 7),
        ("true ? 1", 1),
        ("false ? 1", None),
        ("null ?? 4", 4),
        ("image.missing ?? 'd'", "d"),
        ("0 ?? 4", 0),
        # in / not in
        ("2 in [1, 2]", True),
        ("'2' in [1, 2]", True),
        ("3 not in [1, 2]", True),
        ("'jpg' in ['png', 'gif']", False),
        # string operators (Symfony 6.1+)
        ("request.headers.accept contains 'image/webp'", True),
        ("'abc' starts with 'ab'", True),
        ("'abc' ends with 'bc'", True),
        ("'abc' ends with 'b'", False),
        ("12 contains 2", True),
        ("'a' ~ 'b' contains 'ab'", True),  # ~ (40) binds tighter than contains (20)
        # member access, index, variables, context
        ("$w * 2", 600),
        ("$s * 2", 600),  # numeric strings take part in arithmetic
        ("$r * 800", 1200.0),
        ("$w < 500 ? $w : 500", 300),
        ("$b and $t == 'on'", True),
        ("$n ?? $z", 0),
        ("image.width > 1000", True),
        ("image.meta_user.tag", "x"),
        ("image.meta_user.nope", None),
        ("image.subject_area", None),
        ("request.headers.save_data == 'on'", True),
        ("request.headers['accept']", "image/webp,*/*"),
        ("options.dpr >= 2", True),
        ("options['jpg.quality']", 70),
        ("[10, 20][1]", 20),
        ("[10, 20][5]", None),
        # functions
        ("min(3, 1, 2)", 1),
        ("max([3, 1, 2])", 3),
        ("abs(-4)", 4),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),
        ("round(1.2345, 2)", 1.23),
        ("floor(2.7)", 2.0),
        ("ceil(2.1)", 3.0),
        ("rad2deg(atan(1))", 45.0),
        ("deg2rad(180) > 3.14", True),
        ("atan2(1, 1) * 4 > 3.14", True),
        ("sqrt(16)", 4.0),
        # integers too large for PHP become floats
        ("9223372036854775807 + 1", 9.223372036854775808e18),
    ],
)
def test_evaluates(text: str, expected: Any) -> None:
    result = run(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        # syntax (parse time)
        ("1 +", "unexpected end of expression", 3),
        ("(1 + 2", "expected ')'", 6),
        ("1 2", "unexpected number 2", 2),
        ("1 = 2", "unexpected character '='", 2),
        ("'open", 'unexpected character "\'"', 0),
        ("foo", "unknown name 'foo'", 0),
        ("1 + bar(2)", "unknown function 'bar'", 4),
        ("min()", "takes 1 to 50 arguments", 0),
        ("image.width()", "method calls are not supported", 6),
        ("image.", "expected a property name", 6),
        ("[1, 2", "expected ','", 5),
        ("{1 + 2: 3}", "expected ':'", 3),
        ("1 ? 2 :", "unexpected end of expression", 7),
        ("#", "unexpected character '#'", 0),
        ("1 matches '/x/'", "unexpected name 'matches'", 2),
        ("'a' starts 'a'", "unexpected name 'starts'", 4),
        # evaluation
        ("1 / 0", "division by zero", 2),
        ("1 % 0", "division by zero", 2),
        ("'abc' * 2", "a string that is not a number", 6),
        ("[1] + 1", "array is not a number", 4),
        ("image.width.x", "cannot read property 'x' of number", 11),
        ("1 in 2", "right side of 'in' must be an array", 2),
        ("[1] < 2", "arrays cannot be compared", 4),
        ("[1] contains 1", "arrays cannot be converted", 4),
        ("'a' ~ [1]", "arrays cannot be converted", 4),
        ("2 ** 99999", "not a finite number", 2),
        ("sqrt(-1)", "sqrt(): math domain error", 0),
        ("round(1, 99)", "precision must be between", 0),
        ("1e308 * 10", "not a finite number", 6),
    ],
)
def test_errors_name_the_expression_and_position(text: str, message: str, position: int) -> None:
    with pytest.raises(ExpressionError) as error:
        run(text)
    assert error.value.status == 400
    assert error.value.message.startswith(f"expression {text!r}: ")
    assert message in error.value.message
    assert error.value.message.endswith(f"at position {position}")


def test_undefined_variable_names_it() -> None:
    with pytest.raises(StackError, match=r"undefined variable \$nope") as error:
        run("1 + $nope")
    assert error.value.parameter == "nope"


def test_short_circuit_skips_the_right_side() -> None:
    assert run("false and $nope") is False
    assert run("true or 1 / 0") is True
    assert run("1 ?? $nope") == 1
    assert run("true ? 1 : $nope") == 1


def test_limits() -> None:
    with pytest.raises(ExpressionError, match=f"longer than {MAX_LENGTH}"):
        parse("1" + " + 1" * MAX_LENGTH)
    with pytest.raises(ExpressionError, match="nested deeper"):
        parse("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ExpressionError, match="nested deeper"):
        parse("-" * (MAX_DEPTH + 1) + "1")
    with pytest.raises(ExpressionError, match="nested deeper than 120 operations"):
        parse("1+" * 499 + "1")  # a left-deep chain: bounded too (recursion in evaluation)
    assert run("1+" * 100 + "1") == 101
    assert parse("(" * (MAX_DEPTH // 2) + "1" + ")" * (MAX_DEPTH // 2))
    with pytest.raises(ExpressionError, match="work limit"):
        run("[" + ", ".join(["1 + 1"] * 100) + "]", steps=100)
    with pytest.raises(ExpressionError, match="work limit"):
        run("1 in [" + ", ".join(["2"] * 200) + "]", steps=150)
    with pytest.raises(ExpressionError, match="longer than 4096"):
        run("$long ~ $long ~ $long ~ $long ~ $long")
    with pytest.raises(ExpressionError):
        parse("")
    with pytest.raises(ExpressionError, match="number literal too long"):
        parse("1" * 41)


def test_trees_are_cached_and_immutable() -> None:
    assert parse("$w * 2") is parse("$w * 2")
    assert isinstance(parse("$w * 2"), tuple)


# ------------------------------------------------------------------------------ fuzz

_PIECES = [
    "1",
    "0",
    "-1",
    "2.5",
    "1e308",
    "9" * 30,
    "'a'",
    '"b"',
    "'0'",
    "true",
    "false",
    "null",
    "$w",
    "$s",
    "$r",
    "$nope",
    "image",
    "image.width",
    "image.meta_user",
    "request.headers",
    "options.dpr",
    "options['jpg.quality']",
    "[1, 2]",
    "{a: 1}",
    "min(1, 2)",
    "round(2.5, 1)",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "~",
    "==",
    "===",
    "!=",
    "<",
    ">=",
    "and",
    "or",
    "not",
    "!",
    "&&",
    "||",
    "?",
    ":",
    "?:",
    "??",
    "in",
    "not in",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ".",
    ",",
    "$",
    "'",
    '"',
    "\\",
    "\x00",
    "é",
    "#",
    "=",
    "matches",
    "..",
]


_ATOMS = [
    "1",
    "2.5",
    "0",
    "'a'",
    "'12'",
    "true",
    "null",
    "$w",
    "$s",
    "$r",
    "image.width",
    "options.dpr",
    "request.headers.save_data",
    "[1, 2]",
]
_OPS = ["+", "-", "*", "/", "%", "**", "~", "==", "===", "<", ">=", "and", "or", "in", "??"]


def _valid_text(rng: random.Random, depth: int = 0) -> str:
    """A syntactically valid expression (it may still fail when evaluated)."""
    roll = rng.random()
    if depth > 4 or roll < 0.3:
        return rng.choice(_ATOMS)
    if roll < 0.7:
        op = rng.choice(_OPS)
        return f"{_valid_text(rng, depth + 1)} {op} {_valid_text(rng, depth + 1)}"
    if roll < 0.8:
        return f"({_valid_text(rng, depth + 1)})"
    if roll < 0.9:
        parts = [_valid_text(rng, depth + 1) for _ in range(3)]
        return f"{parts[0]} ? {parts[1]} : {parts[2]}"
    return f"{rng.choice(['not ', '-', '!'])}{_valid_text(rng, depth + 1)}"


def _random_text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return _valid_text(rng)
    if rng.random() < 0.3:  # raw random characters
        alphabet = "()[]{}.,:?!'\"$+-*/%~<>=&|0123456789 abcdefnotrulimage\\\x00\u00e9"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
    return " ".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 25)))


_HOSTILE = [
    "(" * 5000,
    "(" * 999,
    "1+" * 499 + "1",
    "[" * 500 + "]" * 499,
    "[" * 5000,
    "-" * 999 + "1",
    "!" * 999 + "1",
    "not " * 249 + "1",
    "1" + " ** 9" * 300,
    "9" * 40 + " ** " + "9" * 40,
    "2 ** 2 ** 2 ** 2 ** 2 ** 2",
    "(10 ** 300) * (10 ** 300)",
    "'" + "a" * 998 + "'",
    "1 ?" * 300 + " 1" + " : 1" * 300,
    "[" + "[1, 2, 3]," * 99 + "1] == [" + "[1, 2, 3]," * 99 + "1]",
    "min(" + "1," * 400 + "1)",
    "max([" + "1," * 400 + "1])",
    "1 in [" + "1," * 400 + "2]",
    "round(1, 1e300)",
    "1 % 1e300",
    "'\\" * 300,
    "$" * 900,
    "a" * 1000,
    "\x00" * 100,
    "{" + ", ".join(f"k{i}: {i}" for i in range(150)) + "}",
]


def test_fuzz_only_400_class_errors_in_bounded_time() -> None:
    rng = random.Random(20261130)
    texts = [_random_text(rng) for _ in range(3000)] + _HOSTILE
    started = time.monotonic()
    outcomes = {"value": 0, "error": 0}
    for text in texts:
        began = time.monotonic()
        try:
            run(text)
            outcomes["value"] += 1
        except StackError as error:  # ExpressionError is one; undefined variables too
            assert error.status == 400
            outcomes["error"] += 1
        assert time.monotonic() - began < 0.5, text[:80]
    assert time.monotonic() - started < 20
    assert outcomes["value"] > 50 and outcomes["error"] > 50  # the generator reaches both


def test_nested_variable_evaluations_share_one_depth_limit() -> None:
    # 31 variables, each reading the previous one at the bottom of a 110-deep chain: the
    # Python stack would overflow (a 500) without the shared depth count.
    from stacks.evaluation import RenderContext, Variables, new_scope

    definitions: dict[str, tuple[bool, Any]] = {"v0": (False, 1)}
    for i in range(1, 32):
        definitions[f"v{i}"] = (True, f"$v{i - 1}" + " + 1" * 110)
    variables = Variables(definitions)
    new_scope(RenderContext(), {}, variables)
    with pytest.raises(ExpressionError, match="evaluation nested deeper than 200 levels"):
        variables.get("v31")
    assert variables.get("v1") == 111
