"""rokka's expression language: the documented subset of Symfony ExpressionLanguage.

``parse(text)`` turns an expression into an immutable tree (tuples) or raises
``ExpressionError`` naming the expression and the position (0-based, as Symfony counts);
``evaluate(tree, scope)`` computes its value with PHP-like semantics. There is no
``eval``: the tree is walked by this module only, and every walk is bounded:

- text: at most ``MAX_LENGTH`` characters; nesting: at most ``MAX_DEPTH`` levels of
  sub-expressions and ``MAX_TREE_DEPTH`` levels of tree (``1+1+...+1`` chains);
- work: every node visited and every array element compared costs one step of the
  scope's ``Budget``; strings are capped at ``MAX_STRING`` characters, arrays at
  ``MAX_ARRAY`` items, numbers must stay finite (integers beyond 2**63 become floats,
  as in PHP). Exceeding any limit is an ``ExpressionError`` (400), never a hang.

Grammar (lowest precedence first)::

    expr     := binary [ "?" expr ":" expr | "?:" expr | "?" expr ]
    binary   := unary { op binary }       # ?? 5, or || 10, and && 15, comparisons, in,
                                          # contains, starts with, ends with 20,
                                          # + - 30, ~ 40, * / % 60, ** 200 (right assoc)
    unary    := ("not" | "!") binary@50 | ("-" | "+") binary@500 | postfix
    postfix  := primary { "." name | "[" expr "]" }
    primary  := number | string | true | false | null | $variable | name | name "(" args ")"
              | "(" expr ")" | "[" items "]" | "{" key ":" expr, ... "}"
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from stacks.errors import StackError

MAX_LENGTH = 1000  # characters of one expression
MAX_DEPTH = 40  # nesting of sub-expressions (parentheses, unary chains, arrays, calls)
MAX_TREE_DEPTH = 120  # depth of the tree, operator chains included (bounds recursion)
MAX_STRING = 4096  # characters of any string value an expression produces
MAX_ARRAY = 1000  # items of an array value
MAX_STEPS = 5000  # work units of one evaluation
# Nodes being evaluated at once, summed over nested evaluations (a variable's expression
# reading a variable...): keeps the Python stack far below its recursion limit.
MAX_EVALUATION_DEPTH = 200
_MAX_INT = 2**63
_SHOWN = 60

ROOT_NAMES = frozenset({"image", "request", "options"})


class ExpressionError(StackError):
    """An expression that does not parse, or fails (or exceeds a limit) when evaluated."""


def _show(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...")


def _error(text: str, message: str, pos: int) -> ExpressionError:
    return ExpressionError(f"expression {_show(text)}: {message} at position {pos}")


# --------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:[0-9][0-9_]*(?:\.[0-9][0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<var>\$[A-Za-z0-9_]+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>===|!==|==|!=|<=|>=|&&|\|\||\?\?|\*\*|[-+*/%~<>!?:.,()\[\]{}])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_WORDS = frozenset({"and", "or", "not", "in"})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, string, var, name, op, end
    value: Any
    pos: int


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.S)


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _error(text, f"unexpected character {text[pos]!r}", pos)
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "number":
            out.append(_Token("number", _number(text, raw, pos), pos))
        elif kind == "string":
            out.append(_Token("string", _unescape(raw[1:-1]), pos))
        elif kind == "var":
            out.append(_Token("var", raw[1:], pos))
        elif kind == "name":
            lowered = raw.lower()
            if lowered in _WORDS:
                out.append(_Token("op", lowered, pos))
            else:
                out.append(_Token("name", raw, pos))
        elif kind == "op":
            out.append(_Token("op", raw, pos))
        pos = match.end()
    out.append(_Token("end", None, len(text)))
    return out


def _number(text: str, raw: str, pos: int) -> int | float:
    digits = raw.replace("_", "")
    if len(digits) > 40:
        raise _error(text, "number literal too long", pos)
    if any(c in digits for c in ".eE"):
        value = float(digits)
        if not math.isfinite(value):
            raise _error(text, "number literal out of range", pos)
        return value
    return _int_or_float(int(digits))


# --------------------------------------------------------------------------- parser

_BINARY: Mapping[str, int] = {
    "??": 5,
    "or": 10,
    "||": 10,
    "and": 15,
    "&&": 15,
    "==": 20,
    "===": 20,
    "!=": 20,
    "!==": 20,
    "<": 20,
    ">": 20,
    "<=": 20,
    ">=": 20,
    "in": 20,
    "not in": 20,
    "contains": 20,
    "starts with": 20,
    "ends with": 20,
    "+": 30,
    "-": 30,
    "~": 40,
    "*": 60,
    "/": 60,
    "%": 60,
    "**": 200,
}
_RIGHT_ASSOCIATIVE = frozenset({"**", "??"})
_UNARY: Mapping[str, int] = {"not": 50, "!": 50, "-": 500, "+": 500}
_LITERAL_NAMES = {"true": True, "false": False, "null": None}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def fail(self, message: str, token: _Token | None = None) -> ExpressionError:
        return _error(self.text, message, (token or self.token).pos)

    def is_op(self, value: str) -> bool:
        return self.token.kind == "op" and self.token.value == value

    def expect(self, value: str) -> _Token:
        if not self.is_op(value):
            raise self.fail(f"expected {value!r}, found {self._found()}")
        token = self.token
        self.index += 1
        return token

    def _found(self) -> str:
        token = self.token
        if token.kind == "end":
            return "end of expression"
        return repr(token.value) if token.kind == "op" else f"{token.kind} {token.value!r}"

    def binary_op(self) -> str | None:
        token = self.token
        if token.kind == "name":
            following = self.tokens[self.index + 1]
            if token.value == "contains":
                return "contains"
            if token.value in ("starts", "ends") and following.kind == "name":
                return f"{token.value} with" if following.value == "with" else None
            return None
        if token.kind != "op":
            return None
        if token.value == "not":
            following = self.tokens[self.index + 1]
            return "not in" if following.kind == "op" and following.value == "in" else None
        return token.value if token.value in _BINARY else None

    def parse(self) -> tuple:
        tree = self.expression(0)
        if self.token.kind != "end":
            raise self.fail(f"unexpected {self._found()}")
        return tree

    def expression(self, precedence: int) -> tuple:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"expression nested deeper than {MAX_DEPTH} levels")
        left = self.unary()
        while (op := self.binary_op()) is not None and _BINARY[op] >= precedence:
            token = self.token
            self.index += 2 if " " in op else 1
            step = 0 if op in _RIGHT_ASSOCIATIVE else 1
            right = self.expression(_BINARY[op] + step)
            left = ("binary", token.pos, op, left, right)
        if precedence == 0:
            left = self.conditional(left)
        self.depth -= 1
        return left

    def conditional(self, condition: tuple) -> tuple:
        while self.is_op("?"):
            token = self.token
            self.index += 1
            if self.is_op(":"):  # elvis: a ?: b
                self.index += 1
                otherwise = self.expression(0)
                condition = ("ternary", token.pos, condition, None, otherwise)
                continue
            then = self.expression(0)
            if self.is_op(":"):
                self.index += 1
                otherwise = self.expression(0)
            else:  # Symfony: "a ? b" is "a ? b : null"
                otherwise = ("lit", token.pos, None)
            condition = ("ternary", token.pos, condition, then, otherwise)
        return condition

    def unary(self) -> tuple:
        token = self.token
        if token.kind == "op" and token.value in _UNARY:
            self.index += 1
            operand = self.expression(_UNARY[token.value])
            return self.postfix(("unary", token.pos, token.value, operand))
        return self.postfix(self.primary())

    def primary(self) -> tuple:
        token = self.token
        self.index += 1
        if token.kind in ("number", "string"):
            if token.kind == "string" and len(token.value) > MAX_STRING:
                raise self.fail("string literal too long", token)
            return ("lit", token.pos, token.value)
        if token.kind == "var":
            return ("var", token.pos, token.value)
        if token.kind == "name":
            lowered = token.value.lower()
            if lowered in _LITERAL_NAMES:
                return ("lit", token.pos, _LITERAL_NAMES[lowered])
            if self.is_op("("):
                return self.call(token)
            if token.value not in ROOT_NAMES:
                raise self.fail(
                    f"unknown name {token.value!r} (variables are written $name; "
                    f"known names: {', '.join(sorted(ROOT_NAMES))})",
                    token,
                )
            return ("name", token.pos, token.value)
        if token.kind == "op" and token.value == "(":
            inner = self.expression(0)
            self.expect(")")
            return inner
        if token.kind == "op" and token.value == "[":
            return ("array", token.pos, self.items("]"))
        if token.kind == "op" and token.value == "{":
            return self.hash(token)
        self.index -= 1
        raise self.fail(f"unexpected {self._found()}")

    def items(self, closing: str) -> tuple:
        items: list[tuple] = []
        while not self.is_op(closing):
            if items:
                self.expect(",")
                if self.is_op(closing):  # trailing comma
                    break
            items.append(self.expression(0))
        self.index += 1
        return tuple(items)

    def hash(self, start: _Token) -> tuple:
        pairs: list[tuple[Any, tuple]] = []
        while not self.is_op("}"):
            if pairs:
                self.expect(",")
                if self.is_op("}"):
                    break
            key = self.token
            if key.kind not in ("string", "number", "name"):
                raise self.fail(f"expected a hash key, found {self._found()}")
            self.index += 1
            self.expect(":")
            pairs.append((key.value, self.expression(0)))
        self.index += 1
        return ("hash", start.pos, tuple(pairs))

    def call(self, name: _Token) -> tuple:
        function = FUNCTIONS.get(name.value)
        if function is None:
            raise self.fail(
                f"unknown function {name.value!r} (known: {', '.join(sorted(FUNCTIONS))})", name
            )
        self.index += 1  # "("
        self.depth += 1
        args = self.items(")")
        self.depth -= 1
        low, high = function.arity
        if not low <= len(args) <= high:
            raise self.fail(f"function {name.value} takes {function.arity_text()} arguments", name)
        return ("call", name.pos, name.value, args)

    def postfix(self, node: tuple) -> tuple:
        while True:
            token = self.token
            if self.is_op("."):
                self.index += 1
                member = self.token
                if member.kind not in ("name", "op") or not str(member.value).isidentifier():
                    raise self.fail(f"expected a property name, found {self._found()}")
                self.index += 1
                if self.is_op("("):
                    raise self.fail("method calls are not supported", member)
                node = ("member", token.pos, node, member.value)
            elif self.is_op("["):
                self.index += 1
                key = self.expression(0)
                self.expect("]")
                node = ("index", token.pos, node, key)
            else:
                return node


def _children(node: tuple) -> list[tuple]:
    kind = node[0]
    if kind in ("member",):
        return [node[2]]
    if kind == "index":
        return [node[2], node[3]]
    if kind == "call":
        return list(node[3])
    if kind == "array":
        return list(node[2])
    if kind == "hash":
        return [value for _, value in node[2]]
    if kind == "unary":
        return [node[3]]
    if kind == "binary":
        return [node[3], node[4]]
    if kind == "ternary":
        return [part for part in node[2:] if part is not None]
    return []  # lit, var, name


def _tree_depth(tree: tuple) -> int:
    """Depth of the tree, computed without recursion (a left-deep ``1+1+...`` chain is
    built by a loop in the parser, so the parser's own depth count does not see it)."""
    deepest = 0
    pending: list[tuple[tuple, int]] = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in _children(node))
    return deepest


