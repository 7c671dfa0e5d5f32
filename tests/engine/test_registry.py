"""The two registries of operations agree, and every operation's size rule is right.

stacks/operations.py declares each operation's parameters (parsing, validation, defaults,
``GET /operations``, docs/stacks.md); engine/operations declares how each renders, its size
rule and its cost rule. An operation registered on one side only would either be accepted
and then refused at render time, or be renderable but unreachable.
"""

from __future__ import annotations

from dataclasses import MISSING, fields

import pytest

import engine
from engine.operations import KINDS
from engine.sizing import output_size
from stacks.operations import OPERATIONS, describe_operations, implemented_operations
from tests.engine.conftest import op, plan, png, scene
from tests.fontfiles import block_ttf


def test_engine_renders_exactly_the_operations_stacks_accepts():
    accepted = {spec.name for spec in implemented_operations()}
    assert accepted == set(KINDS)


def test_operations_stacks_refuses_have_no_engine_kind():
    refused = {spec.name for spec in OPERATIONS.values() if not spec.implemented}
    assert refused, "rokka has operations cropstack does not render yet"
    assert not refused & set(KINDS)


def test_operations_listing_is_the_registry():
    assert set(describe_operations()) == set(KINDS)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_engine_parameters_are_the_parameters_stacks_declares(name: str):
    declared = {p.name for p in OPERATIONS[name].params} - {"enabled"}
    kind = KINDS[name]
    read = {f.name for f in fields(kind.parameters)} if kind.parameters else set()
    assert read == declared


@pytest.mark.parametrize("name", sorted(KINDS))
def test_engine_parameters_have_no_second_defaults(name: str):
    # Defaults are declared once, in stacks/operations.py, which fills every one in.
    kind = KINDS[name]
    params = fields(kind.parameters) if kind.parameters else ()
    assert all(f.default is MISSING and f.default_factory is MISSING for f in params)


def test_every_kind_is_registered_under_its_own_name():
    assert all(name == kind.name for name, kind in KINDS.items())


# One example per operation; ``exact`` is False where the size rule is an upper bound (the
# result depends on the pixels: trim cuts the flat border around the square).
EXAMPLES = {
    "resize": ((op("resize", width=123),), True),
    "crop": ((op("crop", width=16, height=9, mode="ratio", scale=70),), True),
    "rotate": ((op("rotate", angle=33),), True),
    "autorotate": ((op("autorotate", width=1, height=2),), True),
    "trim": ((op("trim"),), False),
    "blur": ((op("blur", sigma=3),), True),
    "sharpen": ((op("sharpen"),), True),
    "grayscale": ((op("grayscale"),), True),
    "sepia": ((op("sepia"),), True),
    "modulate": ((op("modulate", saturation=40),), True),
    "multiply": ((op("multiply", factor=0.5),), True),
    "alpha": ((op("alpha", mode="apply", opacity=30),), True),
    "circlemask": ((op("circlemask"),), True),
    "noop": ((op("noop"),), True),
    "composition": (
        (
            op("composition", width=450, height=50, anchor="left_top"),
            op("composition", mode="background", secondary_image="abcdef", angle=30),
            op(
                "composition",
                secondary_image="abcdef",
                width=500,
                height=40,
                resize_mode="fill",
            ),
            op("composition", secondary_image="abcdef", width=90, resize_mode="absolute"),
            op("composition", secondary_image="abcdef", resize_to_primary=True),
            op("composition", width=20, height=700, empty_primary=True, angle=10),
        ),
        True,
    ),
    "dropshadow": (
        (
            op("dropshadow", horizontal=-7, vertical=12, sigma=2.5),
            op("dropshadow", horizontal=100, sigma=1, blur_radius=3),
            op("dropshadow", sigma=0),
        ),
        True,
    ),
    "face": (
        (
            op("face", secondary_image="abcdef", leftFeature="eyeLeft", rightFeature="eyeRight"),
            op(
                "face",
                secondary_image="abcdef",
                leftFeature="mouthLeft",
                rightFeature="mouthRight",
                anchor="left_bottom",
                scale=1.5,
            ),
        ),
        True,
    ),
    "glitch": ((op("glitch", amount=10, random="x"),), True),
    "primitive": ((op("primitive", count=5, mode=4),), True),
    "svg2bitmap": ((op("svg2bitmap"),), True),
    "svgdynamic": (
        (op("svgdynamic", changes=[{"id": "r", "attr": "fill", "value": "red"}]),),
        True,
    ),
    "text": ((op("text", font="f0f0f0", text="Hello", width=90, angle=20),), True),
}
# The image the composition example names by hash (a 30x20 secondary), and the font of
# the text example.
SECONDARY = png(scene(30, 20, square=(0, 0, 10)))
RESOURCES = {
    "abcdef": engine.Resource(SECONDARY, engine.inspect(SECONDARY)),
    "f0f0f0": engine.Resource(block_ttf()),
}
IMAGES = {"abcdef": engine.Size(30, 20)}

# Operations that need a source of their own kind (the others get a PNG of the scene).
SVG_SCENE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300">'
    b'<rect id="r" x="300" y="40" width="40" height="40" fill="blue"/></svg>'
)
SOURCES = {"svgdynamic": SVG_SCENE, "svg2bitmap": SVG_SCENE}
# Dynamic metadata of the source, for operations that read it (face: its landmarks).
LANDMARKS = {"eyeLeft": (150, 100), "eyeRight": (210, 110), "mouthLeft": (160, 180)}
METADATA = {
    "face": {
        "detection_eyemouth": {
            "faces": [
                {name: {"x": x, "y": y} for name, (x, y) in LANDMARKS.items()}
                | {"mouthRight": {"x": 200, "y": 182}}
            ]
        }
    }
}


def test_every_operation_has_a_size_example():
    assert set(EXAMPLES) == set(KINDS)


@pytest.mark.parametrize("dpr", [1.0, 2.0])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_predicted_size_is_the_rendered_size(name: str, dpr: float):
    ops, exact = EXAMPLES[name]
    # After a resize too, where pixel-valued options become dpr-scaled.
    for lead in ((), (op("resize", width=200),)):
        p = plan(*lead, *ops, dpr=dpr)
        source = SOURCES.get(name) or png(scene(400, 300, square=(300, 40, 40)))
        predicted = output_size(p, engine.Size(400, 300), IMAGES)
        out = engine.render(p, source, resources=RESOURCES, dynamic_metadata=METADATA.get(name))
        if exact:
            assert (out.width, out.height) == (predicted.width, predicted.height)
        else:
            assert out.width <= predicted.width and out.height <= predicted.height
