"""cropstack's pixel pipeline. The web layer uses only the names exported here.

Call :func:`configure` once per process (after fork) before anything else.
"""

import os

# One render runs on one core (render processes are single-job; libvips' own threads are
# set by configure): numpy's BLAS threads (matrix products of primitive's search) would only
# contend for the cores, measured 10x slower on a busy machine. Read by OpenBLAS when numpy
# is first imported, which the imports below do.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from engine.conversion import converts  # noqa: E402
from engine.cost import Budget, Cost
from engine.errors import (
    EngineError,
    FormatUnavailable,
    OverBudget,
    RenderCrashed,
    RenderFailed,
    RenderTimeout,
    TooManyPixels,
    UnsupportedFont,
    UnsupportedImage,
    UnsupportedOperation,
)
from engine.fonts import FONT_FORMATS, font_format
from engine.formats import FORMATS, alpha_fallback, available, negotiate, sniff
from engine.geometry import Size
from engine.pipeline import Rendered, plan_cost, render
from engine.probe import (
    ImageInfo,
    check_decodable,
    configure,
    header_in_head,
    header_in_prefix,
    header_is_cheap,
    inspect,
    is_svg,
    probe,
    recognised,
    refused_kind,
)
from engine.resources import IMAGE_FORMATS, Resource, SecondaryRender, secondary_render_key
from engine.sizing import output_size

__all__ = [
    "Budget",
    "Cost",
    "FONT_FORMATS",
    "FORMATS",
    "IMAGE_FORMATS",
    "Resource",
    "SecondaryRender",
    "secondary_render_key",
    "EngineError",
    "FormatUnavailable",
    "ImageInfo",
    "OverBudget",
    "RenderCrashed",
    "RenderTimeout",
    "RenderFailed",
    "Rendered",
    "Size",
    "TooManyPixels",
    "UnsupportedFont",
    "UnsupportedImage",
    "UnsupportedOperation",
    "alpha_fallback",
    "available",
    "check_decodable",
    "plan_cost",
    "configure",
    "converts",
    "font_format",
    "inspect",
    "negotiate",
    "sniff",
    "output_size",
    "header_in_head",
    "header_in_prefix",
    "header_is_cheap",
    "is_svg",
    "probe",
    "recognised",
    "refused_kind",
    "render",
]
