"""The render URL grammar: the path after the organisation, parsed into a ``RenderRequest``.

    {stack}[/{segment}...]/{hash}[/{slug}].{ext}

``{hash}`` may also be a remote image, ``-{path or full URL}-`` (the URL may hold ``/``):
see ``_remote``.

A segment is items joined by ``--``; an item is ``name-key-value-key-value...``. ``name``
is an operation, ``o``/``options`` (stack options) or ``v``/``variables``. Later items and
segments win. For the ``dynamic`` stack the first non-empty segment *defines* the
operations in order; all other operation items override options of every operation of
that name. See docs/stacks.md for the full grammar and the choices made.

Operation values may be expressions in brackets (``resize-width-[$w * 2]``); inside
brackets ``-`` and ``--`` do not split. The path is expected percent-decoded (as Flask's
``request.path``); literal ``%5B``/``%5D`` are still recognised as expression brackets.
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
from stacks.expression import ExpressionError, parse
from stacks.operations import MAX_OPERATIONS, OperationItem, lookup_operation
from stacks.values import is_expression, shown

DYNAMIC = "dynamic"
HASH = re.compile(r"[0-9a-f]{6,40}")
#: An alias in place of the hash, ``-_{name}_-`` (rokka: names are ``[a-zA-Z0-9_]``; any
#: other character does not match, so the URL is a 404). Resolved by the web layer.
ALIAS_REF = re.compile(r"-_([A-Za-z0-9_]{1,100})_-")
STACK_NAME = re.compile(r"[A-Za-z0-9_\-]{1,100}")
VARIABLE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
MAX_PATH = 4096  # characters; far above any legitimate stack URL
MAX_SLUG = 255  # characters; longer slugs are 404 (bad-inputs.md row 23)
MAX_QUERY_V = 4096  # characters of the raw ?v= JSON
MAX_REMOTE = 2048  # characters of a remote image's path or URL (between the dashes)
# ``-_..._-`` is the alias form (rokka-api.md §1.1; names outside [A-Za-z0-9_] are invalid
# aliases, 404), never a remote path
_ALIAS_TOKEN = re.compile(r"_.*_", re.DOTALL)

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
        # rokka's BlurHash "format": the text placeholder of the rendered image.
        "blur": "blur",
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
    - ``expression_overrides``: operation name -> parameter -> expression text (from
      ``[...]`` values); a later literal for the same parameter removes it, and vice versa.
    - ``output_format``: canonical extension (``jpeg`` becomes ``jpg``).
    - ``remote``: for ``-{path or URL}-`` URLs, the text between the dashes (percent-decoded
      as the path was; ``hash`` is then empty).
    """

    stack: str
    hash: str
    output_format: str
    slug: str | None = None
    remote: str | None = None
    operations: tuple[OperationItem, ...] = ()
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _frozen({}))
    options: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))
    variables: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))
    expression_overrides: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: _frozen({})
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", tuple(self.operations))
        object.__setattr__(
            self, "overrides", _frozen({k: _frozen(v) for k, v in self.overrides.items()})
        )
        object.__setattr__(self, "options", _frozen(self.options))
        object.__setattr__(self, "variables", _frozen(self.variables))
        object.__setattr__(
            self,
            "expression_overrides",
            _frozen({k: _frozen(v) for k, v in self.expression_overrides.items()}),
        )

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
    segments = _path_segments(path.lstrip("/"))
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
    remote = _remote(segments)
    # No operation or option item can look like a hex hash, so `/{hash}/{slug}.ext` is
    # tried first; otherwise the last segment itself must be the hash.
    if remote is not None:
        middle, image_hash, slug = segments[1 : remote[0]], "", remote[2]
        extension = remote[3]
    elif len(segments) >= 3 and _image_ref(segments[-2]):
        image_hash, slug, middle = segments[-2], base, segments[1:-2]
    elif _image_ref(base):
        image_hash, slug, middle = base, None, segments[1:-1]
    else:
        raise UrlNotFound("render URL has no valid image hash ([0-9a-f]{6,40}) or -_alias_-")
    if slug is not None and len(slug) > MAX_SLUG:
        raise UrlNotFound(f"SEO slug longer than {MAX_SLUG} characters")
    output_format = OUTPUT_EXTENSIONS.get(extension.lower())
    if output_format is None:
        raise StackError(f"unsupported output format {shown(extension)}")

    definitions: list[OperationItem] = []
    overrides: dict[str, dict[str, Any]] = {}
    options: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    expression_overrides: dict[str, dict[str, str]] = {}
    defining = stack == DYNAMIC
    for segment in middle:
        if not segment:
            continue
        for name, pairs, expressions in _items(segment):
            if expressions and (name in _OPTIONS_ITEM or name in _VARIABLES_ITEM):
                raise ExpressionsNotSupported(
                    f"{shown(name)} values cannot be expressions in a render URL "
                    "(expressions are for operation values; use a stack expression)",
                    operation=name,
                    parameter=next(iter(expressions)),
                )
            if name in _OPTIONS_ITEM:
                options.update(stack_options.options_from_text(pairs))
            elif name in _VARIABLES_ITEM:
                variables.update(_variables_from_text(pairs))
            else:
                spec = lookup_operation(name)
                literal = spec.options_from_text(pairs)
                for key in expressions:
                    spec.param(key)
                if defining:
                    definitions.append(OperationItem(name, literal, expressions))
                    continue
                # within the URL a later value wins, whether literal or expression
                given = overrides.setdefault(name, {})
                computed = expression_overrides.setdefault(name, {})
                for key, value in literal.items():
                    given[key] = value
                    computed.pop(key, None)
                for key, text in expressions.items():
                    computed[key] = text
                    given.pop(key, None)
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
        remote=remote[1] if remote is not None else None,
        operations=tuple(definitions),
        overrides=overrides,
        options=options,
        variables=variables,
        expression_overrides={k: v for k, v in expression_overrides.items() if v},
    )


