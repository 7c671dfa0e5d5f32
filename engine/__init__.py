"""cropstack's pixel pipeline. The web layer uses only the names exported here.

Call :func:`configure` once per process (after fork) before anything else.
"""

from engine.errors import (
    EngineError,
    FormatUnavailable,
    OutputTooLarge,
    RenderFailed,
    TooManyPixels,
    UnsupportedImage,
    UnsupportedOperation,
)
from engine.formats import FORMATS, available, negotiate
from engine.geometry import Size, output_size
from engine.pipeline import Rendered, check_output_size, render
from engine.probe import ImageInfo, configure, inspect, probe

__all__ = [
    "FORMATS",
    "EngineError",
    "FormatUnavailable",
    "ImageInfo",
    "OutputTooLarge",
    "RenderFailed",
    "Rendered",
    "Size",
    "TooManyPixels",
    "UnsupportedImage",
    "UnsupportedOperation",
    "available",
    "check_output_size",
    "configure",
    "inspect",
    "negotiate",
    "output_size",
    "probe",
    "render",
]
