"""The web layer's handle on the engine: budgets, lanes and the render processes.

Renders and upload checks never run pixels in the web worker: the plan's cost is decided
here from geometry (400 past a budget, before the original is even read), the job goes to
the cheap or the expensive lane by its estimated work, and a render process runs it under
the deadline (webapp/renderpool.py). The web worker itself only reads image headers, with
libvips configured once per process after any fork (``ensure_engine``).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import engine
from engine.cost import probe_work, unpredictable
from engine.faces import DETECT_SIDE, Face, cascade_work
from engine.resources import split
from stacks.plan import RenderPlan, SourceReference
from stacks.resolve import build_plan
from stacks.url import parse_render_path
from webapp.errors import ApiError
from webapp.renderpool import pool_for
from webapp.settings import Settings
from webapp.uploadspool import Spool

_lock = threading.Lock()
_configured_pid: int | None = None


def ensure_engine(settings: Settings) -> None:
    """Configure libvips for this process once (cache off, concurrency, loaders)."""
    global _configured_pid
    if _configured_pid == os.getpid():
        return
    with _lock:
        if _configured_pid == os.getpid():
            return
        engine.configure(concurrency=max(1, settings.vips_concurrency))
        _configured_pid = os.getpid()


def budget(settings: Settings) -> engine.Budget:
    """The render budget the settings declare (docs/security.md)."""
    return engine.Budget(
        max_pixels=settings.max_render_pixels,
        max_animation_pixels=settings.max_animation_pixels,
        max_side=settings.max_output_side,
        max_work=settings.max_render_work,
    )


def _lane(
    settings: Settings,
    work: float,
    info: engine.ImageInfo,
    others: Mapping[str, engine.ImageInfo] | None = None,
) -> str:
    expensive = work > settings.expensive_render_work or any(
        unpredictable(i) for i in (info, *(others or {}).values())
    )
    return "expensive" if expensive else "cheap"


@dataclass(frozen=True, slots=True)
class Sources:
    """How a render finds the other sources its plan names by hash (composition
    ``secondary_image``, text ``font``): ``find(hash)`` is the catalog row of that hash or
    short hash *in the render's organization* (None when there is none), ``read(row)`` the
    verified original bytes of a row."""

    find: Callable[[str], Mapping[str, Any] | None]
    read: Callable[[Mapping[str, Any]], bytes]


# At most this many distinct other sources in one render (watermarks, fonts, secondary
# stack images): each is a catalog lookup, a blob read and a frame to the render process.
MAX_REFERENCED_SOURCES = 10


def check_referenced(settings: Settings, rows: list[Mapping[str, Any]]) -> None:
    """400 when a render would read more than :data:`MAX_REFERENCED_SOURCES` other sources
    or more original bytes than one upload may bring (``max_upload_bytes``, all of them
    together): the pixel budgets bound their decodes, this bounds the bytes read before."""
    distinct = {row["hash"]: int(row["size"] or 0) for row in rows}
    if len(distinct) > MAX_REFERENCED_SOURCES:
        raise ApiError(
            400,
            f"a render may read at most {MAX_REFERENCED_SOURCES} other source images "
            f"(this one names {len(distinct)})",
        )
    total = sum(distinct.values())
    if total > settings.max_upload_bytes:
        raise ApiError(
            400,
            f"the source images this render names are too large together ({total} bytes; "
            f"at most {settings.max_upload_bytes})",
        )


def referenced(
    plan: RenderPlan, sources: Sources | None
) -> list[tuple[SourceReference, Mapping[str, Any]]]:
    """Every source ``plan`` names, with its catalog row.

    Raises ApiError 404 when a hash is not an image of the organization (a hash of another
    organization is not found either), 400 when an image is asked for and the source is
    not one the engine decodes (a font), or a font is asked for and the source is none.
    """
    found = []
    for ref in plan.source_references():
        row = sources.find(ref.hash) if sources is not None else None
        if row is None:
            raise ApiError(
                404,
                f"operation {ref.operation}: {ref.parameter} {ref.hash} is not an image of "
                "this organization",
            )
        if ref.image and row["format"] not in engine.IMAGE_FORMATS:
            raise ApiError(
                400,
                f"operation {ref.operation}: {ref.parameter} {ref.hash} is a "
                f"{row['format']} file, not an image",
            )
        # Files handed over as bytes are fonts (text ``font``), the only kind there is.
        if not ref.image and row["format"] not in engine.FONT_FORMATS:
            raise ApiError(
                400,
                f"operation {ref.operation}: {ref.parameter} {ref.hash} is a "
                f"{row['format']} image, not a TTF/OTF font",
            )
        found.append((ref, row))
    return found


def _referenced_image(row: Mapping[str, Any]) -> engine.ImageInfo:
    # A referenced image is used as a still: only its first frame is decoded.
    return replace(stored_info(row), animated=False, n_pages=1)


def header(settings: Settings, source: bytes) -> engine.ImageInfo:
    """What ``source`` is, from its header only (no pixel decoded), with the source limits."""
    ensure_engine(settings)
    return engine.inspect(
        source, max_pixels=settings.max_source_pixels, max_frames=settings.max_source_frames
    )


def stored_info(image: Mapping[str, Any]) -> engine.ImageInfo:
    """A still image's ImageInfo from its catalog row (display size, format, alpha).

    Animated images need their frame count: read it with :func:`header` instead.
    """
    return engine.ImageInfo(
        width=image["width"],
        height=image["height"],
        format=image["format"],
        mimetype=image["mimetype"],
        animated=bool(image["animated"]),
        n_pages=1,
        opaque=bool(image["opaque"]),
        orientation=1,
    )


def plan_cost(settings: Settings, plan: RenderPlan, info: engine.ImageInfo) -> engine.Cost:
    """The checked cost of ``plan`` on ``info``; ``OverBudget`` (400) past any budget."""
    return engine.plan_cost(plan, info, budget(settings), avif_effort=settings.avif_effort)


def render(
    settings: Settings,
    plan: RenderPlan,
    source: bytes | Callable[[], bytes],
    *,
    info: engine.ImageInfo,
    cost: engine.Cost,
    dynamic_metadata: Mapping[str, Any] | None,
    resources: Mapping[str, engine.Resource] | None = None,
    renders: Mapping[str, engine.SecondaryRender] | None = None,
    source_key: str | None = None,
    source_file: tuple[str, str] | None = None,
) -> engine.Rendered:
    """Render in a render process of the lane ``cost`` and ``info`` (the source) call for,
    under the deadline; the render process reads the header again itself. ``resources``
    are the sources the plan names by hash (their bytes travel as frames of their own),
    ``renders`` the secondary stacks it renders through. ``source_key`` (the source's
    blob key, the SHA-256 of its bytes) lets every render process keep and share its
    decode; ``source`` may then be a function that reads the bytes only when no kept
    decode serves the render (webapp/renderpool.py). ``source_file`` (the source's blob
    file and key, ``BlobStore.file_of``) lets the render process read the bytes itself;
    ``source`` is then called only when that file did not serve.

    Raises ``Busy`` (503) when not admitted, RenderTimeout/RenderCrashed (503), or the
    engine error of the render.
    """
    described, blobs = split(resources or {})
    others = {key: r.info for key, r in described.items() if r.info is not None}
    return pool_for(settings).run(
        _lane(settings, cost.work, info, others),
        "render",
        source,
        {
            "plan": plan,
            "dynamic_metadata": dynamic_metadata,
            "budget": budget(settings),
            "resources": described,
            "renders": dict(renders or {}),
            "source_key": source_key,
            "avif_effort": settings.avif_effort,
        },
        blobs,
        kept={"info": info},
        source_file=source_file,
    )


@contextmanager
def upload_slot(settings: Settings, org_id: str) -> Iterator[None]:
    """Hold one of this worker's ``upload_concurrency`` upload places for the organization
    ``org_id`` (one organization gets at most half of them; 503 when none frees within
    ``render_queue_timeout``); wrap reading and storing an upload's body."""
    with pool_for(settings).uploads.admitted(settings.render_queue_timeout, org_id):
        yield