def _image_ref(segment: str) -> bool:
    return bool(HASH.fullmatch(segment) or ALIAS_REF.fullmatch(segment))


def alias_name(ref: str) -> str | None:
    """The alias name of an image reference written ``-_{name}_-``, else None."""
    found = ALIAS_REF.fullmatch(ref)
    return found.group(1) if found else None


def _remote(segments: list[str]) -> tuple[int, str, str | None, str] | None:
    """The remote image of a render URL's segments: (index of its first segment, the text
    between its dashes, slug or None, extension); None when the URL names no remote image.

    It starts at the first segment after the stack that begins with one ``-`` (an option
    segment never does: its first item would have no name) and is ``-{text}-.{ext}`` or
    ``-{text}-/{slug}.{ext}`` (a slug holds no ``.``, as rokka.js reads it). A last
    segment ``-slug.ext`` after a hash is that hash's slug, as before. ``-_{name}_-`` is an
    alias, not a remote image. 404 for a remote text that is too long or holds control
    characters.
    """
    start = next(
        (i for i in range(1, len(segments)) if segments[i][:1] == "-" and segments[i][1:2] != "-"),
        None,
    )
    if start is None:
        return None
    if start == len(segments) - 1 and len(segments) >= 3 and HASH.fullmatch(segments[-2]):
        return None  # /{hash}/-{slug}.{ext}
    rest = "/".join(segments[start:])
    head, slash, tail = rest.rpartition("/")
    base, _, extension = tail.rpartition(".")
    if slash and len(head) >= 3 and head.endswith("-") and base and "." not in base:
        token, slug = head, base
    elif base.endswith("-") and len(rest) - len(extension) - 1 >= 3:
        token, slug = rest[: len(rest) - len(extension) - 1], None
    else:
        return None
    text = token[1:-1]
    if _ALIAS_TOKEN.fullmatch(text):
        return None
    if not text or len(text) > MAX_REMOTE:
        raise UrlNotFound(f"remote image path must be 1 to {MAX_REMOTE} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise UrlNotFound("remote image path must not contain control characters")
    if slug is not None and len(slug) > MAX_SLUG:
        raise UrlNotFound(f"SEO slug longer than {MAX_SLUG} characters")
    return start, text, slug, extension


_ENCODED_BRACKET = re.compile(r"%5([bd])", re.IGNORECASE)


def _split(text: str, separator: str) -> list[str]:
    """``text.split(separator)``, except inside ``[...]``; unbalanced brackets are a 400."""
    parts: list[str] = []
    depth = start = index = 0
    while index < len(text):
        char = text[index]
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise StackError(f"unbalanced ] in render URL segment {shown(text)}")
        elif depth == 0 and text.startswith(separator, index):
            parts.append(text[start:index])
            index += len(separator)
            start = index
            continue
        index += 1
    if depth:
        raise StackError(f"unbalanced [ in render URL segment {shown(text)}")
    parts.append(text[start:])
    return parts


_PATH_TOKEN = re.compile(r"\[|%5b|\]|%5d|/", re.IGNORECASE)


def _path_segments(path: str) -> list[str]:
    """``path.split("/")``, except inside ``[...]`` (``resize-width-[image.width / 2]``).

    With unbalanced brackets this is the plain split (a slug may hold any character);
    the items parser then reports the bracket.
    """
    segments: list[str] = []
    depth = start = 0
    for match in _PATH_TOKEN.finditer(path):
        token = match.group().lower()
        if token in ("[", "%5b"):
            depth += 1
        elif token in ("]", "%5d"):
            depth -= 1
            if depth < 0:
                return path.split("/")
        elif depth == 0:
            segments.append(path[start : match.start()])
            start = match.end()
    if depth:
        return path.split("/")
    segments.append(path[start:])
    return segments


def _items(segment: str) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    """Split one segment into ``(name, {key: text}, {key: expression})`` items.

    A value in brackets is an expression (syntax-checked here); any other value holding
    ``$`` is a 400. Empty items are skipped.
    """
    segment = _ENCODED_BRACKET.sub(lambda m: "[" if m.group(1) in "bB" else "]", segment)
    for item in _split(segment, "--"):
        if not item:
            continue
        name, *tokens = _split(item, "-")
        if len(tokens) % 2:
            raise StackError(
                f"render URL item {shown(item)} must be name-key-value pairs", operation=name
            )
        pairs: dict[str, str] = {}
        expressions: dict[str, str] = {}
        for key, text in zip(tokens[0::2], tokens[1::2], strict=True):
            if text.startswith("[") and text.endswith("]"):
                try:
                    parse(text[1:-1])
                except ExpressionError as error:
                    raise StackError(
                        f"{shown(name)} {shown(key)}: {error.message}",
                        operation=name,
                        parameter=key,
                    ) from None
                expressions[key] = text[1:-1]
                pairs.pop(key, None)
            elif is_expression(text):
                raise StackError(
                    f"{shown(name)} {shown(key)}: an expression must be written in [...]",
                    operation=name,
                    parameter=key,
                )
            else:
                pairs[key] = text
                expressions.pop(key, None)
        yield name, pairs, expressions


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
