"""Fast writer of opaque animated GIFs: a palette per frame, nearest colours, Pillow's LZW.

libvips' ``gifsave`` quantises every frame with libimagequant and dithers it: on W4's 40
frames of 200x200 that is 5.2 s of CPU at its default effort and 0.57 s at effort 1 with no
dithering, where thumbor with gifsicle answers in 0.4 s (docs/performance.md, W4). Here,
for each frame:

1. a palette of up to ``2**bits`` colours: Pillow's fast octree over the frame subsampled to
   about ``PALETTE_SAMPLE_PIXELS`` pixels (about 0.5 ms);
2. the first frame's palette instead when, on that sample, it is within ``REUSE_ERROR`` of
   the frame's own (unchanged pixels then keep their indices, and Pillow writes only
   the rectangle that changed);
3. every pixel mapped to its nearest palette colour (no dithering: dither noise differs
   from frame to frame and made the W4 file 1.34x thumbor's; gifsicle does not dither);
4. Pillow writes the GIF: only the rectangle that changed since the previous frame,
   identical consecutive frames merged with their delays added (as libvips does).

Used for opaque animations only (engine/formats.py): binary GIF transparency across frames
stays with libvips.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pyvips

# Pixels of a frame the palette is chosen from (the octree's time grows with them; 4x
# more changed the W4 error by less than 0.1 of 255; on W4's 200x200 frames 8k takes every
# third pixel of every third row, 4.4k pixels, mean error 5.19/255 where every second one,
# 10k pixels, gave 5.23).
PALETTE_SAMPLE_PIXELS = 8 * 1024
# A frame keeps the first frame's colours (so indices match where the picture did not
# change, and only the changed rectangle is written) unless its own palette is closer to
# its sample by more than this mean error per channel (of 255).
REUSE_ERROR = 0.5
# GIF delays are in centiseconds; libvips' default when a source has none.
DEFAULT_DELAY_MS = 100


def page_height(image: pyvips.Image) -> int:
    """Height of one frame of a vertical strip, px (the whole image when it is no strip)."""
    if image.get_typeof("page-height") != 0:
        height = int(image.get("page-height"))
        if 0 < height <= image.height and image.height % height == 0:
            return height
    return image.height


def opaque_pixels(image: pyvips.Image) -> np.ndarray | None:
    """The 8-bit sRGB strip as an ``(height, width, 3)`` array in memory, or None when some
    pixel is not fully opaque (the caller then keeps libvips' writer)."""
    pixels = np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    )
    if image.bands == 4:
        if pixels[..., 3].min() < 255:
            return None
        return pixels[..., :3]
    if image.bands == 3:
        return pixels
    if image.bands == 1:
        return np.repeat(pixels, 3, axis=2)
    return None


def sample(frame: np.ndarray) -> np.ndarray:
    """Every n-th pixel of every n-th row of a ``(height, width, 3)`` frame, n chosen so
    that about ``PALETTE_SAMPLE_PIXELS`` remain."""
    step = max(1, math.ceil(math.sqrt(frame.shape[0] * frame.shape[1] / PALETTE_SAMPLE_PIXELS)))
    return np.ascontiguousarray(frame[::step, ::step])


def frame_palette(picked: np.ndarray, bits: int) -> Any:
    """A Pillow "P" image whose palette holds up to ``2**bits`` colours for the pixels
    ``picked`` (a frame's :func:`sample`): the fast octree."""
    from PIL import Image

    return Image.fromarray(picked).quantize(1 << bits, method=Image.Quantize.FASTOCTREE)


def delays(image: pyvips.Image, frames: int) -> list[int]:
    """Per-frame delays in ms (the source's, padded with its last or 100 ms)."""
    given: list[int] = []
    if image.get_typeof("delay") != 0:
        given = [int(d) for d in image.get("delay")]
    pad = given[-1] if given else DEFAULT_DELAY_MS
    return (given + [pad] * frames)[:frames]


def loop_count(image: pyvips.Image) -> int | None:
    """Pillow's ``loop`` (repeats after the first play, 0 = forever, None = play once) from
    libvips' ``loop`` (0 = forever, n = play n times)."""
    if image.get_typeof("loop") == 0:
        return 0
    loop = int(image.get("loop"))
    if loop == 1:
        return None
    return max(loop - 1, 0)


def encode(image: pyvips.Image, pixels: np.ndarray, bits: int) -> bytes:
    """The animated GIF of the 8-bit sRGB strip ``image`` whose opaque pixels are ``pixels``
    (see :func:`opaque_pixels`), with ``2**bits`` palette colours at most (2-8)."""
    from PIL import Image

    height = page_height(image)
    frames = image.height // height
    mapped = []
    first: Any = None
    for i in range(frames):
        frame = pixels[i * height : (i + 1) * height]
        picked = sample(frame)
        table = frame_palette(picked, bits)
        if first is None:
            first = table
        elif _error(picked, first) <= _error(picked, table, mapped=True) + REUSE_ERROR:
            table = first  # unchanged pixels keep their indices
        mapped.append(Image.fromarray(frame).quantize(palette=table, dither=Image.Dither.NONE))
    out = io.BytesIO()
    options: dict[str, object] = {"duration": delays(image, frames)}
    loop = loop_count(image)
    if loop is not None:
        options["loop"] = loop
    # optimize=False: no per-frame histogram and palette remapping (Pillow's pass that drops
    # unused colours): on W4 that pass cost more than it saved (the file was 0.3% larger).
    mapped[0].save(out, "GIF", save_all=True, optimize=False, append_images=mapped[1:], **options)
    return out.getvalue()


def _error(picked: np.ndarray, table: Any, *, mapped: bool = False) -> float:
    """Mean absolute difference per channel (0-255) between the pixels ``picked`` and
    their nearest colours in the palette of ``table``; with ``mapped``, ``table`` is
    ``picked`` already mapped (the octree's own indices: no second mapping, which costs
    Pillow ~1 ms of set-up per palette whatever the pixels)."""
    from PIL import Image

    if not mapped:
        table = Image.fromarray(picked).quantize(palette=table, dither=Image.Dither.NONE)
    return float(np.abs(np.asarray(table.convert("RGB"), dtype=np.int16) - picked).mean())