def render_stored(
    settings: Settings,
    plan: RenderPlan,
    image: Mapping[str, Any],
    *,
    read_source: Callable[[], bytes],
    sources: Sources | None = None,
    renders: Mapping[str, engine.SecondaryRender] | None = None,
    rendered: Mapping[str, engine.Resource] | None = None,
    source_file: tuple[str, str] | None = None,
) -> engine.Rendered:
    """Render the catalog image ``image`` (a row) through ``plan``; ``sources`` finds the
    other sources the plan (and the secondary stacks in ``renders``) names by hash (see
    :func:`referenced`). ``rendered`` are secondary stacks rendered before (composition
    ``cache``, webapp/secondarycache.py), as images under their ``secondary_render_key``;
    their decode counts in the budgets like a referenced image's. ``source_file``: the
    original's blob file and key, which the render process then reads itself (a still
    image: ``read_source`` is called only when that file does not serve).

    The budgets are checked before ``read_source`` is called for a still image (its size is
    in the row); an animation's frame count is only in its header, so its original is read
    first. Referenced images count in the same budgets (their decode is a step of the
    render, checked like the source's) and are read only after the check passed.
    ``OverBudget`` (400) past a budget, then as :func:`render`.
    """
    renders = renders or {}
    refs = referenced(plan, sources)
    for sub in renders.values():
        refs += referenced(sub.plan, sources)
    check_referenced(settings, [row for _, row in refs])
    images = {ref.hash: _referenced_image(row) for ref, row in refs if ref.image}
    images |= {key: r.info for key, r in (rendered or {}).items() if r.info is not None}
    source = read_source() if image["animated"] else None
    info = header(settings, source) if source is not None else stored_info(image)
    cost = engine.plan_cost(
        plan,
        info,
        budget(settings),
        images=images,
        renders=renders,
        avif_effort=settings.avif_effort,
    )
    resources: dict[str, engine.Resource] = dict(rendered or {})
    for ref, row in refs:
        if ref.hash not in resources:
            resources[ref.hash] = engine.Resource(
                data=sources.read(row) if sources is not None else b"",
                info=images.get(ref.hash),
                dynamic_metadata=row["dynamic_metadata"] if ref.hash in images else None,
            )
    # Only a still JPEG's decode is kept (engine/decoded.py), under its blob key (the
    # SHA-256 of its bytes: changed bytes are another key); its bytes are read when the
    # render process asks for them (or by it, from ``source_file``); any other source
    # is read before a process is taken.
    keyed = info.format == "jpg" and not info.animated and settings.decoded_cache_mb > 0
    key = image["blob_key"] if keyed else None
    if source is not None:
        source_file = None  # read already (an animation's header)
    elif key is None and source_file is None:
        source = read_source()
    return render(
        settings,
        plan,
        read_source if source is None else source,
        info=info,
        cost=cost,
        dynamic_metadata=image["dynamic_metadata"],
        resources=resources,
        renders=renders,
        source_key=key,
        source_file=source_file,
    )


