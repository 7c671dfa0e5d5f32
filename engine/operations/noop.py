"""rokka ``noop``: deprecated by rokka; returns the image unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyvips

from engine.operations.context import RenderContext
from engine.operations.kind import OperationKind


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    return image


KIND = OperationKind("noop", apply)
