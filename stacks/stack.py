"""Stored stacks: the rokka create body parsed into a frozen ``StackDefinition``.

Validation uses the same tables as the render URL parser (``stacks.operations`` for
operation options, ``stacks.options`` for stack options), so a stack that saves renders.
Every expression (operation ``expressions``, option values written as ``"$w"`` or
``"[...]"``, variables written as expressions, stack expressions) is parsed here, so a
syntax error is a 400 at save time; evaluation happens per render (``stacks.resolve``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from stacks import options as stack_options
from stacks.errors import StackError
from stacks.evaluation import is_variable_expression, strip_brackets
from stacks.expression import ExpressionError, parse
from stacks.operations import MAX_OPERATIONS, OperationItem, lookup_operation
from stacks.url import DYNAMIC, STACK_NAME, VARIABLE_NAME, variable_value
from stacks.values import MAX_VARIABLE_PAIRS, Kind, is_expression, shown

MAX_EXPRESSIONS = 50
MAX_EXPRESSION_LENGTH = 1000  # characters of one stack expression
MAX_DESCRIPTION_LENGTH = 1000
MAX_VARIABLES = 100  # stack variables (and per stack-expression override)

# Body keys: rokka's create names, with the swagger/response names as synonyms.
_FIELDS = {
    "operations": "operations",
    "stack_operations": "operations",
    "options": "options",
    "stack_options": "options",
    "expressions": "expressions",
    "stack_expressions": "expressions",
    "variables": "variables",
    "stack_variables": "variables",
    "description": "description",
}
# Fields of a GET response, tolerated so a fetched stack can be PUT back unchanged.
_ECHO_FIELDS = frozenset({"name", "organization", "created", "link"})
_OPERATION_FIELDS = frozenset({"name", "options", "expressions"})


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if mapping is None else MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class StackExpression:
    """``{"expression": ..., "overrides": {"options"?: ..., "variables"?: ...}}``.

    ``options``/``variables`` are ``None`` when the override object did not contain them.
    """

    expression: str
    options: Mapping[str, Any] | None = None
    variables: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen(self.options))
        object.__setattr__(self, "variables", _frozen(self.variables))

    def to_json(self) -> dict[str, Any]:
        overrides: dict[str, Any] = {}
        if self.options is not None:
            overrides["options"] = dict(self.options)
        if self.variables is not None:
            overrides["variables"] = dict(self.variables)
        return {"expression": self.expression, "overrides": overrides}


@dataclass(frozen=True, slots=True)
class StackDefinition:
    """A validated stack as stored: operations and options hold only what the user gave."""

    name: str
    operations: tuple[OperationItem, ...] = ()
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    expressions: tuple[StackExpression, ...] = ()
    variables: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", tuple(self.operations))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "expressions", tuple(self.expressions))
        object.__setattr__(self, "variables", MappingProxyType(dict(self.variables)))

    def to_json(self) -> dict[str, Any]:
        """The stack-specific part of rokka's stack object (no name/organization/created)."""
        out: dict[str, Any] = {
            "stack_operations": [_operation_json(op) for op in self.operations],
            "stack_options": dict(self.options),
            "stack_expressions": [expression.to_json() for expression in self.expressions],
            "stack_variables": dict(self.variables),
        }
        if self.description is not None:
            out["description"] = self.description
        return out


Stack = StackDefinition


def _operation_json(op: OperationItem) -> dict[str, Any]:
    out: dict[str, Any] = {"name": op.name, "options": {**op.options, **op.written}}
    if op.expressions:
        out["expressions"] = dict(op.expressions)
    return out


def checked_expression(
    text: str, where: str, *, operation: str | None = None, parameter: str | None = None
) -> str:
    """``text`` if it parses; else a 400 saying where it was and the position."""
    try:
        parse(text)
    except ExpressionError as error:
        raise StackError(
            f"{where}: {error.message}", operation=operation, parameter=parameter
        ) from None
    return text


#: Stacks named so are never cached and are deleted a few days after their last save
#: (rokka; ``cropstack gc`` with ``preview_stack_days``). The one reserved-looking name
#: that may be created.
PREVIEW_PREFIX = "_preview"


