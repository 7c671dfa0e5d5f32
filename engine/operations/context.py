"""State shared by the operations of one render."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pyvips

from engine.geometry import Areas, Box, Size

if TYPE_CHECKING:
    from engine.resources import ResourceImage


@dataclass(slots=True)
class RenderContext:
    """Mutable per-render state; operations update it as they change the geometry.

    ``areas`` are in the coordinates of the current image. ``dpr`` (1-10) multiplies resize
    targets; once a resize ran (``resized``), pixel-valued options of later operations
    (crop width/height and pixel anchors) are multiplied by ``dpr`` too.

    ``full_size`` is set while the pixels are a shrunk decode: the size (pixels) the current
    image has at full decode, in which every geometric decision and the areas are made.
    Only operations with a ``decode_shrink`` rule ever see it set; a resize clears it.

    ``resources`` holds the original bytes of every source the plan names by hash (key: the
    hash as written in the options; engine/resources.py); ``resource_images`` the stored
    header and areas of those used as images. ``memo`` keeps work derived from them (a
    decoded, resized overlay) for the other frames of an animation; frames share it.
    """

    areas: Areas
    dpr: float = 1.0
    resized: bool = False
    resources: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))
    resource_images: Mapping[str, ResourceImage] = field(
        default_factory=lambda: MappingProxyType({})
    )
    memo: dict[Any, Any] = field(default_factory=dict)
    # secondary_render_key -> renders that stored stack's secondary (engine/pipeline.py)
    renders: Mapping[str, Callable[[], tuple[pyvips.Image, Areas]]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    full_size: Size | None = None
    # libvips kernel of ``resize``: Lanczos 3, or "linear" for frames that are palette-mapped
    # next (engine/pipeline.py `_run_frames`).
    kernel: str = "lanczos3"

    def geometry(self, image: pyvips.Image) -> Size:
        """The size (pixels) geometric decisions about ``image`` are made in."""
        return self.full_size or size_of(image)

    def move_areas(self, transform: Callable[[Box], Box | None]) -> None:
        """Carry every area through one geometric step."""
        self.areas = self.areas.map(transform)

    def pixels(self, value: float) -> float:
        """A pixel-valued option of the current operation, dpr-scaled after a resize."""
        return value * self.dpr if self.resized else value


def size_of(image: pyvips.Image) -> Size:
    return Size(image.width, image.height)


def split_alpha(image: pyvips.Image) -> tuple[pyvips.Image, pyvips.Image | None]:
    """Colour bands and the alpha band (None when the image has no alpha)."""
    if image.hasalpha():
        return image[: image.bands - 1], image[image.bands - 1]
    return image, None


def join_alpha(colour: pyvips.Image, alpha: pyvips.Image | None) -> pyvips.Image:
    return colour if alpha is None else colour.bandjoin(alpha)


def to_srgb(image: pyvips.Image) -> pyvips.Image:
    """Colour bands as 8-bit sRGB (grey becomes 3 bands); alpha kept."""
    colour, alpha = split_alpha(image)
    if colour.interpretation != "srgb" or colour.bands != 3:
        colour = colour.colourspace("srgb")
    if alpha is not None and alpha.format != colour.format:
        alpha = alpha.cast(colour.format)
    return join_alpha(colour.cast("uchar") if colour.format != "uchar" else colour, alpha)
