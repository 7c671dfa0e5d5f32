"""rokka ``svgdynamic``: change attributes of elements, by id, of an SVG source before it is
rasterised (a colour, a stroke width, a size from stack variables).

The changes apply to the source file, not to pixels: the load step calls :func:`edit` for
every ``svgdynamic`` of the plan, wherever it stands, before anything is decoded; the
pixel step itself leaves the image as it is. The edited SVG is then identified and checked
against the render budgets like any source (a change of ``width`` changes what is decoded).

Safety: the document is parsed by defusedxml (entity declarations and external references
refused, so no "billion laughs" and no file reads), only sources up to
:data:`MAX_SOURCE_BYTES` are parsed, and the changes are bounded by stacks (at most 100,
each value at most 1000 characters). Attribute names are plain XML names, optionally with
the ``xlink:`` or ``xml:`` prefix. An id no element has changes nothing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as StdElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.parsers.expat import ExpatError

import pyvips
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from engine.errors import UnsupportedOperation
from engine.geometry import Size
from engine.operations.context import RenderContext
from engine.operations.kind import OperationKind, parameters
from engine.probe import is_svg

# Largest SVG source svgdynamic parses, bytes (uploads are limited to 5 MB by default).
MAX_SOURCE_BYTES = 8 * 1024 * 1024

_NAMESPACES = {
    "svg": "http://www.w3.org/2000/svg",
    "xlink": "http://www.w3.org/1999/xlink",
    "xml": "http://www.w3.org/XML/1998/namespace",
}
_ATTRIBUTE = re.compile(r"(?:(xlink|xml):)?([A-Za-z_][A-Za-z0-9._-]*)")

# Serialise SVG elements without a prefix and xlink with its usual one (process-wide
# ElementTree state; these are the names every SVG tool uses).
StdElementTree.register_namespace("", _NAMESPACES["svg"])
StdElementTree.register_namespace("xlink", _NAMESPACES["xlink"])


@dataclass(frozen=True, slots=True)
class SvgDynamicParameters:
    """``changes``: a list (at most 100) of ``{"id", "attr", "value"}`` texts, applied in
    order (a later change of the same attribute wins)."""

    changes: Sequence[Mapping[str, str]]


def _attribute_key(name: str) -> str:
    """ElementTree's key for the attribute ``name``; UnsupportedOperation (400) if invalid."""
    match = _ATTRIBUTE.fullmatch(name)
    if match is None or name.lower().startswith("xmlns"):
        raise UnsupportedOperation(
            f"operation svgdynamic: {name[:40]!r} is not an attribute name it can change"
        )
    prefix, local = match.groups()
    return f"{{{_NAMESPACES[prefix]}}}{local}" if prefix else local


def edit(source: bytes, options: Mapping[str, Any]) -> bytes:
    """The SVG ``source`` with this operation's changes applied.

    Raises UnsupportedOperation (400) when the source is not an SVG, is larger than
    :data:`MAX_SOURCE_BYTES`, cannot be parsed safely, or a change names an invalid attribute.
    """
    changes = parameters(SvgDynamicParameters, options).changes
    keys = [_attribute_key(change["attr"]) for change in changes]
    if not is_svg(source):
        raise UnsupportedOperation("operation svgdynamic needs an SVG source image")
    if len(source) > MAX_SOURCE_BYTES:
        raise UnsupportedOperation(
            f"operation svgdynamic: the SVG source is larger than {MAX_SOURCE_BYTES} bytes"
        )
    try:
        root = fromstring(source, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise UnsupportedOperation(
            f"operation svgdynamic: the SVG source cannot be parsed safely ({type(exc).__name__})"
        ) from exc
    except (ExpatError, StdElementTree.ParseError, ValueError) as exc:
        raise UnsupportedOperation(
            "operation svgdynamic: the SVG source is not well-formed XML"
        ) from exc
    by_id: dict[str, list[StdElementTree.Element]] = {}
    for element in root.iter():
        element_id = element.get("id")
        if element_id is not None:
            by_id.setdefault(element_id, []).append(element)
    for change, key in zip(changes, keys, strict=True):
        for element in by_id.get(change["id"], ()):
            element.set(key, change["value"])
    return StdElementTree.tostring(root, encoding="utf-8")


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    # The changes were made to the source before it was decoded (see edit).
    return image


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    return 0.0


KIND = OperationKind("svgdynamic", apply, SvgDynamicParameters, passes=passes, edit_source=edit)
