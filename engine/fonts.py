"""Fonts: recognising, validating and installing uploaded TrueType/OpenType fonts.

A font is uploaded like an image (rokka: "upload the fonts as TTF through the normal
source image operations") and used only by the ``text`` operation. It is hostile input
like any upload, so:

- it is recognised from its first four bytes (TrueType ``00 01 00 00`` or ``true``,
  OpenType-CFF ``OTTO``) and never handed to an image decoder;
- :func:`probe_font` validates it with fontTools in a render process (bounded in time and
  memory there): every required table present and inside the file, the small tables and
  every glyph outline decoded, metrics within sane bounds;
- :func:`installed_font` writes it for libvips to a private temporary file the render
  process makes itself, under a family name derived from its bytes (so two uploads that
  call themselves "Arial" can never be confused), and removes the file afterwards.
"""

from __future__ import annotations

import atexit
import hashlib
import io
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from engine.errors import UnsupportedFont
from engine.probe import ImageInfo

# First four bytes (sfnt version) -> format. WOFF/WOFF2 (wOFF/wOF2) and collections (ttcf)
# are refused: rokka documents TTF only, and a collection holds several fonts under one hash.
_MAGIC = {b"\x00\x01\x00\x00": "ttf", b"true": "ttf", b"OTTO": "otf"}
MIMETYPES = {"ttf": "font/ttf", "otf": "font/otf"}
FONT_FORMATS = frozenset(MIMETYPES)

DEFAULT_MAX_FONT_BYTES = 10 * 1024 * 1024

# What a font reports as its width and height. rokka answers uploads through ImageMagick,
# whose font reader describes a font by an 800 x 480 specimen sheet; no pixel of it is
# ever rendered here.
SPECIMEN_WIDTH = 800
SPECIMEN_HEIGHT = 480

# Metric bounds, in ems: real fonts stay within about -1..2.5 em; a glyph many ems tall
# would turn a small text into a huge mask.
_MAX_EXTENT_EM = 8
_REQUIRED = ("cmap", "head", "hhea", "hmtx", "maxp", "name")
_OUTLINES = {"ttf": (("glyf", "loca"),), "otf": (("CFF ",), ("CFF2",))}


def font_format(prefix: bytes) -> str | None:
    """``"ttf"`` or ``"otf"`` when ``prefix`` (the first bytes of a file, at least 4) starts
    like a TrueType or OpenType font; None otherwise. A True answer is not validation."""
    return _MAGIC.get(bytes(prefix[:4]))


@dataclass(frozen=True, slots=True)
class FontFacts:
    """What validation learnt: ``format`` ttf/otf, ``family`` as the font names itself,
    ``glyphs`` count, ``units_per_em`` (16-16384)."""

    format: str
    family: str
    glyphs: int
    units_per_em: int


def probe_font(data: bytes, *, max_bytes: int = DEFAULT_MAX_FONT_BYTES) -> ImageInfo:
    """Validate an uploaded font; its catalog entry (format ttf/otf, a font mimetype, the
    800 x 480 specimen size). Raises ``UnsupportedFont`` (422) for anything else."""
    facts = check_font(data, max_bytes=max_bytes)
    return ImageInfo(
        width=SPECIMEN_WIDTH,
        height=SPECIMEN_HEIGHT,
        format=facts.format,
        mimetype=MIMETYPES[facts.format],
        animated=False,
        n_pages=1,
        opaque=True,
        orientation=1,
    )


def check_font(data: bytes, *, max_bytes: int = DEFAULT_MAX_FONT_BYTES) -> FontFacts:
    """Validate ``data`` as a TrueType or OpenType font of at most ``max_bytes`` bytes.

    Decodes the table directory and the required tables, checks where every glyph is and
    decodes a sample of the outlines (``_check_outlines``); refuses (``UnsupportedFont``,
    422) wrong magic, tables past the end of the file, missing tables, no Unicode character
    map, no family name, broken glyphs and metrics beyond 8 em. Costs well under a second
    and ~20 MB per MB of font: run it in a render process.
    """
    if len(data) > max_bytes:
        raise UnsupportedFont(f"font too large ({len(data)} bytes > {max_bytes})")
    kind = font_format(data)
    if kind is None:
        raise UnsupportedFont("not a TrueType or OpenType font")
    try:
        return _check(data, kind)
    except UnsupportedFont:
        raise
    except Exception as exc:  # fontTools raises anything from struct.error to KeyError
        raise UnsupportedFont("broken or truncated font") from exc


def _check(data: bytes, kind: str) -> FontFacts:
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(data), lazy=True, recalcBBoxes=False, recalcTimestamp=False)
    reader = font.reader
    for tag in reader.keys():
        entry = reader.tables[tag]
        if entry.offset + entry.length > len(data):
            raise UnsupportedFont(f"broken font: table {tag.strip()} extends past the end")
    missing = [tag for tag in _REQUIRED if tag not in reader]
    if not any(all(tag in reader for tag in tags) for tags in _OUTLINES[kind]):
        missing.append("/".join(t.strip() for tags in _OUTLINES[kind] for t in tags))
    if missing:
        raise UnsupportedFont(f"broken font: missing table {', '.join(missing)}")
    head, hhea = font["head"], font["hhea"]
    em = int(head.unitsPerEm)
    if head.magicNumber != 0x5F0F3CF5 or not 16 <= em <= 16384:
        raise UnsupportedFont("broken font: bad head table")
    limit = _MAX_EXTENT_EM * em
    extents = (head.xMin, head.yMin, head.xMax, head.yMax, hhea.advanceWidthMax)
    if any(abs(int(v)) > limit for v in extents):
        raise UnsupportedFont(f"font metrics beyond {_MAX_EXTENT_EM} em")
    glyphs = int(font["maxp"].numGlyphs)
    font["hmtx"]  # noqa: B018 - decoding is the check
    cmap = font["cmap"].getBestCmap()
    if not cmap:
        raise UnsupportedFont("font has no Unicode character map")
    family = font["name"].getBestFamilyName()
    if not family:
        raise UnsupportedFont("font has no family name")
    _check_outlines(font, kind, limit)
    return FontFacts(format=kind, family=str(family), glyphs=glyphs, units_per_em=em)