@lru_cache(maxsize=2048)
def _parse_cached(text: str) -> tuple:
    tree = _Parser(text).parse()
    if _tree_depth(tree) > MAX_TREE_DEPTH:
        raise _error(text, f"expression nested deeper than {MAX_TREE_DEPTH} operations", 0)
    return tree


def parse(text: str) -> tuple:
    """The syntax tree of ``text``; ExpressionError (400) with the position if invalid.

    Trees are immutable tuples and cached by text, so a stored stack's expressions are
    parsed once per process, not on every render.
    """
    if type(text) is not str or not text.strip():
        raise ExpressionError("an expression must be a non-empty string")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression {_show(text)} is longer than {MAX_LENGTH} characters")
    return _parse_cached(text)


# --------------------------------------------------------------------------- evaluation


@dataclass(slots=True)
class Budget:
    """Work units left; shared by the evaluations of one render."""

    steps: int = MAX_STEPS
    depth: int = 0  # nodes under evaluation right now, nested evaluations included

    def spend(self, text: str, pos: int, units: int = 1) -> None:
        self.steps -= units
        if self.steps < 0:
            raise _error(text, "expression work limit exceeded", pos)


@dataclass(slots=True)
class Scope:
    """What an evaluation can see.

    ``roots``: the values of the names ``image``, ``request``, ``options``.
    ``variable``: returns the value of ``$name`` or raises (undefined variable, cycle).
    """

    roots: Mapping[str, Any]
    variable: Callable[[str], Any]
    budget: Budget = field(default_factory=Budget)


