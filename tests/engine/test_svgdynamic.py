"""svgdynamic: attributes of SVG elements changed by id before rasterising, safely."""

from __future__ import annotations

import base64

import numpy as np
import pytest

import engine
from tests.engine.conftest import decode, op, plan, png, scene

# rokka's documented example (docs "SvgDynamic"), smaller.
LINE = (
    b'<svg id="root" width="100" height="100" viewBox="0 0 1000 1000" '
    b'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
    b'<rect width="1000" height="1000" fill="#ffffff"/>'
    b'<polyline id="line" stroke="#FF6840" stroke-width="100" points="0 500, 1000 500"/>'
    b"</svg>"
)


def _render(source: bytes, *changes: dict, fmt: str = "png", ops: tuple = ()) -> np.ndarray:
    out = engine.render(plan(op("svgdynamic", changes=list(changes)), *ops, fmt=fmt), source)
    return decode(out.body)


def test_changes_the_attribute_of_the_element_with_that_id():
    before = _render(LINE)
    assert before[50, 50, :3].tolist() == [255, 104, 64]
    after = _render(
        LINE,
        {"id": "line", "attr": "stroke", "value": "#ff00ff"},
        {"id": "line", "attr": "stroke-width", "value": "20"},
    )
    # magenta, and 20/1000 of 100 px is 2 px thick where it was 10
    assert after[50, 50, :3].tolist() == [255, 0, 255]
    assert after[53, 50, :3].tolist() == [255, 255, 255]
    assert before[53, 50, :3].tolist() == [255, 104, 64]


def test_later_changes_win_and_unknown_ids_change_nothing():
    same = _render(LINE, {"id": "nothing-has-this-id", "attr": "fill", "value": "red"})
    assert np.array_equal(same, _render(LINE))
    last = _render(
        LINE,
        {"id": "line", "attr": "stroke", "value": "#00ff00"},
        {"id": "line", "attr": "stroke", "value": "#0000ff"},
    )
    assert last[50, 50, :3].tolist() == [0, 0, 255]


def test_changing_the_size_changes_what_is_decoded_and_checked():
    out = engine.render(
        plan(op("svgdynamic", changes=[{"id": "root", "attr": "width", "value": "300"}])), LINE
    )
    assert (out.width, out.height) == (300, 100)
    with pytest.raises(engine.EngineError) as huge:
        engine.render(
            plan(op("svgdynamic", changes=[{"id": "root", "attr": "width", "value": "900000"}])),
            LINE,
        )
    assert huge.value.status == 400


def test_stands_anywhere_in_the_stack_and_shrinks_on_load_as_usual():
    # svgdynamic after the resize still changes the source; the resize renders the vector
    # at the target size.
    out = engine.render(
        plan(
            op("resize", width=400),
            op("svgdynamic", changes=[{"id": "line", "attr": "stroke", "value": "#0000ff"}]),
        ),
        LINE,
    )
    pixels = decode(out.body)
    assert pixels.shape[:2] == (400, 400)
    assert pixels[200, 200, :3].tolist() == [0, 0, 255]


def test_xlink_attributes_can_change():
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'width="20" height="20"><defs><rect id="red" width="20" height="20" fill="#ff0000"/>'
        b'<rect id="blue" width="20" height="20" fill="#0000ff"/></defs>'
        b'<use id="u" xlink:href="#red"/></svg>'
    )
    assert _render(svg)[10, 10, :3].tolist() == [255, 0, 0]
    changed = _render(svg, {"id": "u", "attr": "xlink:href", "value": "#blue"})
    assert changed[10, 10, :3].tolist() == [0, 0, 255]


@pytest.mark.parametrize(
    ("source", "change", "message"),
    [
        (png(scene(20, 20)), {"id": "a", "attr": "fill", "value": "red"}, "needs an SVG"),
        (LINE, {"id": "line", "attr": "on load", "value": "x"}, "not an attribute name"),
        (LINE, {"id": "line", "attr": "xmlns:evil", "value": "x"}, "not an attribute name"),
        (LINE, {"id": "line", "attr": "foo:bar", "value": "x"}, "not an attribute name"),
        (
            b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
            b"<text>&b;</text></svg>",
            {"id": "x", "attr": "fill", "value": "red"},
            "cannot be parsed safely",
        ),
    ],
    ids=["not-svg", "bad-name", "xmlns", "unknown-prefix", "entities"],
)
def test_bad_sources_and_changes_are_400(source, change, message):
    with pytest.raises(engine.EngineError, match=message) as refused:
        engine.render(plan(op("svgdynamic", changes=[change])), source)
    assert refused.value.status == 400


def test_a_changed_href_never_reads_a_file(tmp_path):
    # librsvg loads SVG sources from a buffer, without a base directory: an <image> pointed
    # at a file (absolute path or file: URL) draws nothing.
    red = tmp_path / "red.png"
    red.write_bytes(png(scene(20, 20, colour=(255, 0, 0), square=(0, 0, 20))))
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'width="20" height="20"><rect width="20" height="20" fill="#ffffff"/>'
        b'<image id="i" width="20" height="20" xlink:href="data:,"/></svg>'
    )
    for target in (str(red), red.as_uri()):
        for attr in ("xlink:href", "href"):
            pixels = _render(svg, {"id": "i", "attr": attr, "value": target})
            assert pixels[10, 10, :3].tolist() == [255, 255, 255]
    # The same picture inline (a data: URI) is drawn: the change itself works.
    inline = "data:image/png;base64," + base64.b64encode(red.read_bytes()).decode()
    assert len(inline) < 1000
    pixels = _render(svg, {"id": "i", "attr": "xlink:href", "value": inline})
    assert pixels[10, 10, :3].tolist() == [255, 0, 0]
