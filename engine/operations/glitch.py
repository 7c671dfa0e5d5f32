"""rokka ``glitch``: databending; bytes of the image's JPEG data are corrupted at random.

The image is encoded as a baseline JPEG, :data:`BYTES_PER_AMOUNT` x ``amount`` bytes of its
entropy-coded data are replaced by other values (never a marker, so the file stays
decodable and keeps its size), and it is decoded again: blocks shift, smear and change
colour from each corrupted byte to the end of its 16 px band, as in a glitched file. The
choice of bytes comes from a generator seeded with ``amount`` and ``random``, so a URL
always renders the same pixels and another ``random`` text gives another glitch. Alpha is
kept untouched.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyvips

from engine.geometry import Size
from engine.operations.context import RenderContext, join_alpha, split_alpha, to_srgb
from engine.operations.kind import OperationKind, megapixels, parameters

# Corrupted bytes per step of ``amount`` (0-10).
BYTES_PER_AMOUNT = 3
# Quality of the intermediate JPEG: high enough that only the glitch shows.
QUALITY = 92
# Height of a glitched band in rows of 8x8 blocks (a corrupted byte spoils the rest of it).
BAND_ROWS = 2
_MARKER = 0xFF
_START_OF_SCAN = b"\xff\xda"


@dataclass(frozen=True, slots=True)
class GlitchParameters:
    """``amount`` 0-10 (0 = unchanged); ``random`` any text (None = none) choosing the glitch."""

    amount: int
    random: str | None


def _seed(p: GlitchParameters) -> bytes:
    # sha256, not hash(): the same URL must glitch the same way in every process.
    return hashlib.sha256(f"{p.amount}\0{p.random or ''}".encode()).digest()


def corrupt(data: bytes, count: int, seed: bytes) -> bytes:
    """``data`` (a baseline JPEG) with ``count`` bytes of its scan replaced, chosen by ``seed``.

    A byte is only replaced where neither it nor the byte before is 0xFF, and never by
    0xFF: markers and their stuffing bytes stay intact, so only the coded pixels change.
    """
    out = bytearray(data)
    sos = out.find(_START_OF_SCAN)
    if sos < 0:
        return data
    start = sos + 2 + int.from_bytes(out[sos + 2 : sos + 4], "big")
    end = len(out) - 2  # the end-of-image marker
    if end - start < 2:
        return data
    rng = random.Random(seed)
    for _ in range(count):
        for _attempt in range(16):
            at = rng.randrange(start + 1, end)
            if out[at] != _MARKER and out[at - 1] != _MARKER:
                out[at] = rng.randrange(0, _MARKER)
                break
    return bytes(out)


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    p = parameters(GlitchParameters, options)
    if p.amount <= 0:
        return image
    colour, alpha = split_alpha(to_srgb(image))
    # Restart markers every BAND_ROWS rows of 8x8 blocks resynchronise the decoder, so each
    # corrupted byte glitches the rest of its band, not the whole image below it.
    blocks_per_row = -(-colour.width // 8)
    data = colour.jpegsave_buffer(
        Q=QUALITY,
        keep="none",
        interlace=False,
        optimize_coding=False,
        subsample_mode="off",
        restart_interval=min(blocks_per_row * BAND_ROWS, 65535),
    )
    broken = corrupt(bytes(data), p.amount * BYTES_PER_AMOUNT, _seed(p))
    # Corrupt entropy data only warns libjpeg; it fills what it cannot decode.
    glitched = pyvips.Image.jpegload_buffer(broken, fail_on="none").copy_memory()
    return join_alpha(glitched.copy(interpretation="srgb"), alpha)


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    """A JPEG encode and decode of the image, measured at about three passes."""
    return 3.0 * megapixels(before) if parameters(GlitchParameters, options).amount else 0.0


KIND = OperationKind("glitch", apply, GlitchParameters, passes=passes)
