"""What expressions see at render time: the source image, the request, options, variables.

The web layer hands ``RenderContext`` over as plain data (no Flask objects), so ``stacks``
stays pure Python. ``Variables`` resolves ``$name`` lazily: a stack variable may be an
expression over other variables; it is evaluated at most once per render, in whatever
order the references ask for it (stored stacks keep no key order), and a cycle is a 400.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from stacks.errors import StackError
from stacks.expression import Budget, Scope, evaluate, numeric_string

# One render may evaluate many expressions (variables, stack expressions, operation
# options); they share this many work units (see stacks.expression.Budget).
MAX_RENDER_STEPS = 50_000

# A variable's expression may read variables whose expressions read variables...: this
# many levels at most (each level is a nested evaluation on the Python stack).
MAX_VARIABLE_DEPTH = 32

# Request headers that expressions cannot read: credentials must not steer renders (and
# a Vary on them would make every answer uncacheable).
HIDDEN_HEADERS = frozenset({"authorization", "cookie", "proxy_authorization"})


def header_key(name: str) -> str:
    """``Save-Data`` -> ``save_data``: how rokka names headers in expressions."""
    return name.strip().lower().replace("-", "_")


def header_name(key: str) -> str:
    """``save_data`` -> ``Save-Data``: the HTTP spelling, for ``Vary``."""
    return "-".join(part.capitalize() for part in key.split("_"))


class HeaderView(Mapping[str, str]):
    """``request.headers`` for expressions; remembers which headers were read (for Vary).

    A header that is absent reads as ``null`` and is remembered too: its absence shaped
    the answer as much as a value would have.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = {
            key: value
            for key, value in ((header_key(k), v) for k, v in headers.items())
            if key not in HIDDEN_HEADERS
        }
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        if key in HIDDEN_HEADERS:
            raise KeyError(key)
        self.read.add(key)
        return self._headers[key]

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        try:
            return self[key]
        except KeyError:
            return default

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)


@dataclass(frozen=True, slots=True)
class RenderContext:
    """The request-dependent data expressions may read.

    - ``image``: the ``image.*`` object (see ``image_fields``).
    - ``headers``: request headers as sent (name -> value); read as
      ``request.headers.<lowercase name, - as _>``.
    """

    image: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


_FORMAT_NAMES = {"jpg": "jpeg"}


def image_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``image.*`` object rokka documents, from a source image record.

    ``row`` needs ``hash``, ``width``, ``height``, ``format``, ``size``; optional
    ``animated``, ``dynamic_metadata`` (``subject_area``, ``detection_face``) and
    ``user_metadata``. ``detection_face`` (alias ``face_detection``) is the stored box
    around the detected faces, ``{width, height, x, y}`` in display pixels, or null when
    detection did not run or found no face (then ``hasDetectionFace`` is false).
    ``entropy`` is not computed (null).
    """
    dynamic = row.get("dynamic_metadata") or {}
    subject = dynamic.get("subject_area")
    face = _face_box(dynamic.get("detection_face"))
    return {
        "hash": row.get("hash"),
        "width": row.get("width"),
        "height": row.get("height"),
        # rokka's expressions name formats by type ('jpeg', 'gif', ...), not by extension.
        "format": _FORMAT_NAMES.get(row.get("format"), row.get("format")),
        "size": row.get("size"),
        "isAnimated": bool(row.get("animated")),
        "hasSubjectArea": subject is not None,
        "subject_area": dict(subject) if subject is not None else None,
        "hasDetectionFace": face is not None,
        "detection_face": face,
        "face_detection": dict(face) if face is not None else None,
        "entropy": None,
        "meta_user": _user_fields(row.get("user_metadata") or {}),
    }


_BOX_KEYS = ("width", "height", "x", "y")


def _face_box(stored: Any) -> dict[str, Any] | None:
    """``{width, height, x, y}`` of stored ``detection_face`` metadata, or None when it
    holds no box (no face found: ``{"faces": []}``)."""
    if not isinstance(stored, Mapping) or not all(k in stored for k in _BOX_KEYS):
        return None
    return {key: stored[key] for key in _BOX_KEYS}


def _user_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """User metadata by name; a typed field (``int:w``) is also readable as ``w``."""
    out = dict(metadata)
    for key, value in metadata.items():
        _, colon, name = key.partition(":")
        if colon and name not in metadata:
            out[name] = value
    return out


def strip_brackets(text: str) -> str:
    """``"[$w * 2]"`` -> ``"$w * 2"``; other text is returned unchanged."""
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        return stripped[1:-1]
    return text


def is_variable_expression(value: Any) -> bool:
    """A stack variable written as an expression: a string that names a ``$variable`` or
    is wrapped in ``[...]``; any other string is a literal."""
    return type(value) is str and ("$" in value or strip_brackets(value) != value)


def coerce_override(declared: Any, value: Any) -> Any:
    """A URL variable (text from ``v-w-300``) takes the type of the stack's literal:
    ``"300"`` over ``"w": 0`` is the number 300, ``"true"`` over a boolean is true.
    Text that does not convert stays text (arithmetic on it is then a 400)."""
    if type(value) is not str or isinstance(declared, str) or declared is None:
        return value
    if isinstance(declared, bool):
        return {"true": True, "false": False, "1": True, "0": False}.get(value, value)
    number = numeric_string(value)
    return value if number is None else number


class Variables:
    """Stack variables of one render: definitions (literals or expressions), resolved lazily.

    ``definitions``: name -> ``(is_expression, value)``.
    """

    def __init__(self, definitions: Mapping[str, tuple[bool, Any]]) -> None:
        self.definitions = dict(definitions)
        self.values: dict[str, Any] = {}
        self._resolving: list[str] = []
        self.scope: Scope | None = None

    def override(self, overrides: Mapping[str, Any]) -> None:
        """Stack-expression overrides: replace definitions, forget every computed value."""
        for name, value in overrides.items():
            self.definitions[name] = (is_variable_expression(value), value)
        self.values.clear()

    def known(self) -> dict[str, Any]:
        """Every literal variable, and each expression variable that was evaluated."""
        out = {name: raw for name, (is_expr, raw) in self.definitions.items() if not is_expr}
        out.update(self.values)
        return out

    def get(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        definition = self.definitions.get(name)
        if definition is None:
            raise StackError(f"undefined variable ${name}", parameter=name)
        is_expression, raw = definition
        if not is_expression:
            self.values[name] = raw
            return raw
        if name in self._resolving:
            chain = " -> ".join(f"${n}" for n in [*self._resolving, name])
            raise StackError(f"variable ${name} refers to itself ({chain})", parameter=name)
        if len(self._resolving) >= MAX_VARIABLE_DEPTH:
            raise StackError(
                f"variable ${name}: variables refer to variables more than "
                f"{MAX_VARIABLE_DEPTH} levels deep",
                parameter=name,
            )
        assert self.scope is not None
        self._resolving.append(name)
        try:
            value = evaluate(strip_brackets(raw), self.scope)
        finally:
            self._resolving.pop()
        self.values[name] = value
        return value


def new_scope(
    context: RenderContext, options: Mapping[str, Any], variables: Variables
) -> tuple[Scope, HeaderView]:
    """The scope all expressions of one render share (one budget)."""
    headers = HeaderView(context.headers)
    scope = Scope(
        roots={"image": context.image, "request": {"headers": headers}, "options": options},
        variable=variables.get,
        budget=Budget(MAX_RENDER_STEPS),
    )
    variables.scope = scope
    return scope, headers