def validate_stack_name(name: Any) -> str:
    """A stack name for create/update: ``[A-Za-z0-9_-]{1,100}``, not ``dynamic``.

    Names starting with ``_`` are reserved by rokka, except the ``_preview*`` stacks.
    """
    if type(name) is not str or not STACK_NAME.fullmatch(name):
        raise StackError(f"invalid stack name {shown(name)}", parameter="name")
    if name == DYNAMIC or (name.startswith("_") and not name.startswith(PREVIEW_PREFIX)):
        raise StackError(f"stack name {name} is reserved", parameter="name")
    return name


def parse_stack_json(body: Any, name: str) -> StackDefinition:
    """Validate a ``PUT /stacks/{org}/{name}`` body (or a stored stack's JSON).

    Accepts ``{"operations", "options", "expressions", "variables", "description"}``, the
    ``stack_*`` synonyms and the legacy bare list of operations. Raises StackError (400).
    Whether a ``basestack`` exists is for the caller to check (it needs the database).
    """
    name = validate_stack_name(name)
    fields = _fields({"operations": body} if isinstance(body, list) else body)
    operations = _operations(fields.get("operations"))
    options = stack_options.options_from_json(fields.get("options"))
    expressions = _expressions(fields.get("expressions"))
    variables = _variables(fields.get("variables"))
    description = fields.get("description")
    if description is not None and (
        type(description) is not str or len(description) > MAX_DESCRIPTION_LENGTH
    ):
        raise StackError(
            f"description must be a string of at most {MAX_DESCRIPTION_LENGTH} characters",
            parameter="description",
        )

    if options.get("source_file") is True and (operations or len(options) > 1):
        raise StackError(
            "source_file needs a stack without operations and without other options",
            parameter="source_file",
        )
    if options.get("basestack") == name:
        raise StackError("a stack cannot be its own basestack", parameter="basestack")
    # Checked here as well as at render time so that a stored stack always renders.
    if options.get("dpr", 1) != 1 and not any(op.name == "resize" for op in operations):
        raise StackError("dpr needs a resize operation", parameter="dpr")
    return StackDefinition(name, operations, options, expressions, variables, description)


