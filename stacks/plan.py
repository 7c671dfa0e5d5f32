"""The render plan: the only object that crosses from ``stacks`` to ``engine``.

A plan is built (and fully validated) by ``stacks`` from a stored stack plus render-URL
overrides; ``engine`` turns it into pixels without re-validating anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from stacks.operations import OPERATIONS
from stacks.values import Kind

# ``$name`` inside an expression value (rokka writes ``[$width * 2]``).
_VARIABLE_REFERENCE = re.compile(r"\$([A-Za-z0-9_]+)")


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, slots=True)
class Operation:
    """One validated operation of a stack.

    ``name`` is a key of the operation table in ``stacks.operations``. ``options`` holds
    every parameter the operation declares, validated and with defaults filled in; an
    optional parameter that was not given and has no default is present with value ``None``.
    ``enabled`` is False when the stack switched the operation off; engine skips it.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    enabled: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen(self.options))


@dataclass(frozen=True, slots=True)
class SourceReference:
    """A source of the organization that an enabled operation names by hash.

    ``hash`` is the value as written in the options (a full hash, a short hash or a prefix);
    the engine finds its bytes under that key (``RenderContext.resources``). ``image`` is
    True when the operation decodes it as an image (its cost and decode checks count in the
    render's budget), False for files handed over as bytes (fonts). ``operation`` and
    ``parameter`` say where it was named, for error messages.
    """

    hash: str
    image: bool
    operation: str
    parameter: str


@dataclass(frozen=True, slots=True)
class RenderPlan:
    """Everything needed to render one output, independent of the source image.

    - ``operations``: in execution order (a basestack's operations come first).
    - ``options``: every stack option with defaults filled in (keys as rokka spells them,
      e.g. ``"jpg.quality"``, ``"dpr"``, ``"autoformat"``).
    - ``variables``: the literal variables and the expression variables that were
      evaluated, after URL and stack-expression overrides.
    - ``output_format``: the extension to encode to (``jpg``, ``png``, ``webp``, ...),
      after any format negotiation.
    - ``request_headers``: names (``save_data``) of the request headers the expressions
      read; the answer must carry ``Vary`` for them.
    """

    operations: tuple[Operation, ...]
    options: Mapping[str, Any]
    output_format: str
    variables: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    request_headers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", tuple(self.operations))
        object.__setattr__(self, "request_headers", tuple(self.request_headers))
        object.__setattr__(self, "options", _frozen(self.options))
        object.__setattr__(self, "variables", _frozen(self.variables))

    def referenced_variables(self) -> frozenset[str]:
        """Names of the variables that some operation parameter or option refers to.

        ``stacks.resolve`` evaluates every expression before a plan exists, so in a built
        plan this is empty: variables shape the output only through the values they
        produced, which ``canonical`` holds. (A plan made by hand with ``$name`` text keeps
        the referenced variables in its identity.)
        """
        names: set[str] = set()
        for value in self._values():
            if isinstance(value, str):
                names.update(_VARIABLE_REFERENCE.findall(value))
        return frozenset(names & set(self.variables))

    def source_references(self) -> tuple[SourceReference, ...]:
        """Every source an enabled operation names by hash (parameters of kind
        ``Kind.IMAGE_HASH`` / ``Kind.FILE_HASH``), first mention first, each hash once per
        use (a hash used as image and as file appears twice)."""
        found: dict[tuple[str, bool], SourceReference] = {}
        for op in self.operations:
            spec = OPERATIONS.get(op.name)
            if not op.enabled or spec is None:
                continue
            for param in spec.params:
                value = op.options.get(param.name)
                if param.kind.is_hash and isinstance(value, str):
                    image = param.kind is Kind.IMAGE_HASH
                    ref = SourceReference(value, image, op.name, param.name)
                    found.setdefault((value, image), ref)
        return tuple(found.values())

    def _values(self) -> Iterator[Any]:
        for op in self.operations:
            yield from op.options.values()
        yield from self.options.values()

    def canonical(self) -> str:
        """A deterministic text form of everything that shapes the output: operations,
        options, format and the *referenced* variables (``referenced_variables``).

        It is the render-cache key and the ETag source, so unused variables in a URL
        neither multiply cache entries nor change the ETag.
        """
        used = self.referenced_variables()
        return json.dumps(
            {
                "operations": [
                    {"name": op.name, "options": dict(op.options), "enabled": op.enabled}
                    for op in self.operations
                ],
                "options": dict(self.options),
                "variables": {k: v for k, v in self.variables.items() if k in used},
                "format": self.output_format,
            },
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
