"""The engine's registry of operations: rokka operation name -> :class:`OperationKind`.

Every module of this package declares the kinds it renders (apply, size rule, cost rule);
this is the one place they are collected. The pipeline, engine/sizing.py and engine/cost.py
read only ``KINDS``; the parameters live in stacks/operations.py, and
tests/engine/test_registry.py checks that both registries name the same operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pyvips

from engine.operations import alpha, colour, crop, filters, resize, rotation, trim
from engine.operations.context import RenderContext
from engine.operations.kind import Apply, OperationKind, Sizing


def noop(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    """Deprecated by rokka; returns the image unchanged."""
    return image


_ALL: tuple[OperationKind, ...] = (
    resize.KIND,
    crop.KIND,
    rotation.ROTATE,
    rotation.AUTOROTATE,
    trim.KIND,
    filters.BLUR,
    filters.SHARPEN,
    colour.GRAYSCALE,
    colour.SEPIA,
    colour.MODULATE,
    colour.MULTIPLY,
    alpha.ALPHA,
    alpha.CIRCLEMASK,
    OperationKind("noop", noop),
)

KINDS: Mapping[str, OperationKind] = MappingProxyType({kind.name: kind for kind in _ALL})

__all__ = ["KINDS", "Apply", "OperationKind", "RenderContext", "Sizing"]
