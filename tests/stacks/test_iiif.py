"""IIIF Image API 3.0 parameters (stacks/iiif.py): parsing, clipping, sizes and limits."""

from __future__ import annotations

import pytest

from stacks.iiif import MAX_EDGE, IiifError, Region, info, parse, parse_region, parse_size, plan


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("full", Region(0, 0, 1000, 600)),
        ("square", Region(200, 0, 600, 600)),
        ("10,20,30,40", Region(10, 20, 30, 40)),
        ("900,500,300,300", Region(900, 500, 100, 100)),  # clipped to the image
        ("pct:10,50,20,50", Region(100, 300, 200, 300)),
        ("pct:0.5,0,99.5,100", Region(5, 0, 995, 600)),
    ],
)
def test_regions(text: str, expected: Region) -> None:
    assert parse_region(text, 1000, 600) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0,0,0,10",
        "1000,0,10,10",
        "0,600,10,10",
        "pct:100,0,10,10",
        "a,b,c,d",
        "1,2,3",
        "-1,0,10,10",
        "pct:1,2,3",
        "squared",
    ],
)
def test_bad_regions(text: str) -> None:
    with pytest.raises(IiifError):
        parse_region(text, 1000, 600)


REGION = Region(0, 0, 400, 300)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max", (400, 300)),
        ("200,", (200, 150)),
        (",150", (200, 150)),
        ("pct:50", (200, 150)),
        ("100,100", (100, 100)),
        ("!100,100", (100, 75)),
        ("!1000,150", (200, 150)),
        ("^800,", (800, 600)),
        ("^pct:200", (800, 600)),
        ("^!1000,1000", (1000, 750)),
        ("^max", (2048, 1536)),
    ],
)
def test_sizes(text: str, expected: tuple[int, int]) -> None:
    assert parse_size(text, REGION) == expected


@pytest.mark.parametrize(
    "text",
    [
        "401,",
        ",301",
        "pct:101",
        "500,300",
        "^3000,",
        "^,2100",
        "0,",
        ",",
        "!100,",
        "full",
        "pct:",
        "^",
        "abc",
    ],
)
def test_bad_sizes(text: str) -> None:
    with pytest.raises(IiifError):
        parse_size(text, REGION)


def test_max_is_capped_by_the_service_limits() -> None:
    assert parse_size("max", Region(0, 0, 10_000, 5_000)) == (MAX_EDGE, 1024)
    # maxArea (2048 x 2048) binds a square-ish region before maxWidth does
    w, h = parse_size("max", Region(0, 0, 3000, 3000))
    assert w == h == 2048


@pytest.mark.parametrize(
    "path",
    [
        "full/max/0/default",
        "full/max/0/default.tif",
        "full/max/0/bitonal.jpg",
        "full/max/!0/default.jpg",
        "full/max/361/default.jpg",
        "full/max/-90/default.jpg",
        "full/max/0",
        "full/max/0/default.jpg/extra",
    ],
)
def test_bad_requests(path: str) -> None:
    with pytest.raises(IiifError):
        parse(path, 400, 300)


def test_a_request_becomes_a_plan_of_rokka_operations() -> None:
    request = parse("100,50,200,100/100,/90/gray.png", 400, 300)
    assert (request.width, request.height, request.rotation) == (100, 50, 90.0)
    built = plan(request, 400, 300)
    assert [op.name for op in built.operations] == ["resize", "crop", "rotate", "grayscale"]
    resize, crop = built.operations[0].options, built.operations[1].options
    assert (resize["width"], resize["height"]) == (200, 150)
    assert (crop["width"], crop["height"], crop["anchor"]) == (100, 50, "50_25")
    assert built.output_format == "png"


def test_regions_past_the_anchor_limit_are_cut_from_the_corner() -> None:
    built = plan(parse("12000,11000,500,400/max/0/default.jpg", 15000, 12000), 15000, 12000)
    crops = [op.options for op in built.operations if op.name == "crop"]
    assert [(c["width"], c["height"], c["anchor"]) for c in crops] == [
        (3000, 1000, "right_bottom"),
        (500, 400, "0_0"),
    ]


def test_info_document() -> None:
    document = info("http://h/acme/_iiif/3/abc", 1000, 600)
    assert document["id"] == "http://h/acme/_iiif/3/abc"
    assert document["type"] == "ImageService3" and document["profile"] == "level1"
    assert document["tiles"] == [{"width": 512, "height": 512, "scaleFactors": [1, 2]}]
    assert document["sizes"] == [{"width": 500, "height": 300}, {"width": 1000, "height": 600}]
