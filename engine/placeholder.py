"""BlurHash placeholders: the answer to a render URL ending in ``.blur``.

rokka answers ``/{stack}/{hash}.blur`` with the BlurHash (https://blurha.sh) of the rendered
image, a short text a front end paints as a blurry preview while the image loads. The
image is rendered as for any other format, then reduced in linear light to at most
:data:`SAMPLE_SIDE` pixels a side, and that sample is encoded by the ``blurhash`` package.
"""

from __future__ import annotations

import blurhash
import pyvips

# rokka's documented example, ``L[JbHoogofbb?wkCRjofxvjroLae`` for a portrait 840x1260
# image, starts with ``L``: base-83 21 = (x - 1) + 9 (y - 1), so 4 x 3 components, whatever
# the aspect ratio. The hash is then 4 + 2 * 12 = 28 characters.
COMPONENTS_X = 4
COMPONENTS_Y = 3
# Pixels per side of the sample the hash is computed from: 12 cosine components cannot
# carry more detail, and the pure-Python encoder's work grows with the sample's pixels
# (about 20 ms for 32 x 32).
SAMPLE_SIDE = 32

MIME = "text/plain"


def sample(image: pyvips.Image) -> list[list[list[float]]]:
    """``image`` (8-bit sRGB, 3 bands, alpha already flattened) as linear-light RGB (0-1)
    rows of at most :data:`SAMPLE_SIDE` pixels a side, aspect ratio kept."""
    linear = image.colourspace("scrgb")
    scale = SAMPLE_SIDE / max(image.width, image.height)
    if scale < 1:
        # Averaging in linear light keeps the mean colour the image's own.
        linear = linear.resize(scale, kernel="linear")
    pixels = linear.numpy().clip(0.0, 1.0)
    return pixels[..., :3].tolist()


def encode(image: pyvips.Image) -> bytes:
    """The BlurHash (ASCII, :data:`COMPONENTS_X` x :data:`COMPONENTS_Y` components) of
    output-ready pixels."""
    text = blurhash.encode(sample(image), COMPONENTS_X, COMPONENTS_Y, linear=True)
    return text.encode("ascii")
