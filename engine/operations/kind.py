"""What the engine knows about one operation, in one record: how it renders, how big its
result is, and roughly what it costs.

Each operation module declares its :class:`OperationKind`; engine/operations/__init__.py
collects them into ``KINDS``, which the pipeline, the size prediction (engine/sizing.py)
and the cost model (engine/cost.py) all read. The parameters and their defaults live in
stacks/operations.py; tests/engine/test_registry.py proves both name the same operations.

Areas move inside ``apply`` (through ``RenderContext.move_areas``), next to the pixel
step that moves them, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, TypeVar

import pyvips

from engine.geometry import Size
from engine.operations.context import RenderContext

Apply = Callable[[pyvips.Image, Mapping[str, Any], RenderContext], pyvips.Image]
"""``apply(image, options, ctx) -> image``; ``options`` has every parameter with its
default filled (stacks/plan.py), ``enabled`` split off."""


@dataclass(frozen=True, slots=True)
class Sizing:
    """Geometric state while predicting sizes: the stack's ``dpr`` (1-10), whether a
    resize already ran (after one, pixel-valued options are multiplied by ``dpr``) and the
    display sizes of the images the plan references by hash (engine/resources.py)."""

    dpr: float = 1.0
    resized: bool = False
    images: Mapping[str, Size] = field(default_factory=lambda: MappingProxyType({}))


SizeRule = Callable[[Size, Mapping[str, Any], Sizing], Size]
"""``size(before, options, sizing) -> after`` in pixels, from geometry alone. Exact where
the result does not depend on pixels; otherwise an upper bound (such steps never enlarge)."""

PassRule = Callable[[Mapping[str, Any], Size, Size], float]
"""``passes(options, before, after) -> work`` in megapixel passes (engine/cost.py)."""

ShrinkRule = Callable[
    [Size, Mapping[str, Any], RenderContext, Callable[[Size, RenderContext], float | None]],
    float | None,
]
"""``decode_shrink(before, options, ctx, rest) -> ratio``: how many times smaller per side
the image this operation receives may be decoded without changing the render (1 = full
size; below 1 a vector source may be rasterised larger; None = no say, decode at full
size). ``before`` is the full-size geometry in pixels; ``rest(size, ctx)`` is what the
operations after this one allow for an image of ``size``, this operation's result, with
``ctx`` as it is after this operation (areas moved); ``ctx`` itself must not be changed
(engine/shrink.py). An operation with this rule also
renders a shrunk image correctly: it reads the full-size geometry from
``RenderContext.full_size`` (see engine/operations/context.py)."""


SourceRule = Callable[[bytes, Mapping[str, Any]], bytes]
"""``edit_source(source, options) -> source``: changes the source file itself before it is
decoded (svgdynamic); raises an EngineError (400) when it cannot."""


P = TypeVar("P")


def parameters(cls: type[P], options: Mapping[str, Any]) -> P:
    """The typed, frozen parameters ``cls`` (a dataclass without defaults) of one operation,
    read from its options. stacks/operations.py declares every default and fills it in
    (stacks/resolve.py), so a missing key is a bug and raises ``KeyError``."""
    return cls(**{f.name: options[f.name] for f in fields(cls)})  # type: ignore[arg-type]


def same_size(before: Size, options: Mapping[str, Any], sizing: Sizing) -> Size:
    """The size rule of operations that keep the image size (colour, filters, masks)."""
    return before


def one_pass(options: Mapping[str, Any], before: Size, after: Size) -> float:
    """The cost rule of point operations: one pass over the larger of input and output."""
    return megapixels(max(before, after, key=lambda s: s.pixels))


def megapixels(size: Size) -> float:
    """``size`` in megapixels."""
    return size.pixels / 1_000_000


@dataclass(frozen=True, slots=True)
class OperationKind:
    """One rokka operation as the engine renders it.

    ``parameters`` is the frozen dataclass ``apply`` reads its options through (None for
    operations without parameters); its fields are the parameters stacks declares.
    ``resizes`` marks the operation after which pixel-valued options are dpr-scaled.
    ``decode_shrink`` (None: the decoder must not shrink before it) lets the load step
    decode the source smaller; only the decode's size is decided there, the operations
    themselves all run. ``edit_source`` changes the source file before anything is
    decoded (the pipeline then reads the edited file's header and checks the budgets).
    """

    name: str
    apply: Apply
    parameters: type | None = None
    size: SizeRule = same_size
    passes: PassRule = one_pass
    resizes: bool = False
    decode_shrink: ShrinkRule | None = None
    edit_source: SourceRule | None = None