def _check_outlines(font: Any, kind: str, limit: int) -> None:
    """Every glyph's place in the file (and, for TrueType, its header and bounding box)
    checked, and the outlines of the Latin glyphs plus an even sample of the others
    decoded, at most :data:`_DECODED_GLYPHS` in all: decoding all 65535 glyphs a font may
    have takes fontTools over 10 s, the sample finds a broken outline table in
    milliseconds."""
    order = font.getGlyphOrder()
    sample = _sample(font, order)
    if "glyf" in font:
        _check_glyph_headers(font, len(order), limit)
        glyf = font["glyf"]
        for name in sample:
            glyph = glyf[name]
            glyph.expand(glyf)
            if glyph.isComposite():
                glyph.getCoordinates(glyf)
        return
    tag = "CFF " if "CFF " in font else "CFF2"
    charstrings = font[tag].cff.topDictIndex[0].CharStrings
    if len(charstrings) != len(order):
        raise UnsupportedFont("broken font: glyph count and outlines disagree")
    for name in sample:
        charstrings[name].decompile()


# Glyphs whose outlines the upload check decodes (see _check_outlines).
_DECODED_GLYPHS = 2000
# Characters whose glyphs are always among them: Latin, with its accents and punctuation.
_LATIN_END = 0x250


def _sample(font: Any, order: list[str]) -> list[str]:
    cmap = font["cmap"].getBestCmap()
    latin = sorted({name for code, name in cmap.items() if code < _LATIN_END})
    step = max(1, len(order) // max(1, _DECODED_GLYPHS - len(latin)))
    chosen = dict.fromkeys([*latin[:_DECODED_GLYPHS], *order[::step]])
    return list(chosen)[:_DECODED_GLYPHS]


_GLYPH_HEADER = struct.Struct(">hhhhh")


def _check_glyph_headers(font: Any, glyphs: int, limit: int) -> None:
    """Each glyph's byte range inside ``glyf`` (from ``loca``, non-decreasing) and each
    outline's header: a contour count and a bounding box within ``limit`` font units."""
    offsets = list(font["loca"])
    data = font.reader["glyf"]
    steps = zip(offsets[:-1], offsets[1:], strict=True)
    if len(offsets) < glyphs + 1 or any(b < a for a, b in steps):
        raise UnsupportedFont("broken font: bad glyph locations")
    if offsets[glyphs] > len(data):
        raise UnsupportedFont("broken font: glyph locations past the outlines")
    for start, end in zip(offsets[:glyphs], offsets[1 : glyphs + 1], strict=True):
        if end == start:
            continue  # an empty glyph (a space)
        if end - start < _GLYPH_HEADER.size:
            raise UnsupportedFont("broken font: truncated glyph")
        _, *box = _GLYPH_HEADER.unpack_from(data, start)
        if any(abs(v) > limit for v in box):
            raise UnsupportedFont(f"font metrics beyond {_MAX_EXTENT_EM} em")


# ----------------------------------------------------------------------------- install

_directory: str | None = None


def _private_directory() -> str:
    """This process's own directory for font files (mode 0700), made on first use and
    removed at exit."""
    global _directory
    if _directory is None or not os.path.isdir(_directory):
        _directory = tempfile.mkdtemp(prefix="cropstack-fonts-")
        atexit.register(shutil.rmtree, _directory, True)
    return _directory


@contextmanager
def installed_font(data: bytes) -> Iterator[tuple[str, str]]:
    """``(path, family)`` of ``data`` written as a font file libvips can load, for the
    duration of the ``with`` block; the file is removed afterwards.

    The family is renamed to one derived from the font's bytes, and the file is named
    after those bytes: libvips registers every font file it is given with fontconfig for
    the life of the process, so a name (or path) must never stand for two different fonts.
    Raises ``UnsupportedFont`` (422) when ``data`` is not a valid font.
    """
    digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    family = "cropstack" + digest[:24]
    kind = font_format(data)
    if kind is None:
        raise UnsupportedFont("not a TrueType or OpenType font")
    try:
        renamed = _renamed(data, family)
    except Exception as exc:  # fontTools raises anything on a broken font
        raise UnsupportedFont("broken or truncated font") from exc
    path = os.path.join(_private_directory(), f"{digest}.{kind}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(renamed)
        yield path, family
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


# Name IDs that carry a family or full name (fontconfig reads the family from 1, 16, 21
# and matches full names from 4 and the PostScript name 6).
_NAME_IDS = (1, 2, 4, 6, 16, 17, 21, 22)


# Renaming re-reads the font (up to ~0.4 s for a large one); the few fonts a process used
# last are kept renamed, in memory (at most 4 x max_font_bytes).
@lru_cache(maxsize=4)
def _renamed(data: bytes, family: str) -> bytes:
    """``data`` with every family, style and full name replaced by ``family`` / Regular."""
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(data), lazy=True, recalcBBoxes=False, recalcTimestamp=False)
    name = font["name"]
    name.names = [record for record in name.names if record.nameID not in _NAME_IDS]
    for name_id, text in ((1, family), (2, "Regular"), (4, family), (6, family)):
        name.setName(text, name_id, 3, 1, 0x409)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()
