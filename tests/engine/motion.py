"""A synthetic animated GIF with real motion and colour: W4's source (benchmarks) and the
GIF writer's tests.

Every frame is a full-colour scene: three sine colour fields that drift with time (smooth
gradients, the hardest case for a 256-colour palette) and three solid discs that circle
around it, so every frame differs from the previous one almost everywhere.
"""

from __future__ import annotations

import numpy as np
import pyvips

DISCS = (  # centre (fractions of the frame), radius (fraction of the height), colour
    (0.2, 0.3, 0.14, (250, 40, 40)),
    (0.7, 0.6, 0.19, (30, 220, 60)),
    (0.5, 0.5, 0.10, (20, 30, 240)),
)


def motion_frames(width: int, height: int, frames: int) -> np.ndarray:
    """``frames`` RGB frames as one ``(frames * height, width, 3)`` uint8 strip."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    sx, sy = x * 480 / width, y * 360 / height  # the same scene at any size
    out = []
    for i in range(frames):
        t = i / frames
        img = np.stack(
            [
                128 + 100 * np.sin(sx / 60 + 2 * np.pi * t),
                128 + 100 * np.sin(sy / 45 - 2 * np.pi * t),
                128 + 100 * np.sin((sx + sy) / 80 + 4 * np.pi * t),
            ],
            -1,
        )
        for k, (cx, cy, radius, colour) in enumerate(DISCS):
            px = width * (cx + 0.25 * np.cos(2 * np.pi * (t + k / 3)))
            py = height * (cy + 0.2 * np.sin(2 * np.pi * (t + k / 5)))
            img[(x - px) ** 2 + (y - py) ** 2 < (radius * height) ** 2] = colour
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.concatenate(out, 0)


def motion_gif(
    width: int, height: int, frames: int, delays: list[int] | None = None, loop: int = 0
) -> bytes:
    """The animated GIF of :func:`motion_frames` (libvips' writer at effort 1, dithered),
    with ``delays`` in ms (default 80 each) and libvips' ``loop`` (0 = forever)."""
    strip = pyvips.Image.new_from_array(motion_frames(width, height, frames))
    strip = strip.copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", delays or [80] * frames)
    strip.set_type(pyvips.GValue.gint_type, "loop", loop)
    return bytes(strip.gifsave_buffer(effort=1))
