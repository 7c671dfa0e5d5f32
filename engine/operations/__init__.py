"""The engine's registry of operations: rokka operation name -> :class:`OperationKind`.

Every operation has its own module here, declaring its ``KIND`` (apply, size rule, cost rule);
this is the one place they are collected. The pipeline, engine/sizing.py and engine/cost.py
read only ``KINDS``; the parameters live in stacks/operations.py, and
tests/engine/test_registry.py checks that both registries name the same operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from engine.operations import (
    alpha,
    autorotate,
    blur,
    circlemask,
    composition,
    crop,
    dropshadow,
    face,
    glitch,
    grayscale,
    modulate,
    multiply,
    noop,
    primitive,
    resize,
    rotate,
    sepia,
    sharpen,
    svg2bitmap,
    svgdynamic,
    text,
    trim,
)
from engine.operations.context import RenderContext
from engine.operations.kind import Apply, OperationKind, Sizing

# One module per operation, each declaring its KIND.
_ALL: tuple[OperationKind, ...] = tuple(
    module.KIND
    for module in (
        resize,
        crop,
        rotate,
        autorotate,
        trim,
        blur,
        sharpen,
        grayscale,
        sepia,
        modulate,
        multiply,
        alpha,
        circlemask,
        text,
        noop,
        glitch,
        primitive,
        svgdynamic,
        svg2bitmap,
        composition,
        dropshadow,
        face,
    )
)

KINDS: Mapping[str, OperationKind] = MappingProxyType({kind.name: kind for kind in _ALL})

__all__ = ["KINDS", "Apply", "OperationKind", "RenderContext", "Sizing"]
