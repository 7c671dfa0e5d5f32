"""Sources a render reads besides its primary image: the hashes an operation names in its
options (composition ``secondary_image``, text ``font``), found by the web layer in the
same organization (stacks.plan.RenderPlan.source_references) and handed to the engine.

An image resource carries its stored header (display size, format) and dynamic metadata
(subject area, ...), so its decode is budgeted like the primary's before any pixel exists
(engine/cost.py); a file resource (a font) is bytes only and never decoded as an image.
Across the pipe to a render process the bytes travel as frames of their own
(:func:`split` / :func:`join`), like the primary's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from engine import foreign
from engine.geometry import Size
from engine.probe import LOADERS, ImageInfo

if TYPE_CHECKING:
    from stacks.plan import RenderPlan

# The formats a referenced image may have: those the engine decodes (HEIF is heic or avif;
# JPEG XL, PDF and PSD through engine/foreign.py).
IMAGE_FORMATS = frozenset({ext for ext, _ in LOADERS.values()} | {"avif"} | foreign.SOURCES)


@dataclass(frozen=True, slots=True)
class Resource:
    """One referenced source: its original ``data``; for an image, its ``info`` (display
    size in pixels, format; one frame) and ``dynamic_metadata`` (rokka areas, in display
    coordinates). ``info`` is None for a file used as bytes (a font)."""

    data: bytes
    info: ImageInfo | None = None
    dynamic_metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ResourceImage:
    """What an operation knows of a referenced image before decoding it."""

    info: ImageInfo
    dynamic_metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SecondaryRender:
    """A stored stack an operation renders its secondary through (composition
    ``secondary_stack``): the stack's validated ``plan`` and the resource key of the image
    it renders (``source``; None for the render's own source image). The web layer builds
    it; the engine renders it to pixels, in the same process and budget, when asked.
    ``stack`` is the stored stack's name; ``cache`` is composition's ``cache`` option: the
    web layer then renders it once into the render cache and hands the output over as an
    image resource under the same key (webapp/secondarycache.py) instead."""

    plan: RenderPlan
    source: str | None = None
    stack: str = ""
    cache: bool = False


def secondary_render_key(stack: str, variables: str | None, image: str | None) -> str:
    """The key a :class:`SecondaryRender` is found under, from the options that name it:
    the stack, its variables (query text) and the image it renders (None: the source)."""
    return f"{stack}?{variables or ''}#{image or ''}"


def image_infos(resources: Mapping[str, Resource]) -> dict[str, ImageInfo]:
    """Key -> stored header of the image resources (files left out)."""
    return {key: r.info for key, r in resources.items() if r.info is not None}


def image_sizes(resources: Mapping[str, Resource]) -> dict[str, Size]:
    """Key -> display size (pixels) of the image resources."""
    return {key: info.size for key, info in image_infos(resources).items()}


def split(resources: Mapping[str, Resource]) -> tuple[dict[str, Resource], list[bytes]]:
    """The resources without their bytes (pickled with the job) and the bytes, in the same
    order (sent as frames of their own, never copied by pickle)."""
    keys = list(resources)
    return {k: replace(resources[k], data=b"") for k in keys}, [resources[k].data for k in keys]


def join(described: Mapping[str, Resource], blobs: Sequence[bytes]) -> dict[str, Resource]:
    """The inverse of :func:`split`."""
    if len(described) != len(blobs):
        raise ValueError("resource frames do not match their descriptions")
    return {k: replace(r, data=blob) for (k, r), blob in zip(described.items(), blobs, strict=True)}
