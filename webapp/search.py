"""Search over source images: the query string of ``GET /sourceimages/{org}`` parsed into
a typed, validated ``Search``. Pure Python; each catalog backend turns it into its SQL.

Grammar (docs/search.md): ``<field>=<value>`` where value is exact (``bar``, ``'quoted'``),
a prefix (``plan*``) or a range (``[a,b]`` inclusive, ``{a,b}`` exclusive, mixed and open
ends allowed: ``[30000,}``). Fields are the image columns, ``name_text``,
``user:<type>:<name>``, ``dynamic:<type>:<path>`` and ``static:<type>:<path>``.
Everything a client sends is checked here; anything malformed is a ``SearchError`` (400).
Field names only ever reach SQL through the allow-lists below; values only as parameters.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from webapp.metadata import USER_TYPES, MetadataError, normalise_date, validate_user_value

#: Most results one page may hold; ``limit`` is 0..MAX_LIMIT (0 answers only ``total``).
MAX_LIMIT = 2000
DEFAULT_LIMIT = 100
#: Most characters of one filter value, filters per query, sort keys, facets.
MAX_VALUE_CHARS = 1000
MAX_FILTERS = 50
MAX_SORT_KEYS = 5
MAX_FACETS = 10
MAX_WORDS = 32
#: Most values one facet answers (rokka: ≤ 1000).
FACET_VALUES = 1000
#: Query parameters that are not filters.
RESERVED = frozenset({"limit", "offset", "sort", "operator", "deleted", "facets", "binaryHash"})

#: How a field's values are read: ``text`` strings, ``hex`` hash prefixes (lowercase),
#: ``int``/``num`` numbers, ``date`` user dates, ``created`` the image time,
#: ``words`` full-text (FTS5), ``latlon`` exact coordinates, ``bool`` true/false.
ValueKind = Literal["text", "hex", "int", "num", "date", "created", "words", "latlon", "bool"]


class SearchError(ValueError):
    """A malformed search; the message says what is wrong (answered as 400)."""


@dataclass(frozen=True, slots=True)
class Field:
    """A searchable field.

    ``column`` is set for image columns (an allow-listed SQL column name); otherwise the
    field lives in the search index under ``source`` (``user``/``dynamic``/``static``/
    ``name``), ``name`` (user field name or dotted JSON path) and index ``type``.
    """

    key: str
    kind: ValueKind
    column: str | None = None
    source: str | None = None
    name: str | None = None
    type: str | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """One filter. ``op`` ``eq``/``prefix`` use ``value``; ``range`` uses ``low``/``high``
    (None = open) and the inclusive flags; ``match`` uses ``value`` (a tuple of words,
    all of which must occur) and ``prefix`` (the last word is a prefix)."""

    field: Field
    op: Literal["eq", "prefix", "range", "match"]
    value: Any = None
    low: Any = None
    high: Any = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class SortKey:
    """One sort key: a field and its direction."""

    field: Field
    descending: bool

    def signature(self) -> str:
        """Stable text for cursors: ``created:desc``."""
        return f"{self.field.key}:{'desc' if self.descending else 'asc'}"


@dataclass(frozen=True, slots=True)
class Search:
    """A validated list query."""

    conditions: tuple[Condition, ...] = ()
    any_of: bool = False  # operator=or
    sort: tuple[SortKey, ...] = ()
    facets: tuple[Field, ...] = ()
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    #: Decoded keyset cursor (the sort values and hash of the last row seen), or None.
    after: tuple[Any, ...] | None = None
    deleted: bool = False

    def sort_signature(self) -> str:
        """The sort as text, bound into cursors so they cannot be replayed on another sort."""
        return ",".join(key.signature() for key in self.sort)


# -- fields ---------------------------------------------------------------------------------

_COLUMNS: dict[str, Field] = {
    "hash": Field("hash", "hex", column="hash"),
    "short_hash": Field("short_hash", "hex", column="short_hash"),
    "binaryhash": Field("binaryhash", "hex", column="binary_hash"),
    "mimetype": Field("mimetype", "text", column="mimetype"),
    "format": Field("format", "text", column="format"),
    "name": Field("name", "text", column="name"),
    "size": Field("size", "int", column="size"),
    "width": Field("width", "int", column="width"),
    "height": Field("height", "int", column="height"),
    "created": Field("created", "created", column="created"),
    "name_text": Field("name_text", "words", source="name", name="name", type="text"),
}
_USER_KINDS: dict[str, ValueKind] = {
    "str": "text",
    "text": "words",
    "int": "int",
    "double": "num",
    "date": "date",
    "latlon": "latlon",
    "array": "text",
    "array_text": "words",
}
# dynamic/static leaves are indexed by JSON type: strings 'str', numbers 'num', booleans 'bool'.
_JSON_KINDS: dict[str, tuple[ValueKind, str]] = {
    "str": ("text", "str"),
    "int": ("int", "num"),
    "double": ("num", "num"),
    "bool": ("bool", "bool"),
}
_USER_NAME = re.compile(r"[a-z0-9_]{1,54}")
_PATH_PART = re.compile(r"[A-Za-z0-9_]{1,100}")
_HEX = re.compile(r"[0-9a-f]{0,40}")
_SORTABLE_COLUMNS = frozenset(
    {"created", "size", "width", "height", "name", "format", "mimetype", "hash", "short_hash"}
)
_SORTABLE_USER = frozenset({"str", "int", "double", "date", "latlon"})


def resolve_field(key: str) -> Field:
    """The field a query parameter names; ``SearchError`` for unknown names or prefixes."""
    if key in _COLUMNS:
        return _COLUMNS[key]
    parts = key.split(":")
    if parts[0] == "user":
        if len(parts) != 3 or parts[1] not in USER_TYPES or not _USER_NAME.fullmatch(parts[2]):
            raise SearchError(
                f"{_shown(key)}: user fields are user:<type>:<name> with type one of "
                f"{', '.join(USER_TYPES)} and name [a-z0-9_]{{1,54}}"
            )
        return Field(key, _USER_KINDS[parts[1]], source="user", name=parts[2], type=parts[1])
    if parts[0] in ("dynamic", "static"):
        if (
            len(parts) < 3
            or parts[1] not in _JSON_KINDS
            or len(parts) > 12
            or not all(_PATH_PART.fullmatch(p) for p in parts[2:])
        ):
            raise SearchError(
                f"{_shown(key)}: {parts[0]} fields are {parts[0]}:<type>:<path> with type "
                f"one of {', '.join(_JSON_KINDS)} and path parts [A-Za-z0-9_] joined by ':'"
            )
        kind, index_type = _JSON_KINDS[parts[1]]
        return Field(key, kind, source=parts[0], name=".".join(parts[2:]), type=index_type)
    raise SearchError(f"Unknown search field {_shown(key)}")


def _shown(text: str) -> str:
    return repr(text[:100])


# -- values ---------------------------------------------------------------------------------


def _unquote(text: str) -> tuple[str, bool]:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1], True
    return text, False


def _split_range(inner: str, key: str) -> list[str]:
    """The two ends of ``a,b``; commas inside quotes do not split."""
    parts: list[str] = []
    current = ""
    quote = ""
    for char in inner:
        if quote:
            current += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current += char
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    if quote:
        raise SearchError(f"{_shown(key)}: unterminated quote in range")
    parts.append(current)
    if len(parts) != 2:
        raise SearchError(f"{_shown(key)}: a range is [a,b] or {{a,b}} with exactly two ends")
    return parts


def _scalar(field: Field, text: str) -> Any:
    """One value of ``field`` as its Python type; ``SearchError`` if it does not fit."""
    kind = field.kind
    if kind in ("text", "words"):
        return text
    if kind == "hex":
        if not _HEX.fullmatch(text.lower()):
            raise SearchError(f"{field.key}: must be lowercase hex, at most 40 characters")
        return text.lower()
    if kind == "int":
        if not re.fullmatch(r"-?\d{1,19}", text) or not -(2**63) <= int(text) < 2**63:
            raise SearchError(f"{field.key}: {_shown(text)} is not a 64-bit integer")
        return int(text)
    if kind == "num":
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or not re.fullmatch(r"[-+0-9.eE]{1,40}", text):
            raise SearchError(f"{field.key}: {_shown(text)} is not a number")
        return number
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise SearchError(f"{field.key}: must be true or false")
        return int(text.lower() == "true")
    if kind == "latlon":
        try:
            return validate_user_value("latlon", field.key, text)
        except MetadataError as exc:
            raise SearchError(str(exc)) from exc
    # date, created
    normalised = normalise_date(text)
    if normalised is None:
        raise SearchError(f"{field.key}: {_shown(text)} is not a date like 2017-01-01T00:00:00Z")
    return normalised


def _created_bound(value: str, *, upper: bool, inclusive: bool) -> tuple[str, bool]:
    """A bound on ``created`` (whole seconds, ``+00:00`` text) from a canonical date.

    A fractional ``a`` is rounded so that whole-second comparisons keep the meaning:
    ``>= 10.5`` is ``> 10``, ``<= 10.5`` is ``<= 10`` (and likewise exclusive).
    """
    when = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    if when.microsecond:
        when = when.replace(microsecond=0)
        # Between two whole seconds: the lower one, compared inclusively from above and
        # exclusively from below, gives exactly the seconds on the right side.
        inclusive = upper
    return when.isoformat(), inclusive


def _words(field: Field, text: str) -> tuple[str, ...]:
    """The words of ``text`` (``\\w+`` runs) a word condition must all find; each backend
    quotes them for its own text search, so no query syntax reaches the engine."""
    words = re.findall(r"\w+", text)
    if not words:
        raise SearchError(f"{field.key}: no words to search for")
    if len(words) > MAX_WORDS:
        raise SearchError(f"{field.key}: at most {MAX_WORDS} words")
    return tuple(words)


def parse_condition(key: str, raw: str) -> Condition:
    """The filter ``key=raw``: exact, ``prefix*``, or a ``[a,b]``/``{a,b}`` range."""
    field = resolve_field(key)
    if len(raw) > MAX_VALUE_CHARS:
        raise SearchError(f"{field.key}: value longer than {MAX_VALUE_CHARS} characters")
    if "\x00" in raw:
        raise SearchError(f"{field.key}: value must not contain NUL characters")
    if len(raw) >= 2 and raw[0] in "[{" and raw[-1] in "]}":
        return _range(field, raw)
    text, quoted = _unquote(raw)
    prefix = not quoted and text.endswith("*") and not text.endswith("\\*")
    if prefix:
        text = text[:-1]
    elif not quoted and text.endswith("\\*"):
        text = text[:-2] + "*"
    if field.kind == "words":
        return Condition(field, "match", _words(field, text), prefix=prefix)
    if prefix:
        if field.kind not in ("text", "hex"):
            raise SearchError(f"{field.key}: prefix search (*) only works on string fields")
        return Condition(field, "prefix", _scalar(field, text))
    if text == "" and field.kind != "text":
        raise SearchError(f"{field.key}: empty value")
    value = _scalar(field, text)
    if field.kind == "created":
        if value.count(".") or not value.endswith("Z"):
            raise SearchError(f"{field.key}: an exact time has whole seconds")
        value = datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
    return Condition(field, "eq", value)


def _range(field: Field, raw: str) -> Condition:
    if field.kind in ("words", "latlon", "hex"):
        raise SearchError(f"{field.key}: ranges are not supported on this field")
    low_text, high_text = (p.strip() for p in _split_range(raw[1:-1], field.key))
    ends: list[Any] = []
    for text in (low_text, high_text):
        unquoted, quoted = _unquote(text)
        if not quoted and text in ("", "*"):
            ends.append(None)
        else:
            ends.append(_scalar(field, unquoted))
    low, high = ends
    if low is None and high is None:
        raise SearchError(f"{field.key}: a range needs at least one end")
    low_inclusive, high_inclusive = raw[0] == "[", raw[-1] == "]"
    if field.kind == "created":
        if low is not None:
            low, low_inclusive = _created_bound(low, upper=False, inclusive=low_inclusive)
        if high is not None:
            high, high_inclusive = _created_bound(high, upper=True, inclusive=high_inclusive)
    return Condition(field, "range", None, low, high, low_inclusive, high_inclusive)


# -- sort, facets, paging -------------------------------------------------------------------

DEFAULT_SORT = (SortKey(_COLUMNS["created"], descending=True),)


def parse_sort(text: str | None) -> tuple[SortKey, ...]:
    """``created desc,size asc``: fields and directions (default ``asc`` per key); no
    ``sort`` gives ``created desc``. Only single-valued fields sort."""
    if text is None or not text.strip():
        return DEFAULT_SORT
    keys: list[SortKey] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise SearchError(f"sort: {_shown(part)} is not '<field> [asc|desc]'")
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise SearchError(f"sort: direction must be asc or desc, not {_shown(words[1])}")
        key = words[0]
        if key == "binaryhash":
            raise SearchError("sort: binaryhash is not sortable")
        field = resolve_field(key)
        sortable = field.column in _SORTABLE_COLUMNS or (
            field.source == "user" and field.type in _SORTABLE_USER
        )
        if not sortable:
            raise SearchError(f"sort: {_shown(key)} is not sortable")
        if any(k.field.key == field.key for k in keys):
            raise SearchError(f"sort: {_shown(key)} given twice")
        keys.append(SortKey(field, direction == "desc"))
    if len(keys) > MAX_SORT_KEYS:
        raise SearchError(f"sort: at most {MAX_SORT_KEYS} fields")
    return tuple(keys)


def parse_facets(values: Iterable[str]) -> tuple[Field, ...]:
    """``facets=user:array:labels,format``: string fields to count values of."""
    fields: list[Field] = []
    for value in values:
        for key in value.split(","):
            key = key.strip()
            if not key:
                continue
            field = resolve_field(key)
            if not (
                field.column in ("format", "mimetype")
                or (field.source == "user" and field.type in ("str", "array"))
            ):
                raise SearchError(
                    f"facets: {_shown(key)} is not a string field (user:str:, user:array:, "
                    "format, mimetype)"
                )
            if field not in fields:
                fields.append(field)
    if len(fields) > MAX_FACETS:
        raise SearchError(f"facets: at most {MAX_FACETS} fields")
    return tuple(fields)


def _int(name: str, raw: str | None, default: int, maximum: int | None) -> int:
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise SearchError(f"{name} must be a non-negative integer")
    value = int(raw)
    if maximum is not None and value > maximum:
        raise SearchError(f"{name} must be at most {maximum}")
    return value


def encode_cursor(signature: str, values: Iterable[Any]) -> str:
    """An opaque cursor: the sort signature and the last row's sort values and hash."""
    payload = json.dumps({"s": signature, "v": list(values)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(text: str, signature: str) -> tuple[Any, ...]:
    """The values ``encode_cursor`` stored; ``SearchError`` if the cursor is not one of
    ours, or was made for another sort."""
    bad = SearchError("offset: not a number and not a cursor from a previous page")
    if len(text) > 20_000 or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise bad
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise bad from exc
    if not isinstance(payload, dict) or payload.get("s") != signature:
        raise SearchError("offset: the cursor belongs to another sort order")
    values = payload.get("v")
    if not isinstance(values, list) or not values:
        raise bad
    for value in values:
        if value is not None and type(value) not in (int, float, str):
            raise bad
        if type(value) is int and not -(2**63) <= value < 2**63:
            raise bad
    if not isinstance(values[-1], str) or not re.fullmatch(r"[0-9a-f]{40}", values[-1]):
        raise bad
    return tuple(values)


def parse_search(args: Iterable[tuple[str, str]]) -> Search:
    """The ``Search`` the query parameters describe (``args``: every key/value pair, in
    order, repeated keys included). ``SearchError`` for anything malformed."""
    pairs = list(args)
    single: dict[str, str] = {}
    conditions: list[Condition] = []
    facet_values: list[str] = []
    for key, value in pairs:
        if key == "facets":
            facet_values.append(value)
        elif key in RESERVED:
            if key in single:
                raise SearchError(f"{key} given more than once")
            single[key] = value
        else:
            conditions.append(parse_condition(key, value))
    if len(conditions) > MAX_FILTERS:
        raise SearchError(f"at most {MAX_FILTERS} filters")
    operator = single.get("operator", "and").lower()
    if operator not in ("and", "or"):
        raise SearchError("operator must be and or or")
    deleted = single.get("deleted", "false").strip().lower()
    if deleted not in ("true", "false", "1", "0", ""):
        raise SearchError("deleted must be true or false")
    sort = parse_sort(single.get("sort"))
    signature = ",".join(k.signature() for k in sort)
    raw_offset = single.get("offset", "")
    after = None
    offset = 0
    if raw_offset.isascii() and raw_offset.isdigit() or raw_offset == "":
        offset = _int("offset", raw_offset, 0, None)
    else:
        after = decode_cursor(raw_offset, signature)
    return Search(
        conditions=tuple(conditions),
        any_of=operator == "or",
        sort=sort,
        facets=parse_facets(facet_values),
        limit=_int("limit", single.get("limit"), DEFAULT_LIMIT, MAX_LIMIT),
        offset=offset,
        after=after,
        deleted=deleted in ("true", "1"),
    )
