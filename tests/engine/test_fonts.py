"""Font validation (engine/fonts.py): real TrueType and OpenType fonts pass, hostile or
broken ones are refused with a 422, and the installed copy libvips reads is private."""

from __future__ import annotations

import io
import os
import stat

import pytest
from fontTools.ttLib import TTFont

from engine.errors import UnsupportedFont
from engine.fonts import check_font, font_format, installed_font, probe_font
from tests.fontfiles import block_otf, block_ttf

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _edited(data: bytes, edit) -> bytes:
    font = TTFont(io.BytesIO(data), recalcBBoxes=False)
    edit(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def test_truetype_and_opentype_fonts_are_recognised_and_reported():
    ttf, otf = probe_font(block_ttf()), probe_font(block_otf())
    assert (ttf.format, ttf.mimetype, otf.format, otf.mimetype) == (
        "ttf",
        "font/ttf",
        "otf",
        "font/otf",
    )
    assert (ttf.width, ttf.height, ttf.animated) == (800, 480, False)
    facts = check_font(block_ttf("Some Family"))
    assert (facts.family, facts.units_per_em) == ("Some Family", 1000)


def test_a_real_font_file_passes():
    with open(DEJAVU, "rb") as fh:
        facts = check_font(fh.read())
    assert facts.family == "DejaVu Sans" and facts.glyphs > 5000


def test_magic_bytes_decide_what_is_a_font():
    assert font_format(b"\x00\x01\x00\x00rest") == "ttf"
    assert font_format(b"true") == "ttf"
    assert font_format(b"OTTO") == "otf"
    for other in (b"wOFF", b"wOF2", b"ttcf", b"\x89PNG", b"", b"OTT"):
        assert font_format(other) is None


def _refused(data: bytes, match: str, **kwargs) -> None:
    with pytest.raises(UnsupportedFont, match=match) as caught:
        probe_font(data, **kwargs)
    assert caught.value.status == 422


@pytest.mark.parametrize("cut", [4, 12, 100, 400, -200, -20])
def test_truncated_fonts_are_refused(cut: int):
    _refused(block_ttf()[:cut], "broken|truncated|past the end|missing")


def test_wrong_magic_is_refused():
    _refused(b"wOFF" + block_ttf()[4:], "not a TrueType or OpenType font")
    _refused(b"GIF89a" + b"\0" * 100, "not a TrueType or OpenType font")


def test_a_font_over_the_size_limit_is_refused_before_parsing():
    data = block_ttf()
    _refused(data, "font too large", max_bytes=len(data) - 1)
    assert probe_font(data, max_bytes=len(data)).format == "ttf"


def test_garbage_after_a_valid_magic_is_refused():
    _refused(b"\x00\x01\x00\x00" + os.urandom(2000), "broken|truncated|past the end|missing")
    _refused(b"OTTO" + b"\xff" * 2000, "broken|truncated|past the end|missing")


def test_missing_tables_are_refused():
    def drop_cmap(font):
        del font["cmap"]

    _refused(_edited(block_ttf(), drop_cmap), "missing table cmap")


def test_glyphs_many_ems_tall_are_refused():
    def tall(font):
        font["head"].yMax = 20 * font["head"].unitsPerEm

    _refused(_edited(block_ttf(), tall), "beyond 8 em")


def test_a_font_without_unicode_map_or_family_is_refused():
    def no_unicode(font):
        font["cmap"].tables = [t for t in font["cmap"].tables if not t.isUnicode()]

    def no_family(font):
        font["name"].names = []

    _refused(_edited(block_ttf(), no_unicode), "no Unicode character map")
    _refused(_edited(block_ttf(), no_family), "no family name")


def test_a_broken_glyph_outline_is_refused():
    data = bytearray(block_ttf())
    font = TTFont(io.BytesIO(bytes(data)))
    entry = font.reader.tables["glyf"]
    # overwrite the glyph data with garbage: the table directory is intact
    data[entry.offset : entry.offset + entry.length] = b"\xff" * entry.length
    _refused(bytes(data), "broken|truncated")


def test_the_installed_copy_is_private_renamed_and_removed():
    data = block_ttf("Arial")
    with installed_font(data) as (path, family):
        mode = os.stat(path).st_mode
        assert stat.S_IMODE(mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path, "rb") as fh:
            copy = check_font(fh.read())
        assert copy.family == family != "Arial"
    assert not os.path.exists(path)
    with installed_font(block_ttf("Arial", block=300)) as (_, other):
        assert other != family  # another font never shares a family name


def test_a_glyph_many_ems_wide_is_refused_even_if_the_head_table_hides_it():
    data = bytearray(block_ttf())
    font = TTFont(io.BytesIO(bytes(data)))
    glyf, offsets = font.reader.tables["glyf"], list(font["loca"])
    last = next(start for start, end in zip(offsets, offsets[1:], strict=False) if end > start)
    # the glyph header: numberOfContours, xMin, yMin, xMax, yMax (int16 big-endian)
    data[glyf.offset + last + 6 : glyf.offset + last + 8] = (30000).to_bytes(2, "big")
    _refused(bytes(data), "beyond 8 em")


def test_glyph_locations_out_of_order_are_refused():
    # loca offsets that go backwards (a glyph starting before the one before it), written
    # into the file as they are: fontTools would recompute them when saving a font
    data = bytearray(block_ttf())
    font = TTFont(io.BytesIO(bytes(data)))
    locations = list(font["loca"].locations)
    locations[2], locations[3] = locations[3], locations[2]
    short = font["head"].indexToLocFormat == 0
    packed = b"".join(
        (v // 2).to_bytes(2, "big") if short else v.to_bytes(4, "big") for v in locations
    )
    loca = font.reader.tables["loca"]
    data[loca.offset : loca.offset + len(packed)] = packed
    assert locations[2] > locations[3]
    _refused(bytes(data), "bad glyph locations")
