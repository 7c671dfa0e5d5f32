"""The render URL grammar: the path after the organisation, parsed into a ``RenderRequest``.

    {stack}[/{segment}...]/{hash}[/{slug}].{ext}

A segment is items joined by ``--``; an item is ``name-key-value-key-value...``. ``name``
is an operation, ``o``/``options`` (stack options) or ``v``/``variables``. Later items and
segments win. For the ``dynamic`` stack the first non-empty segment *defines* the
operations in order; all other operation items override options of every operation of
that name. See docs/stacks.md for the full grammar and the choices made.

The path is expected percent-decoded (as Flask's ``request.path``); literal ``%5B``/``%5D``
are still recognised as expression brackets.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from stacks import options as stack_options
from stacks.errors import ExpressionsNotSupported, StackError, UrlNotFound
from stacks.operations import MAX_OPERATIONS, OperationItem, lookup_operation
from stacks.values import is_expression, shown

DYNAMIC = "dynamic"
HASH = re.compile(r"[0-9a-f]{6,40}")
STACK_NAME = re.compile(r"[A-Za-z0-9_\-]{1,100}")
VARIABLE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
MAX_PATH = 4096  # characters; far above any legitimate stack URL
MAX_SLUG = 255  # characters; longer slugs are 404 (bad-inputs.md row 23)
MAX_QUERY_V = 4096  # characters of the raw ?v= JSON

# URL extension -> output format. `jpeg` is an alias so plans (and cache keys) say `jpg`.
OUTPUT_EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {
        "jpg": "jpg",
        "jpeg": "jpg",
        "png": "png",
        "gif": "gif",
        "webp": "webp",
        "avif": "avif",
        "tiff": "tiff",
        "heic": "heic",
        "jxl": "jxl",
    }
)

_OPTIONS_ITEM = frozenset({"o", "options"})
_VARIABLES_ITEM = frozenset({"v", "variables"})


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class RenderRequest:
    """A parsed render URL, before any stack is loaded.

    - ``operations``: for ``dynamic`` only, the operations of the first segment, in order.
    - ``overrides``: operation name -> options, applied to every operation of that name.
    - ``options``: stack option overrides (validated, aliases resolved).
    - ``variables``: variable overrides; path values are strings, ``?v=`` keeps JSON types.
    - ``output_format``: canonical extension (``jpeg`` becomes ``jpg``).
    """

    stack: str
    hash: str
    output_format: str
    slug: str | None = None
    operations: tuple[OperationItem, ...] = ()
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _frozen({}))
    options: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))
    variables: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", tuple(self.operations))
        object.__setattr__(
            self, "overrides", _frozen({k: _frozen(v) for k, v in self.overrides.items()})
        )
        object.__setattr__(self, "options", _frozen(self.options))
        object.__setattr__(self, "variables", _frozen(self.variables))

    @property
    def is_dynamic(self) -> bool:
        """True for ``/dynamic/...`` URLs, whose operations come from the URL itself."""
        return self.stack == DYNAMIC


def parse_render_path(path: str, *, query_v: str | None = None) -> RenderRequest:
    """Parse ``{stack}/.../{hash}[/{slug}].{ext}`` (leading ``/`` optional).

    ``query_v`` is the raw ``?v=`` JSON object, whose variables win over path variables.
    Raises ``UrlNotFound`` (404) when the URL names no image, ``StackError`` (400)
    otherwise; never any other exception.
    """
    if len(path) > MAX_PATH:
        raise StackError(f"render URL longer than {MAX_PATH} characters")
    segments = path.lstrip("/").split("/")
    if any(segment in (".", "..") for segment in segments):
        raise UrlNotFound("render URL must not contain . or .. segments")
    if len(segments) < 2:
        raise UrlNotFound("render URL needs a stack and an image hash")
    stack = segments[0]
    if not STACK_NAME.fullmatch(stack):
        raise UrlNotFound(f"invalid stack name {shown(stack)}")

    base, dot, extension = segments[-1].rpartition(".")
    if not dot or not base or not extension:
        raise UrlNotFound("render URL needs an image hash and a format extension")
    # No operation or option item can look like a hex hash, so `/{hash}/{slug}.ext` is
    # tried first; otherwise the last segment itself must be the hash.
    if len(segments) >= 3 and HASH.fullmatch(segments[-2]):
        image_hash, slug, middle = segments[-2], base, segments[1:-2]
    elif HASH.fullmatch(base):
        image_hash, slug, middle = base, None, segments[1:-1]
    else:
        raise UrlNotFound("render URL has no valid image hash ([0-9a-f]{6,40})")
    if slug is not None and len(slug) > MAX_SLUG:
        raise UrlNotFound(f"SEO slug longer than {MAX_SLUG} characters")
    output_format = OUTPUT_EXTENSIONS.get(extension.lower())
    if output_format is None:
        raise StackError(f"unsupported output format {shown(extension)}")

    definitions: list[OperationItem] = []
    overrides: dict[str, dict[str, Any]] = {}
    options: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    defining = stack == DYNAMIC
    for segment in middle:
        if not segment:
            continue
        for name, pairs in _items(segment):
            if name in _OPTIONS_ITEM:
                options.update(stack_options.options_from_text(pairs))
            elif name in _VARIABLES_ITEM:
                variables.update(_variables_from_text(pairs))
            elif defining:
                spec = lookup_operation(name)
                definitions.append(OperationItem(name, spec.options_from_text(pairs)))
            else:
                spec = lookup_operation(name)
                overrides.setdefault(name, {}).update(spec.options_from_text(pairs))
        defining = False
    if len(definitions) > MAX_OPERATIONS:
        raise StackError(f"a dynamic stack may have at most {MAX_OPERATIONS} operations")
    if query_v is not None:
        variables.update(parse_query_variables(query_v))
    return RenderRequest(
        stack=stack,
        hash=image_hash,
        output_format=output_format,
        slug=slug,
        operations=tuple(definitions),
        overrides=overrides,
        options=options,
        variables=variables,
    )


def _items(segment: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Split one segment into ``(name, {key: text})`` items; empty items are skipped."""
    for item in segment.split("--"):
        if not item:
            continue
        name, *tokens = item.split("-")
        if len(tokens) % 2:
            raise StackError(
                f"render URL item {shown(item)} must be name-key-value pairs", operation=name
            )
        pairs: dict[str, str] = {}
        for key, text in zip(tokens[0::2], tokens[1::2], strict=True):
            if is_expression(text):
                raise ExpressionsNotSupported(
                    f"expressions are not supported yet ({shown(name)} {shown(key)})",
                    operation=name,
                    parameter=key,
                )
            pairs[key] = text
        yield name, pairs


def _variable_name(name: Any) -> str:
    if type(name) is not str or not VARIABLE_NAME.fullmatch(name):
        raise StackError(f"invalid variable name {shown(name)}", parameter=str(name))
    return name


def _variables_from_text(pairs: Mapping[str, str]) -> dict[str, str]:
    return {_variable_name(key): text for key, text in pairs.items()}


def variable_value(name: str, value: Any) -> Any:
    """Check a JSON variable value: a string, boolean or finite integer/number."""
    kind = type(value)
    if kind in (str, bool, int) or (kind is float and math.isfinite(value)):
        return value
    raise StackError(
        f"variable {name} must be a string, number or boolean, got {shown(value)}",
        parameter=name,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_query_variables(text: str) -> dict[str, Any]:
    """Parse the ``?v=`` JSON object of variable overrides (scalars only)."""
    if len(text) > MAX_QUERY_V:
        raise StackError(f"?v= longer than {MAX_QUERY_V} characters", parameter="v")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise StackError(f"?v= is not valid JSON: {error}", parameter="v") from None
    if not isinstance(data, dict):
        raise StackError("?v= must be a JSON object", parameter="v")
    return {_variable_name(key): variable_value(key, value) for key, value in data.items()}
