"""Fonts for the tests, built in memory with fontTools' FontBuilder (nothing downloaded).

Every glyph of the "block" fonts is a filled rectangle filling its whole em cell: the
printable ASCII characters (``!`` to ``~``) are ``BLOCK`` units wide, the space is an
empty ``BLOCK`` units advance, and ascender + descender make exactly one em. At a size of
``s`` pixels a line of ``n`` characters is therefore ``n * s * BLOCK / EM`` pixels wide
and ``s`` pixels tall, and every ink pixel is fully covered, so pixel tests can assert
exact positions, colours and opacity.
"""

from __future__ import annotations

import io

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.t2CharStringPen import T2CharStringPen
from fontTools.pens.ttGlyphPen import TTGlyphPen

EM = 1000
BLOCK = 600
ASCENT = 800
DESCENT = 200
_PRINTABLE = [chr(c) for c in range(0x21, 0x7F)]


def _glyph_names() -> dict[str, str]:
    return {ch: f"g{ord(ch):02x}" for ch in _PRINTABLE}


def _draw_block(pen: object, block: int) -> None:
    pen.moveTo((0, -DESCENT))  # type: ignore[attr-defined]
    pen.lineTo((0, ASCENT))  # type: ignore[attr-defined]
    pen.lineTo((block, ASCENT))  # type: ignore[attr-defined]
    pen.lineTo((block, -DESCENT))  # type: ignore[attr-defined]
    pen.closePath()  # type: ignore[attr-defined]


def _builder(cff: bool) -> tuple[FontBuilder, list[str], dict[int, str]]:
    names = _glyph_names()
    order = [".notdef", "space", *names.values()]
    fb = FontBuilder(EM, isTTF=not cff)
    fb.setupGlyphOrder(order)
    cmap = {32: "space", **{ord(ch): name for ch, name in names.items()}}
    fb.setupCharacterMap(cmap)
    return fb, order, cmap


def _finish(fb: FontBuilder, order: list[str], family: str, block: int) -> bytes:
    metrics = {name: (block, 0) for name in order}
    fb.setupHorizontalMetrics(metrics)
    fb.setupHorizontalHeader(ascent=ASCENT, descent=-DESCENT)
    fb.setupNameTable({"familyName": family, "styleName": "Regular"})
    fb.setupOS2(
        sTypoAscender=ASCENT,
        sTypoDescender=-DESCENT,
        sTypoLineGap=0,
        usWinAscent=ASCENT,
        usWinDescent=DESCENT,
    )
    fb.setupPost()
    out = io.BytesIO()
    fb.save(out)
    return out.getvalue()


def block_ttf(family: str = "Blocks", block: int = BLOCK) -> bytes:
    """A TrueType (glyf outlines) block font; ``family`` is its name table family and
    ``block`` the width of every glyph, in font units (of 1000 per em)."""
    fb, order, _ = _builder(cff=False)
    glyphs = {}
    for name in order:
        pen = TTGlyphPen(None)
        if name not in (".notdef", "space"):
            _draw_block(pen, block)
        glyphs[name] = pen.glyph()
    fb.setupGlyf(glyphs)
    return _finish(fb, order, family, block)


def block_otf(family: str = "BlocksCFF") -> bytes:
    """The same block font with CFF outlines (an OpenType ``OTTO`` file)."""
    fb, order, _ = _builder(cff=True)
    charstrings = {}
    for name in order:
        pen = T2CharStringPen(BLOCK, None)
        if name not in (".notdef", "space"):
            _draw_block(pen, BLOCK)
        charstrings[name] = pen.getCharString()
    fb.setupCFF(family, {"FullName": family}, charstrings, {})
    return _finish(fb, order, family, BLOCK)


def line_width(text: str, size: float) -> float:
    """Pixels a single line of ``text`` takes at ``size`` px in a block font."""
    return len(text) * size * BLOCK / EM
