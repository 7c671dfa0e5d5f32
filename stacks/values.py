"""Typed parameters: one ``Param`` per operation parameter or stack option.

A ``Param`` converts a value from its two sources, render-URL text and stack JSON, with
the same checks, and describes itself for ``GET /operations`` and ``GET /stackoptions``.
Conversion is strict on purpose: Python's ``int()``/``float()`` accept ``1_0``, ``+5``,
``٣``, ``1e3``, ``nan`` and ``inf``, so URL text is matched against ASCII regexes first.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode

from stacks.errors import ExpressionsNotSupported, StackError


class Kind(StrEnum):
    """The JSON type of a parameter, as published in the ``type`` field."""

    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    STRING = "string"
    STRING_LIST = "array"
    # A list of objects whose keys are the parameter's ``keys`` (svgdynamic ``changes``);
    # published as an array of objects.
    OBJECT_LIST = "object-list"
    # A source of the same organization, named by its hash or short hash (JSON string):
    # an image the operation decodes (composition ``secondary_image``) ...
    IMAGE_HASH = "image_hash"
    # ... or a file handed to the operation as bytes, never decoded as an image (a font).
    FILE_HASH = "file_hash"
    # Variables for another stack (composition ``secondary_stack_variables``): an object
    # of name -> string, number or boolean, or the same as URL query text (``w=300&t=hi``);
    # a plan always holds the query text (:func:`variables_text`).
    VARIABLES = "variables"

    @property
    def json_type(self) -> str:
        """The JSON type published in ``GET /operations`` (hashes are strings)."""
        if self is Kind.OBJECT_LIST:
            return "array"
        if self is Kind.VARIABLES:
            return "object"
        return "string" if self in _HASH_KINDS else self.value

    @property
    def is_hash(self) -> bool:
        """Whether values of this kind name a source of the organization by hash."""
        return self in _HASH_KINDS


_HASH_KINDS = frozenset({Kind.IMAGE_HASH, Kind.FILE_HASH})


class _NoDefault:
    """Marker for parameters without a default (distinct from a ``None`` default)."""

    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()

# `[0-9]` (not `\d`) so that only ASCII digits match; lengths are capped so that a
# 10 kB digit string never reaches int() (which raises above 4300 digits).
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,12}")
_NUMBER_TEXT = re.compile(r"-?[0-9]{1,12}(?:\.[0-9]{1,12})?")
# URLs spell booleans true/false; `1`/`0` is accepted too because rokka's own docs use
# `o-af-1` in an example.
_BOOLEAN_TEXT = {"true": True, "false": False, "1": True, "0": False}
# No option value has a use for control characters; rejecting them also keeps `$` in the
# published patterns from matching before a trailing newline.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN_MAX = 40

HEX_COLOR = r"^[0-9a-fA-F]{6}$"
# A VARIABLES object: at most this many names, each a stack variable name.
MAX_VARIABLE_PAIRS = 50
_VARIABLE_KEY = re.compile(r"[A-Za-z0-9_]{1,100}")
# Longest text of one value in an object of an OBJECT_LIST parameter, characters.
MAX_OBJECT_TEXT = 1000
# A source image's hash (40 hex digits) or short hash / unambiguous prefix (6+), as in
# render URLs (stacks.url.HASH).
SOURCE_HASH = r"^[0-9a-f]{6,40}$"

# rokka's expression language references variables as ``$name``; URL values mark
# expressions with ``[...]`` (also percent-encoded).
_EXPRESSION_MARK = re.compile(r"\[|\]|%5b|%5d|\$", re.IGNORECASE)


def is_expression(text: str) -> bool:
    """Whether ``text`` is written as an expression rather than a literal value."""
    return bool(_EXPRESSION_MARK.search(text))


def shown(value: Any) -> str:
    """A short, safe rendering of a user value for error messages."""
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."


@dataclass(frozen=True, slots=True)
class Param:
    """One typed parameter.

    - ``minimum``/``maximum``: inclusive bounds for integers and numbers.
    - ``values``: the allowed strings of an enum-like string parameter.
    - ``pattern``: a regex a string value must match (``re.search``; patterns are anchored).
    - ``default``: ``NO_DEFAULT`` when there is none; a ``None`` default means JSON ``null``
      is accepted as "unset".
    - ``url_settable``: False for stack options a render URL must not change (security).
    - ``keys``: the keys every object of an ``OBJECT_LIST`` has (all required, values
      strings or numbers, read as text of at most :data:`MAX_OBJECT_TEXT` characters);
      ``maximum`` is then the most objects the list may hold.
    """

    name: str
    kind: Kind
    description: str
    default: Any = NO_DEFAULT
    minimum: int | float | None = None
    maximum: int | float | None = None
    values: tuple[str, ...] = ()
    pattern: str | None = None
    url_settable: bool = True
    keys: tuple[str, ...] = ()

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    @property
    def nullable(self) -> bool:
        return self.default is None

    @property
    def text_pattern(self) -> str | None:
        """The regex a string value must match: ``pattern``, or the hash form for hashes."""
        if self.pattern is None and self.kind.is_hash:
            return SOURCE_HASH
        return self.pattern

    def from_text(self, text: str, *, operation: str | None = None) -> Any:
        """Convert a render-URL token (always text) to this parameter's type, or raise."""
        if self.kind is Kind.INTEGER:
            if not _INTEGER_TEXT.fullmatch(text):
                raise self._error(text, operation)
            return self._in_range(int(text), operation)
        if self.kind is Kind.NUMBER:
            if not _NUMBER_TEXT.fullmatch(text):
                raise self._error(text, operation)
            number = float(text)
            return self._in_range(int(number) if "." not in text else number, operation)
        if self.kind is Kind.BOOLEAN:
            if text not in _BOOLEAN_TEXT:
                raise self._error(text, operation)
            return _BOOLEAN_TEXT[text]
        if self.kind in (Kind.STRING, Kind.VARIABLES) or self.kind.is_hash:
            return self._string(text, operation)
        raise StackError(
            f"{self._where(operation)} {self.name} cannot be set in a render URL",
            operation=operation,
            parameter=self.name,
        )

    def from_json(self, value: Any, *, operation: str | None = None) -> Any:
        """Check a stack-JSON value: it must already have the right JSON type.

        ``True`` is not an integer here and ``"5"`` is not a number (``type(x) is int``).
        A string written as an expression (``"$w"``, ``"[$w * 2]"``) raises
        ExpressionsNotSupported, whatever the parameter's type.
        """
        if type(value) is str and is_expression(value):
            # Operation options written as expressions are split off by stacks.stack before
            # this point; what is left is a stack option, which rokka does not evaluate.
            raise ExpressionsNotSupported(
                f"{self._where(operation)} {self.name} cannot be an expression "
                "(use a stack expression to change stack options)",
                operation=operation,
                parameter=self.name,
            )
        if type(value) is dict and self.kind is Kind.VARIABLES:
            for key, item in value.items():
                if type(item) is str and is_expression(item):
                    raise ExpressionsNotSupported(
                        f"{self._where(operation)} {self.name}: {shown(key)} is written as an "
                        "expression; put the object in the operation's expressions instead",
                        operation=operation,
                        parameter=self.name,
                    )
        return self._typed(value, operation)

    def _typed(self, value: Any, operation: str | None) -> Any:
        if value is None and self.nullable:
            return None
        kind = type(value)
        if self.kind is Kind.INTEGER and kind is int:
            return self._in_range(value, operation)
        if self.kind is Kind.NUMBER and kind in (int, float) and math.isfinite(value):
            return self._in_range(value, operation)
        if self.kind is Kind.BOOLEAN and kind is bool:
            return value
        if (self.kind is Kind.STRING or self.kind.is_hash) and kind is str:
            return self._string(value, operation)
        if self.kind is Kind.VARIABLES and kind is str:
            return self._string(value, operation)
        if self.kind is Kind.VARIABLES and kind is dict:
            return self._variables(value, operation)
        if self.kind is Kind.STRING_LIST and kind is list:
            return [self._string(item, operation) for item in value]
        if self.kind is Kind.OBJECT_LIST and kind is list:
            if self.maximum is not None and len(value) > self.maximum:
                raise self._error(f"{len(value)} items", operation)
            return [self._object(item, operation) for item in value]
        raise self._error(value, operation)

    def _object(self, item: Any, operation: str | None) -> dict[str, str]:
        """One object of an ``OBJECT_LIST``: exactly ``keys``, each a string or a number."""
        if type(item) is not dict or set(item) != set(self.keys):
            raise self._error(item, operation)
        out = {}
        for key in self.keys:
            value = item[key]
            if type(value) in (int, float) and math.isfinite(value):
                value = str(value)
            if type(value) is not str or len(value) > MAX_OBJECT_TEXT or _CONTROL.search(value):
                raise self._error(item, operation)
            out[key] = value
        return out

    def _variables(self, given: dict[Any, Any], operation: str | None) -> dict[str, Any]:
        """A ``VARIABLES`` object: at most :data:`MAX_VARIABLE_PAIRS` names (stack variable
        names), each a string (at most :data:`MAX_OBJECT_TEXT` characters, no control
        characters), a finite number or a boolean; kept as given."""
        if len(given) > MAX_VARIABLE_PAIRS:
            raise self._error(f"{len(given)} variables", operation)
        for key, value in given.items():
            if type(key) is not str or not _VARIABLE_KEY.fullmatch(key):
                raise self._error(key, operation)
            if type(value) is str:
                if len(value) > MAX_OBJECT_TEXT or _CONTROL.search(value):
                    raise self._error(value, operation)

            elif type(value) is bool:
                continue
            elif type(value) not in (int, float) or not math.isfinite(value):
                raise self._error(value, operation)
        return dict(given)

    def from_value(self, value: Any, *, operation: str | None, expression: str) -> Any:
        """Check the value an expression evaluated to, as strictly as a literal.

        Numeric text (a URL variable, ``"300"``) is read as a number and ``"true"`` /
        ``"false"`` as booleans; for an integer parameter a float is rounded half away
        from zero (``$w / 3``); for a boolean one, 0 and 1 count as false and true.
        """
        if type(value) is str and self.kind in (Kind.INTEGER, Kind.NUMBER, Kind.BOOLEAN):
            text = value.strip()
            if self.kind is not Kind.BOOLEAN and _NUMBER_TEXT.fullmatch(text):
                value = float(text) if "." in text else int(text)
            elif self.kind is Kind.BOOLEAN and text in _BOOLEAN_TEXT:
                value = _BOOLEAN_TEXT[text]
        if self.kind is Kind.INTEGER and type(value) is float and math.isfinite(value):
            if abs(value) < 1e15:
                value = int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)
        if self.kind is Kind.BOOLEAN and type(value) is int and value in (0, 1):
            value = bool(value)
        try:
            return self._typed(value, operation)  # computed text is never re-parsed
        except StackError:
            # Name the type, never the value: an expression may read user metadata or
            # headers, and render URLs are anonymous.
            raise StackError(
                f"{self._where(operation)} {self.name} must be {self.expected()}, got "
                f"{_kind_of(value)} (from expression {shown(expression)})",
                operation=operation,
                parameter=self.name,
            ) from None

    def describe(self, *, null_in_type: bool = False) -> dict[str, Any]:
        """This parameter as a JSON-schema-like property.

        ``null_in_type``: publish a ``None`` default as ``"type": [kind, "null"]``, as rokka's
        ``GET /stackoptions`` does for scalars (``GET /operations`` does not).
        """
        lists = (Kind.STRING_LIST, Kind.OBJECT_LIST)
        nullable_type = null_in_type and self.nullable and self.kind not in lists
        json_type = self.kind.json_type
        out: dict[str, Any] = {"type": [json_type, "null"] if nullable_type else json_type}
        if self.kind is Kind.STRING_LIST:
            out["items"] = {"type": "string"}
        if self.kind is Kind.VARIABLES:
            out["type"] = ["object", "string"]
            out["maxProperties"] = MAX_VARIABLE_PAIRS
            out["additionalProperties"] = {"type": ["string", "number", "boolean"]}
        if self.kind is Kind.OBJECT_LIST:
            out["items"] = {
                "type": "object",
                "properties": {key: {"type": ["string", "number"]} for key in self.keys},
                "required": list(self.keys),
            }
            if self.maximum is not None:
                out["maxItems"] = self.maximum
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None and self.kind is not Kind.OBJECT_LIST:
            out["maximum"] = self.maximum
        if self.has_default:
            out["default"] = self.default
        if self.values:
            out["values"] = list(self.values)
        if self.text_pattern is not None:
            out["pattern"] = self.text_pattern
        out["description"] = self.description
        return out

    def expected(self) -> str:
        """Human wording of what this parameter accepts, used in errors and docs."""
        if self.kind in (Kind.INTEGER, Kind.NUMBER):
            noun = "an integer" if self.kind is Kind.INTEGER else "a number"
            if self.minimum is not None and self.maximum is not None:
                return f"{noun} between {self.minimum} and {self.maximum}"
            if self.minimum is not None:
                return f"{noun} >= {self.minimum}"
            return noun
        if self.kind is Kind.BOOLEAN:
            return "true or false"
        if self.kind is Kind.STRING_LIST:
            return "a list of strings"
        if self.kind is Kind.OBJECT_LIST:
            most = f"at most {self.maximum} " if self.maximum is not None else ""
            return f"a list of {most}objects with the keys {', '.join(self.keys)}"
        if self.kind is Kind.VARIABLES:
            return (
                f"an object of at most {MAX_VARIABLE_PAIRS} variables (name: string, number or "
                f"boolean) or that as URL query text matching {self.pattern}"
            )
        if self.kind.is_hash:
            return "the hash or short hash of a source image of this organization"
        if self.values:
            return "one of " + ", ".join(self.values)
        if self.pattern is not None:
            return f"a string matching {self.pattern}"
        return "a string"

    def _in_range(self, number: int | float, operation: str | None) -> int | float:
        if (self.minimum is not None and number < self.minimum) or (
            self.maximum is not None and number > self.maximum
        ):
            raise self._error(number, operation)
        return number

    def _string(self, text: Any, operation: str | None) -> str:
        if type(text) is not str or _CONTROL.search(text):
            raise self._error(text, operation)
        if self.values and text not in self.values:
            raise self._error(text, operation)
        if self.text_pattern is not None and not re.search(self.text_pattern, text):
            raise self._error(text, operation)
        return text

    def _where(self, operation: str | None) -> str:
        return f"operation {operation}: parameter" if operation else "stack option"

    def _error(self, got: Any, operation: str | None) -> StackError:
        return StackError(
            f"{self._where(operation)} {self.name} must be {self.expected()}, got {shown(got)}",
            operation=operation,
            parameter=self.name,
        )


def _kind_of(value: Any) -> str:
    """What a computed value is, without its contents (for error messages)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number out of range" if math.isfinite(value) else "a non-finite number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a list" if isinstance(value, list | tuple) else "an object"


def variables_text(value: str | dict[str, Any] | None) -> str | None:
    """The URL query text of a ``VARIABLES`` value: text as given, an object encoded (in
    its order, booleans as ``true``/``false``, numbers as written in JSON), None as None."""
    if not isinstance(value, dict):
        return value
    pairs = []
    for key, item in value.items():
        if type(item) is bool:
            text = "true" if item else "false"
        elif type(item) is float and item.is_integer():
            text = str(int(item))
        else:
            text = str(item)
        pairs.append((key, text))
    return urlencode(pairs, quote_via=quote)