def probe(settings: Settings, data: bytes | Spool) -> engine.ImageInfo:
    """``engine.probe`` with the configured limits, in a render process, under the deadline.

    A JPEG, PNG or WebP header is read here first: limits decided from it answer at once,
    and its size picks the lane. Other formats' headers cost what the file costs (a 28 MB
    SVG took 1.7 GB to parse), so they go to the expensive lane unread here, and an SVG
    over ``max_svg_bytes`` is refused before anything parses it. A TTF/OTF font is never
    decoded as an image: it is validated as a font (``engine.fonts``).

    ``data`` may be the spool an upload was received into (webapp/uploadspool.py): the
    render process then reads the file by its path (into memory: libvips still loads
    from a buffer), and the bytes never cross the pipe.
    """
    if isinstance(data, Spool):
        prefix, size, whole = data.prefix(4096), data.size, data.read_all
    else:
        prefix, size, whole = data[:4096], len(data), lambda: data
    if engine.font_format(prefix) is not None:
        return _probe_font(settings, whole())
    if engine.is_svg(prefix) and size > settings.max_svg_bytes:
        raise engine.TooManyPixels(
            f"SVG too large ({size} bytes > {settings.max_svg_bytes}): its parse alone "
            "would cost more than a render may"
        )
    lane = "expensive"
    if engine.header_is_cheap(prefix):
        if isinstance(data, Spool):
            info = _spooled_header(settings, data)
        else:
            info = header(settings, data)
        engine.check_decodable(info, settings.max_render_pixels)
        lane = _lane(settings, probe_work(info), info)
    payload: dict[str, Any] = {
        "max_pixels": settings.max_source_pixels,
        "max_frames": settings.max_source_frames,
        "max_decode_pixels": settings.max_render_pixels,
    }
    if isinstance(data, Spool):
        # the render process reads the file itself: no bytes go through the pipe
        return pool_for(settings).run(lane, "probe", b"", {**payload, "path": str(data.path)})
    return pool_for(settings).run(lane, "probe", data, payload)