def evaluate(text: str, scope: Scope) -> Any:
    """The value of expression ``text`` in ``scope`` (parsed via the cache)."""
    return _Evaluator(text, scope).value(parse(text))


def truthy(value: Any) -> bool:
    """PHP truthiness: false, 0, 0.0, "", "0", null and [] are false."""
    if isinstance(value, str):
        return value not in ("", "0")
    if isinstance(value, (list, tuple, Mapping)):
        return len(value) > 0
    return bool(value)


def _int_or_float(value: int) -> int | float:
    return value if -_MAX_INT <= value < _MAX_INT else float(value)


_NUMERIC = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")


def numeric_string(value: str) -> int | float | None:
    """The number a PHP numeric string stands for (``" 12"``, ``"1.5"``, ``"1e3"``), else None."""
    if len(value) > 64 or not _NUMERIC.fullmatch(value):
        return None
    text = value.strip()
    try:
        if any(c in text for c in ".eE"):
            number = float(text)
            return number if math.isfinite(number) else None
        return _int_or_float(int(text))
    except ValueError:
        return None


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "hash"
    return "array"


def to_string(value: Any) -> str:
    """PHP string conversion: true "1", false/null "", 2.0 "2"."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (int, str)):
        return str(value)
    raise TypeError("arrays cannot be converted to strings")


class _Evaluator:
    def __init__(self, text: str, scope: Scope) -> None:
        self.text = text
        self.scope = scope

    def fail(self, message: str, pos: int) -> ExpressionError:
        return _error(self.text, message, pos)

    def value(self, node: tuple) -> Any:
        budget = self.scope.budget
        budget.spend(self.text, node[1])
        budget.depth += 1
        try:
            if budget.depth > MAX_EVALUATION_DEPTH:
                raise self.fail(
                    f"evaluation nested deeper than {MAX_EVALUATION_DEPTH} levels "
                    "(variables reading variables included)",
                    node[1],
                )
            return self._value(node)
        finally:
            budget.depth -= 1

    def _value(self, node: tuple) -> Any:
        kind, pos = node[0], node[1]
        if kind == "lit":
            return node[2]
        if kind == "var":
            return self.scope.variable(node[2])
        if kind == "name":
            return self.scope.roots.get(node[2])
        if kind == "member":
            return self.member(self.value(node[2]), node[3], pos)
        if kind == "index":
            return self.index(self.value(node[2]), self.value(node[3]), pos)
        if kind == "array":
            return [self.value(item) for item in node[2]]
        if kind == "hash":
            return {to_string(key): self.value(item) for key, item in node[2]}
        if kind == "call":
            args = [self.value(arg) for arg in node[3]]
            return self.call(node[2], args, pos)
        if kind == "unary":
            return self.unary(node[2], self.value(node[3]), pos)
        if kind == "ternary":
            condition = self.value(node[2])
            if truthy(condition):
                return condition if node[3] is None else self.value(node[3])
            return self.value(node[4])
        return self.binary(node[2], node[3], node[4], pos)

    def member(self, obj: Any, name: str, pos: int) -> Any:
        if isinstance(obj, Mapping):
            return obj.get(name)
        raise self.fail(f"cannot read property {name!r} of {type_name(obj)}", pos)

    def index(self, obj: Any, key: Any, pos: int) -> Any:
        if isinstance(obj, Mapping):
            if isinstance(key, (list, Mapping)):
                raise self.fail("an array cannot be a key", pos)
            return obj.get(to_string(key))
        if isinstance(obj, list):
            number = self.number(key, pos)
            if isinstance(number, float):
                number = int(number)
            return obj[number] if 0 <= number < len(obj) else None
        raise self.fail(f"cannot index {type_name(obj)}", pos)

    def call(self, name: str, args: list[Any], pos: int) -> Any:
        function = FUNCTIONS[name]
        for arg in args:
            if isinstance(arg, list):
                self.scope.budget.spend(self.text, pos, len(arg))
        try:
            return self.checked(function.body(self, args, pos), pos)
        except (ValueError, OverflowError, ZeroDivisionError, TypeError) as error:
            raise self.fail(f"{name}(): {error}", pos) from None

    def unary(self, op: str, operand: Any, pos: int) -> Any:
        if op in ("not", "!"):
            return not truthy(operand)
        number = self.number(operand, pos)
        return self.checked(-number if op == "-" else number, pos)

    def number(self, value: Any, pos: int) -> int | float:
        """PHP arithmetic operand: numbers, numeric strings, booleans and null."""
        if isinstance(value, bool) or value is None:
            return int(bool(value))
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, str):
            number = numeric_string(value)
            if number is not None:
                return number
            raise self.fail("a string that is not a number is used as one", pos)
        raise self.fail(f"{type_name(value)} is not a number", pos)

    def checked(self, value: Any, pos: int) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return _int_or_float(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail("result is not a finite number", pos)
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise self.fail(f"string longer than {MAX_STRING} characters", pos)
        if isinstance(value, list) and len(value) > MAX_ARRAY:
            raise self.fail(f"array longer than {MAX_ARRAY} items", pos)
        return value

    def binary(self, op: str, left_node: tuple, right_node: tuple, pos: int) -> Any:
        left = self.value(left_node)
        if op in ("or", "||"):
            return truthy(left) or truthy(self.value(right_node))
        if op in ("and", "&&"):
            return truthy(left) and truthy(self.value(right_node))
        if op == "??":
            return left if left is not None else self.value(right_node)
        right = self.value(right_node)
        if op in ("contains", "starts with", "ends with"):
            try:
                text, part = to_string(left), to_string(right)
            except TypeError as error:
                raise self.fail(str(error), pos) from None
            if op == "contains":
                return part in text
            return text.startswith(part) if op == "starts with" else text.endswith(part)
        if op in ("in", "not in"):
            if not isinstance(right, (list, Mapping)):
                raise self.fail(f"right side of {op!r} must be an array", pos)
            items = list(right.values()) if isinstance(right, Mapping) else right
            self.scope.budget.spend(self.text, pos, len(items))
            found = any(self.loose_equal(left, item, pos) for item in items)
            return found if op == "in" else not found
        if op == "==":
            return self.loose_equal(left, right, pos)
        if op == "!=":
            return not self.loose_equal(left, right, pos)
        if op == "===":
            return _strict_equal(left, right)
        if op == "!==":
            return not _strict_equal(left, right)
        if op in ("<", ">", "<=", ">="):
            order = self.compare(left, right, pos)
            return {"<": order < 0, ">": order > 0, "<=": order <= 0, ">=": order >= 0}[op]
        if op == "~":
            try:
                return self.checked(to_string(left) + to_string(right), pos)
            except TypeError as error:
                raise self.fail(str(error), pos) from None
        return self.arithmetic(op, self.number(left, pos), self.number(right, pos), pos)

    def arithmetic(self, op: str, a: int | float, b: int | float, pos: int) -> int | float:
        if op == "+":
            return self.checked(a + b, pos)
        if op == "-":
            return self.checked(a - b, pos)
        if op == "*":
            return self.checked(a * b, pos)
        if op in ("/", "%") and b == 0:
            raise self.fail("division by zero", pos)
        if op == "/":
            # PHP: int / int stays an int when it divides evenly
            if isinstance(a, int) and isinstance(b, int) and a % b == 0:
                return self.checked(a // b, pos)
            return self.checked(a / b, pos)
        if op == "%":
            a, b = int(a), int(b)  # PHP % works on integers, sign of the dividend
            if b == 0:
                raise self.fail("division by zero", pos)
            return self.checked(int(math.fmod(a, b)), pos)
        return self.power(a, b, pos)

    def power(self, a: int | float, b: int | float, pos: int) -> int | float:
        if isinstance(a, int) and isinstance(b, int) and b >= 0:
            # bit length bound: never build a huge integer only to turn it into a float
            if a in (0, 1, -1) or abs(a).bit_length() * b <= 64:
                return self.checked(a**b, pos)
        try:
            result = math.pow(a, b)
        except (OverflowError, ValueError):
            raise self.fail("result is not a finite number", pos) from None
        return self.checked(result, pos)

    def loose_equal(self, a: Any, b: Any, pos: int) -> bool:
        """PHP 8 ``==``."""
        if isinstance(a, list) or isinstance(b, list):
            if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
                return False
            self.scope.budget.spend(self.text, pos, len(a))
            return all(self.loose_equal(x, y, pos) for x, y in zip(a, b, strict=True))
        if isinstance(a, Mapping) or isinstance(b, Mapping):
            return isinstance(a, Mapping) and isinstance(b, Mapping) and dict(a) == dict(b)
        if isinstance(a, bool) or isinstance(b, bool):
            return truthy(a) == truthy(b)
        if a is None or b is None:
            other = b if a is None else a
            if other is None:
                return True
            return other == "" if isinstance(other, str) else other == 0
        return self.compare(a, b, pos) == 0

    def compare(self, a: Any, b: Any, pos: int) -> int:
        """PHP 8 ordering of two scalars: -1, 0 or 1."""
        if isinstance(a, (list, Mapping)) or isinstance(b, (list, Mapping)):
            raise self.fail("arrays cannot be compared with < or >", pos)
        if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
            if a is None and isinstance(b, str):
                a = ""
            elif b is None and isinstance(a, str):
                b = ""
            else:
                a, b = truthy(a), truthy(b)
        if isinstance(a, str) and isinstance(b, str):
            x, y = numeric_string(a), numeric_string(b)
            if x is None or y is None:
                return (a > b) - (a < b)
            a, b = x, y
        elif isinstance(a, str) or isinstance(b, str):
            text, number = (a, b) if isinstance(a, str) else (b, a)
            converted = numeric_string(text)
            if converted is None:  # PHP 8: the number is compared as a string
                left, right = (text, to_string(number))
                order = (left > right) - (left < right)
                return order if isinstance(a, str) else -order
            a, b = (converted, number) if isinstance(a, str) else (number, converted)
        return (a > b) - (a < b)


def _strict_equal(a: Any, b: Any) -> bool:
    """PHP ``===``: same type (int and float differ, as do int and bool) and same value."""
    if type(a) is not type(b):
        return False
    return a == b


# --------------------------------------------------------------------------- functions


@dataclass(frozen=True, slots=True)
class _Function:
    body: Callable[[_Evaluator, list[Any], int], Any]
    arity: tuple[int, int]

    def arity_text(self) -> str:
        low, high = self.arity
        return str(low) if low == high else f"{low} to {high}"


def _numbers(ev: _Evaluator, args: list[Any], pos: int) -> list[int | float]:
    values = args[0] if len(args) == 1 and isinstance(args[0], list) else args
    if not values:
        raise ValueError("needs at least one value")
    return [ev.number(v, pos) for v in values]


def _round(ev: _Evaluator, args: list[Any], pos: int) -> float:
    number = ev.number(args[0], pos)
    precision = int(ev.number(args[1], pos)) if len(args) > 1 else 0
    if not -15 <= precision <= 15:
        raise ValueError("precision must be between -15 and 15")
    factor = 10.0**precision
    # PHP rounds half away from zero (Python's round() rounds half to even)
    return math.copysign(math.floor(abs(number) * factor + 0.5), number) / factor


def _unary_math(function: Callable[[float], float]) -> _Function:
    return _Function(lambda ev, args, pos: function(ev.number(args[0], pos)), (1, 1))


FUNCTIONS: Mapping[str, _Function] = {
    "min": _Function(lambda ev, args, pos: min(_numbers(ev, args, pos)), (1, 50)),
    "max": _Function(lambda ev, args, pos: max(_numbers(ev, args, pos)), (1, 50)),
    "abs": _unary_math(abs),
    "round": _Function(_round, (1, 2)),
    "floor": _unary_math(lambda x: float(math.floor(x))),
    "ceil": _unary_math(lambda x: float(math.ceil(x))),
    "sqrt": _unary_math(math.sqrt),
    "atan": _unary_math(math.atan),
    "rad2deg": _unary_math(math.degrees),
    "deg2rad": _unary_math(math.radians),
    "atan2": _Function(
        lambda ev, args, pos: math.atan2(ev.number(args[0], pos), ev.number(args[1], pos)),
        (2, 2),
    ),
}
