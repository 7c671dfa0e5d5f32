"""What an uploaded file is: the web layer's adapter over ``engine.probe``.

The engine does the work (buffers only, untrusted loaders blocked, an allow-list of
loaders, the pixel cap checked from the header before any decoding, then a full decode
with ``fail_on="error"``); this module applies the configured limits, runs it inside a
render slot (a 24 MP decode costs as much as a render) and turns engine errors into
``ApiError`` so callers handle one exception type.
"""

from __future__ import annotations

from engine import EngineError, ImageInfo
from webapp import renderer
from webapp.errors import ApiError
from webapp.settings import Settings
from webapp.uploadspool import Spool

__all__ = ["ImageInfo", "inspect", "optimise"]


def inspect(data: bytes | Spool, settings: Settings) -> ImageInfo:
    """Identify and fully validate ``data`` (bytes, or the spool an upload was received
    into); a 4xx ``ApiError`` (422) if it is no usable image.

    Refuses empty files, non-images, loaders outside the allow-list, broken or truncated
    files, more than ``settings.max_source_frames`` frames and more than
    ``settings.max_source_pixels`` pixels (width x height x frames, from the header).
    """
    try:
        return renderer.probe(settings, data)
    except EngineError as exc:
        raise ApiError(exc.status, exc.message) from exc


def optimise(
    data: bytes, info: ImageInfo, target: str, settings: Settings
) -> tuple[bytes, ImageInfo]:
    """``optimize_source``: TIFF and PSD ``data`` converted to ``target`` (``png``/``jpg``)
    in a render process; other formats unchanged. 4xx ``ApiError`` past the budgets."""
    try:
        return renderer.optimise(settings, data, info, target)
    except EngineError as exc:
        raise ApiError(exc.status, exc.message) from exc