# Bytes of a spooled JPEG read for its header: metadata segments (EXIF, ICC, XMP) before
# the pixel data rarely exceed a few dozen KB.
_HEAD_BYTES = 256 * 1024


def _spooled_header(settings: Settings, spool: Spool) -> engine.ImageInfo:
    """:func:`header` of a spooled upload: a JPEG's from its first ``_HEAD_BYTES`` (its
    header is all there, ``engine.header_in_head``), read whole when that does not load
    (longer metadata) and for every other format."""
    head = spool.prefix(_HEAD_BYTES)
    if spool.size > len(head) and engine.header_in_head(head):
        try:
            return header(settings, head)
        except engine.UnsupportedImage:
            pass  # the markers go on past the head
    return header(settings, spool.read_all())


def _probe_font(settings: Settings, data: bytes) -> engine.ImageInfo:
    """A TTF/OTF upload: refused past ``max_font_bytes`` here, validated (fontTools) in a
    render process of the cheap lane (a font's check is bounded by its size)."""
    if len(data) > settings.max_font_bytes:
        raise engine.UnsupportedFont(
            f"font too large ({len(data)} bytes > {settings.max_font_bytes})"
        )
    return pool_for(settings).run("cheap", "font", data, {"max_bytes": settings.max_font_bytes})


def optimise(
    settings: Settings, data: bytes, info: engine.ImageInfo, target: str
) -> tuple[bytes, engine.ImageInfo]:
    """engine/conversion.py's ``optimize_source`` conversion (TIFF/PSD only, else ``data``
    and ``info`` unchanged), in the expensive lane under the render deadline."""
    if not engine.converts(info, target):
        return data, info
    payload = {"info": info, "target": target, "max_pixels": settings.max_render_pixels}
    return pool_for(settings).run("expensive", "optimise", data, payload)


@functools.cache
def _detection_plan() -> RenderPlan:
    # Detection decodes like a render that starts with this resize (engine/faces.py), so
    # its decode is costed and refused by the same model; the JPEG encode the plan adds
    # to the estimate stands in for handing the pixels to the detector.
    side = DETECT_SIDE
    return build_plan(
        None,
        parse_render_path(
            f"dynamic/resize-width-{side}-height-{side}-upscale-false/{'0' * 40}.jpg"
        ),
    )


def detection_cost(settings: Settings, info: engine.ImageInfo) -> float:
    """Estimated work (megapixel passes) of detecting faces on a source ``info`` describes:
    the bounded decode as for a render, plus the cascade scan. ``OverBudget`` (400) past
    any render budget, decided before the original is read (for a still image)."""
    cost = plan_cost(settings, _detection_plan(), info)
    work = cost.work + cascade_work(cost.output)
    if work > settings.max_render_work:
        raise engine.OverBudget(
            f"face detection too expensive (about {work:.0f} megapixel passes, at most "
            f"{settings.max_render_work:.0f})"
        )
    return work


def detect_faces(
    settings: Settings, image: Mapping[str, Any], *, read_source: Callable[[], bytes]
) -> tuple[Face, ...]:
    """The faces in catalog image ``image`` (a row), in its display pixels, largest first.

    Runs in a render process of the lane its work calls for, under the render deadline
    and memory cap: ``Busy``/RenderTimeout/RenderCrashed (503) and ``OverBudget`` (400)
    as for a render; an original libvips cannot decode is ``RenderFailed`` (422).
    """
    source = read_source() if image["animated"] else None
    info = header(settings, source) if source is not None else stored_info(image)
    work = detection_cost(settings, info)
    if source is None:
        source = read_source()
    return pool_for(settings).run(
        _lane(settings, work, info),
        "faces",
        source,
        {
            "width": image["width"],
            "height": image["height"],
            "fmt": image["format"],
            "max_pixels": settings.max_render_pixels,
        },
    )