def _fields(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise StackError("stack body must be a JSON object or a list of operations")
    fields: dict[str, Any] = {}
    for key, value in body.items():
        if key in _ECHO_FIELDS:
            continue
        canonical = _FIELDS.get(key)
        if canonical is None:
            raise StackError(f"unknown stack field {shown(key)}", parameter=str(key))
        if canonical in fields:
            raise StackError(f"stack field {canonical} given twice", parameter=canonical)
        fields[canonical] = value
    return fields


def _operations(raw: Any) -> tuple[OperationItem, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise StackError("operations must be a list", parameter="operations")
    if len(raw) > MAX_OPERATIONS:
        raise StackError(f"a stack may have at most {MAX_OPERATIONS} operations")
    return tuple(_operation(entry) for entry in raw)


def _operation(entry: Any) -> OperationItem:
    if not isinstance(entry, dict) or type(entry.get("name")) is not str:
        raise StackError("each operation must be an object with a string name")
    name = entry["name"]
    for key in entry:
        if key not in _OPERATION_FIELDS:
            raise StackError(
                f"operation {name}: unknown field {shown(key)}", operation=name, parameter=key
            )
    spec = lookup_operation(name)
    raw = entry.get("options")
    written: dict[str, str] = {}
    if isinstance(raw, dict):
        written = {k: v for k, v in raw.items() if type(v) is str and is_expression(v)}
        raw = {k: v for k, v in raw.items() if k not in written}
    options = spec.options_from_json(raw)
    for key, text in written.items():
        spec.param(key)
        checked_expression(
            strip_brackets(text), f"operation {name}: option {key}", operation=name, parameter=key
        )
    expressions = _operation_expressions(spec.name, entry.get("expressions"))
    for key in expressions:
        spec.param(key)
    # required / one-of must hold for the stored stack already; an expression counts
    spec.complete({**options, **dict.fromkeys([*written, *expressions], True)})
    return OperationItem(name, options, expressions, written)


def _operation_expressions(name: str, raw: Any) -> dict[str, Any]:
    """Parameter -> expression text; for a ``VARIABLES`` parameter (composition
    ``secondary_stack_variables``) also an object of variable name -> expression text, as
    rokka's docs write it (``{"w": "image.width"}``), each evaluated per render."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise StackError(f"operation {name}: expressions must be an object", operation=name)
    spec = lookup_operation(name)
    out: dict[str, Any] = {}
    for key, text in raw.items():
        where = f"operation {name}: expression for {key}"
        if type(text) is dict and spec.param(key).kind is Kind.VARIABLES:
            out[key] = _variable_expressions(name, key, text)
            continue
        if type(text) is not str:
            raise StackError(
                f"operation {name}: expression for {shown(key)} must be a string",
                operation=name,
                parameter=str(key),
            )
        out[key] = checked_expression(text, where, operation=name, parameter=key)
    return out


def _variable_expressions(name: str, key: str, raw: dict[Any, Any]) -> dict[str, str]:
    if len(raw) > MAX_VARIABLE_PAIRS:
        raise StackError(
            f"operation {name}: expression for {key} may set at most {MAX_VARIABLE_PAIRS} "
            "variables",
            operation=name,
            parameter=key,
        )
    out = {}
    for variable, text in raw.items():
        if type(variable) is not str or not VARIABLE_NAME.fullmatch(variable):
            raise StackError(
                f"operation {name}: expression for {key}: invalid variable name {shown(variable)}",
                operation=name,
                parameter=key,
            )
        if type(text) is not str:
            raise StackError(
                f"operation {name}: expression for {key}.{variable} must be a string",
                operation=name,
                parameter=key,
            )
        where = f"operation {name}: expression for {key}.{variable}"
        out[variable] = checked_expression(text, where, operation=name, parameter=key)
    return out


def _variables(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_VARIABLES:
        raise StackError(
            f"variables must be an object of at most {MAX_VARIABLES} entries",
            parameter="variables",
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not VARIABLE_NAME.fullmatch(key):
            raise StackError(f"invalid variable name {shown(key)}", parameter=key)
        if is_variable_expression(value):
            # an expression over other variables ("$w / 2"), evaluated per render
            out[key] = (
                checked_expression(strip_brackets(value), f"variable {key}", parameter=key)
                and value
            )
        else:
            out[key] = variable_value(key, value)
    return out


def _expressions(raw: Any) -> tuple[StackExpression, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_EXPRESSIONS:
        raise StackError(
            f"expressions must be a list of at most {MAX_EXPRESSIONS} entries",
            parameter="expressions",
        )
    return tuple(_expression(entry, number) for number, entry in enumerate(raw, 1))


def _expression(entry: Any, number: int) -> StackExpression:
    if not isinstance(entry, dict) or set(entry) - {"expression", "overrides"}:
        raise StackError(
            "each stack expression must be {expression, overrides}", parameter="expressions"
        )
    text = entry.get("expression")
    if type(text) is not str or not text.strip() or len(text) > MAX_EXPRESSION_LENGTH:
        raise StackError(
            f"expression must be a non-empty string of at most {MAX_EXPRESSION_LENGTH} characters",
            parameter="expressions",
        )
    checked_expression(text, f"stack expression {number}", parameter="expressions")
    overrides = entry.get("overrides", {})
    if not isinstance(overrides, dict) or set(overrides) - {"options", "variables"}:
        raise StackError(
            "expression overrides must be an object with options and/or variables",
            parameter="expressions",
        )
    options = stack_options.options_from_json(overrides.get("options"))
    for key in options:
        # A stack expression decides per request, like a URL: it gets the URL's power over
        # options (no switching signing, basestacks, originals or remote fetching).
        if not stack_options.option(key).url_settable:
            raise StackError(
                f"stack expression {number}: stack option {key} cannot be overridden "
                "by a stack expression",
                parameter=key,
            )
    return StackExpression(
        text,
        options if "options" in overrides else None,
        _variables(overrides["variables"]) if "variables" in overrides else None,
    )
