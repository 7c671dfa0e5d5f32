"""Sizes a plan produces, from geometry alone, before any pixel exists.

Each operation's size rule is part of its kind (engine/operations); the cost model
(engine/cost.py) and the output check read these predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from engine.geometry import Size
from engine.operations import KINDS
from engine.operations.kind import Sizing, same_size

if TYPE_CHECKING:
    from stacks.plan import RenderPlan


def step_sizes(
    plan: RenderPlan, source: Size, images: Mapping[str, Size] | None = None
) -> list[tuple[str, Size]]:
    """``(operation name, size it produces)`` for every enabled operation of ``plan``, in order,
    for a ``source`` of that display size (pixels); ``images`` are the display sizes of the
    images the plan references by hash (a composition's size depends on its overlay's).

    Exact for resize, rotate, autorotate, absolute/ratio crops and every non-geometric op.
    Ops whose result depends on pixels or areas (trim, crop modes box/area, crop areas)
    never enlarge the image, so for those the current size is used as an upper bound:
    good enough to refuse oversized images before any pixel is decoded. An operation the
    engine does not render keeps the size (rendering it is refused elsewhere).
    """
    sizing = Sizing(dpr=float(plan.options.get("dpr") or 1.0), images=dict(images or {}))
    size = source
    steps: list[tuple[str, Size]] = []
    for op in plan.operations:
        if not op.enabled:
            continue
        kind = KINDS.get(op.name)
        size = (kind.size if kind else same_size)(size, op.options, sizing)
        if kind and kind.resizes:
            sizing = replace(sizing, resized=True)
        steps.append((op.name, size))
    return steps


def output_size(plan: RenderPlan, source: Size, images: Mapping[str, Size] | None = None) -> Size:
    """Size of the rendered image for ``source`` (display size); see :func:`step_sizes`."""
    steps = step_sizes(plan, source, images)
    return steps[-1][1] if steps else source
