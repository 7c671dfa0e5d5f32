"""The operation table: every rokka operation cropstack knows, declared once.

This table alone drives URL parsing, stack-JSON validation, default filling and the
``GET /operations`` listing. Ranges and defaults follow rokka-api.md §3 (the 2026 docs
where they differ from the 2019 recording); where rokka publishes none, the choice is
cropstack's and is listed in docs/stacks.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from stacks.errors import NotImplementedOperation, StackError, UnknownOperation
from stacks.values import HEX_COLOR, NO_DEFAULT, Kind, Param, shown, variables_text

# Crop anchor grammar from rokka's API pattern, anchored so that it must match the whole
# value: a keyword, or X_Y (X = left|center|right|0..10000 px, Y = top|center|bottom|px).
ANCHOR_PATTERN = (
    r"^(auto|subjectarea|croparea|smart|face"
    r"|(left|center|right|0|[1-9][0-9]{0,3}|10000)[_-](top|center|bottom|0|[1-9][0-9]{0,3}|10000))$"
)
# The face operation's anchor: a point of its secondary image, so X_Y only (no area keywords).
FACE_ANCHOR_PATTERN = (
    r"^(left|center|right|0|[1-9][0-9]{0,3}|10000)[_-](top|center|bottom|0|[1-9][0-9]{0,3}|10000)$"
)
# The face landmarks cropstack's detection finds (engine/landmarks.py FEATURES; a test
# checks both agree), in rokka's (AWS Rekognition's) spelling.
FACE_FEATURES = ("eyeLeft", "eyeRight", "mouthLeft", "mouthRight", "mouthUp", "mouthDown")
AREA_PATTERN = r"^[a-zA-Z0-9_]+$"
# Text to write: 1-1000 characters (control characters are refused for every string).
TEXT_PATTERN = r"^.{1,1000}$"
# A stored stack's name (stacks.url.STACK_NAME), for composition's secondary_stack.
STACK_NAME_PATTERN = r"^[A-Za-z0-9_\-]{1,100}$"
# secondary_stack_variables: rokka sends them "encoded as URL query parameters", name=value
# pairs joined by &; names as stack variables, values without & = and control characters.
_PAIR = r"[A-Za-z0-9_]{1,100}=[^&=]{0,1000}"
STACK_VARIABLES_PATTERN = rf"^{_PAIR}(&{_PAIR}){{0,49}}$"

# Upper bound on operations in one plan (basestack + stack, or a dynamic URL): a render
# URL is untrusted input, and every operation costs a full pass over the pixels.
MAX_OPERATIONS = 50

# At most this many attribute changes in one svgdynamic operation (each value at most
# MAX_OBJECT_TEXT characters): the SVG grows by at most about 100 KB.
MAX_SVG_CHANGES = 100

ADDFRAMES_REASON = (
    "rokka documents it as experimental and does not say what the frames parameter holds, "
    "so there is nothing to reproduce faithfully"
)

ENABLED = Param(
    "enabled", Kind.BOOLEAN, "If false, the operation is skipped when rendering.", default=True
)


@dataclass(frozen=True, slots=True)
class OperationSpec:
    """One operation: its parameters, constraints and whether cropstack renders it.

    ``required`` parameters must all be given; of ``one_of`` at least one must be given.
    Every spec's ``params`` ends with ``enabled``. ``why`` says why an operation that
    is not ``implemented`` cannot be rendered (part of its 400 message).
    """

    name: str
    description: str
    params: tuple[Param, ...] = ()
    required: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()
    implemented: bool = True
    why: str = ""  # why a known operation is not implemented (added to its 400)
    # a rule between parameters, run on the completed options (raises StackError)
    check: Callable[[Mapping[str, Any]], None] | None = None

    def param(self, key: str) -> Param:
        """The parameter called ``key``, or a StackError naming operation and parameter."""
        for param in self.params:
            if param.name == key:
                return param
        raise StackError(
            f"operation {self.name}: unknown parameter {shown(key)}",
            operation=self.name,
            parameter=key,
        )

    def options_from_text(self, pairs: Mapping[str, str]) -> dict[str, Any]:
        """Convert URL ``key -> text`` pairs; only the given keys are returned."""
        return {
            key: self.param(key).from_text(text, operation=self.name) for key, text in pairs.items()
        }

    def options_from_json(self, options: Any) -> dict[str, Any]:
        """Validate a stack-JSON ``options`` object; only the given keys are returned."""
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise StackError(
                f"operation {self.name}: options must be an object", operation=self.name
            )
        return {
            key: self.param(key).from_json(value, operation=self.name)
            for key, value in options.items()
        }

    def complete(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter with defaults filled in (``None`` when unset without default).

        Raises StackError when a required or one-of parameter is missing.
        """
        for key in self.required:
            if given.get(key) is None:
                raise StackError(
                    f"operation {self.name}: parameter {key} is required",
                    operation=self.name,
                    parameter=key,
                )
        if self.one_of and all(given.get(key) is None for key in self.one_of):
            raise StackError(
                f"operation {self.name}: at least one of {', '.join(self.one_of)} is required",
                operation=self.name,
                parameter=self.one_of[0],
            )
        out = {
            p.name: given[p.name] if p.name in given else (p.default if p.has_default else None)
            for p in self.params
        }
        for p in self.params:
            if p.kind is Kind.VARIABLES:
                # a plan holds one form: the query text the web layer hands to the stack
                out[p.name] = variables_text(out[p.name])
        if self.check is not None:
            self.check(out)
        return out

    def describe(self) -> dict[str, Any]:
        """The ``GET /operations`` entry for this operation."""
        out: dict[str, Any] = {"properties": {p.name: p.describe() for p in self.params}}
        if self.one_of:
            out["oneOf"] = list(self.one_of)
        else:
            out["required"] = list(self.required)
        out["description"] = self.description
        return out


def _op(
    name: str,
    description: str,
    *params: Param,
    required: tuple[str, ...] = (),
    one_of: tuple[str, ...] = (),
    check: Callable[[Mapping[str, Any]], None] | None = None,
) -> OperationSpec:
    return OperationSpec(name, description, (*params, ENABLED), required, one_of, check=check)


def _face_check(options: Mapping[str, Any]) -> None:
    """Two features make a line to align to; one feature twice makes none."""
    left, right = options.get("leftFeature"), options.get("rightFeature")
    if isinstance(left, str) and left == right:
        raise StackError(
            f"operation face: leftFeature and rightFeature are both {left}; the secondary is "
            "aligned to the line between two different features",
            operation="face",
            parameter="rightFeature",
        )


def _composition_check(options: Mapping[str, Any]) -> None:
    """``cache`` keeps a rendered secondary stack; there is nothing else to keep."""
    if options.get("cache") and options.get("secondary_stack") is None:
        raise StackError(
            "operation composition: cache needs secondary_stack (it keeps the secondary "
            "stack's render in the render cache; a secondary_image or colour box is not "
            "rendered)",
            operation="composition",
            parameter="cache",
        )


def _later(name: str, description: str, why: str = "") -> OperationSpec:
    """A rokka operation cropstack recognises but does not render (parse-time 400)."""
    return OperationSpec(name, description, (ENABLED,), implemented=False, why=why)


def _int(name: str, low: int, high: int, default: Any = NO_DEFAULT, text: str = "") -> Param:
    return Param(name, Kind.INTEGER, text, default, minimum=low, maximum=high)


def _num(
    name: str, low: float, high: float | None, default: Any = NO_DEFAULT, text: str = ""
) -> Param:
    return Param(name, Kind.NUMBER, text, default, minimum=low, maximum=high)


def _bool(name: str, default: bool, text: str) -> Param:
    return Param(name, Kind.BOOLEAN, text, default)


def _enum(name: str, values: tuple[str, ...], default: Any, text: str) -> Param:
    return Param(name, Kind.STRING, text, default, values=values)


def _color(name: str, default: str | None, text: str) -> Param:
    return Param(name, Kind.STRING, text, default, pattern=HEX_COLOR)


_TABLE: tuple[OperationSpec, ...] = (
    _op(
        "resize",
        "Resize the image to width x height pixels (times the dpr stack option).",
        _int("width", 1, 10000, text="Target width in pixels."),
        _int("height", 1, 10000, text="Target height in pixels."),
        _enum(
            "mode",
            ("box", "absolute", "fill"),
            "box",
            "box: fit inside; absolute: exact size, ignoring aspect ratio; fill: cover the box.",
        ),
        _bool("upscale", True, "Allow the result to be bigger than the source."),
        _bool("upscale_dpr", True, "With dpr, allow dpr times the size even if upscale is false."),
        _bool("sharpen", False, "Sharpen after downsizing, if the image entropy is above 5 bits."),
        one_of=("width", "height"),
    ),
    _op(
        "crop",
        "Cut a width x height box out of the image, placed by anchor or subject area.",
        _int("width", 1, 99999, text="Crop width in pixels (a ratio part in ratio mode)."),
        _int("height", 1, 99999, text="Crop height in pixels (a ratio part in ratio mode)."),
        Param(
            "anchor",
            Kind.STRING,
            "Where to crop: auto, subjectarea, croparea, smart, face or X_Y.",
            "auto",
            pattern=ANCHOR_PATTERN,
        ),
        Param(
            "fallback",
            Kind.STRING,
            "Anchor used when no subject area is found.",
            "center_center",
            pattern=ANCHOR_PATTERN,
        ),
        _enum(
            "mode",
            ("absolute", "ratio", "box", "area"),
            "absolute",
            "absolute: pixels; ratio: largest box of that ratio; box/area: use the subject area.",
        ),
        _num("scale", 0, 100, 100, "Scale the crop box to this percentage."),
        _num("movearea_x", -100, 100, 0, "Move the subject area by this percent horizontally."),
        _num("movearea_y", -100, 100, 0, "Move the subject area by this percent vertically."),
        Param(
            "area",
            Kind.STRING,
            "Name of a multi_areas entry to use as subject or crop area.",
            None,
            pattern=AREA_PATTERN,
        ),
        required=("width", "height"),
    ),
    _op(
        "autorotate",
        "Apply EXIF orientation; with width and height, rotate 90 degrees to match that box.",
        _int("width", 1, 10000, text="Width of the box whose orientation to match."),
        _int("height", 1, 10000, text="Height of the box whose orientation to match."),
        _enum(
            "rotation_direction",
            ("clockwise", "counterclockwise"),
            None,
            "Direction of the 90 degree rotation.",
        ),
    ),
    _op(
        "rotate",
        "Rotate clockwise by angle degrees, filling the corners with the background.",
        _num("angle", -360, 360, text="Clockwise angle in degrees, fractional allowed."),
        _color("background_color", "FFFFFF", "Background colour, hex RRGGBB without #."),
        _num("background_opacity", 0, 100, 0, "Background opacity in percent (0 transparent)."),
        required=("angle",),
    ),
    _op(
        "blur",
        "Gaussian blur.",
        _num("sigma", 0, 100, 4, "Standard deviation of the Gaussian, in pixels."),
        _int("radius", 0, 500, 0, "Deprecated; accepted and ignored."),
    ),
    _op("grayscale", "Convert to grayscale."),
    _op("sepia", "Apply a sepia tone."),
    _op(
        "trim",
        "Remove a uniform border.",
        _num("fuzzy", 0, 100, 0, "Colour tolerance in percent when finding the border."),
    ),
    _op("noop", "Deprecated! Use an empty stack operations collection to get the same behaviour"),
    _op(
        "alpha",
        "Work with the alpha channel.",
        _enum(
            "mode",
            ("mask", "extract", "remove", "apply"),
            "mask",
            "mask: alpha as image; extract: alpha as grayscale; remove: drop; apply: set opacity.",
        ),
        _int("opacity", 0, 100, 50, "Opacity in percent for mode apply."),
    ),
    _op(
        "modulate",
        "Change brightness, saturation and hue.",
        _int("brightness", 0, 500, 100, "Brightness in percent (100 = unchanged)."),
        _int("saturation", 0, 500, 100, "Saturation in percent (100 = unchanged)."),
        _int("hue", 0, 360, 0, "Hue rotation in degrees."),
    ),
    _op(
        "sharpen",
        "Unsharp masking (libvips sharpen parameters).",
        _num("m1", 0, 100, 0.4, "Slope for flat areas."),
        _num("m2", 0, 100, 0.8, "Slope for jaggy areas."),
        _num("sigma", 0.1, 10, 0.7, "Sigma of the Gaussian mask, in pixels."),
        _num("x1", 0, 100, 2.0, "Threshold between flat and jaggy areas."),
        _num("y2", 0, 100, 10.0, "Maximum brightening."),
        _num("y3", 0, 100, 20.0, "Maximum darkening."),
    ),
    _op(
        "multiply",
        "Multiply every pixel by a factor or a colour.",
        _num("factor", 0, 1, 0.96, "Multiplication factor."),
        _color("factor_color", None, "Multiply by this hex colour instead (wins over factor)."),
    ),
    _op("circlemask", "Cut the largest centred circle; outside becomes transparent."),
    _op(
        "composition",
        "Put a secondary image or a colour box behind (foreground) or in front of (background)"
        " the image; the canvas is the larger of both, never smaller than the image.",
        _enum(
            "mode",
            ("foreground", "background"),
            "foreground",
            "foreground: the image in front of the secondary (canvas, letterbox); "
            "background: the secondary in front of the image (watermark).",
        ),
        _int("width", 1, 10000, text="Width of the secondary, px (default: the image's)."),
        _int("height", 1, 10000, text="Height of the secondary, px (default: the image's)."),
        _enum(
            "resize_mode",
            ("box", "absolute", "fill"),
            "box",
            "How a secondary image is resized to width x height (as resize's mode).",
        ),
        _bool("resize_to_primary", False, "Resize the secondary image to the image's size."),
        Param(
            "anchor",
            Kind.STRING,
            "Where the smaller of image and secondary sits on the canvas (crop anchor syntax).",
            "center_center",
            pattern=ANCHOR_PATTERN,
        ),
        _color("secondary_color", "000000", "Colour of the box when no secondary_image is set."),
        _int("secondary_opacity", 0, 100, 100, "Opacity of the secondary in percent (0 = none)."),
        Param(
            "secondary_image",
            Kind.IMAGE_HASH,
            "Hash of an image of the same organization to use as the secondary.",
            None,
        ),
        Param(
            "secondary_stack",
            Kind.STRING,
            "Name of a stack of the organization the secondary is rendered through.",
            None,
            pattern=STACK_NAME_PATTERN,
        ),
        Param(
            "secondary_stack_variables",
            Kind.VARIABLES,
            "Stack variables for secondary_stack: an object ({\"w\": 300, \"t\": \"hi\"}; "
            "in expressions, an object of expressions) or URL query parameters (w=300&t=hi).",
            None,
            pattern=STACK_VARIABLES_PATTERN,
        ),
        _num("angle", -360, 360, 0, "Rotate the secondary clockwise by this many degrees."),
        _bool(
            "empty_primary",
            False,
            "Leave the image out: the result is the secondary alone (rokka's demos).",
        ),
        _bool(
            "cache",
            False,
            "Render the secondary_stack once into the render cache and reuse that render for "
            "every render with the same secondary (stack, variables, image).",
        ),
        check=_composition_check,
    ),
    _op(
        "dropshadow",
        "Add a drop shadow behind the image's shape; the canvas grows to hold it.",
        _int("horizontal", -100, 100, 0, "Horizontal offset of the shadow, px (+ = right)."),
        _int("vertical", -100, 100, 0, "Vertical offset of the shadow, px (+ = down)."),
        _int("opacity", 0, 100, 100, "Opacity of the shadow in percent (0 = invisible)."),
        _num("sigma", 0, 10000, 0.5, "Standard deviation of the shadow's Gaussian blur, px."),
        _num(
            "blur_radius",
            0,
            10000,
            0,
            "How far the blur may spread, px (0: three sigma, as far as it is visible).",
        ),
        _color("color", "000000", "Shadow colour, hex RRGGBB without #."),
    ),
    _op(
        "text",
        "Write text in an uploaded TTF/OTF font onto the image; the image keeps its size.",
        Param(
            "font",
            Kind.FILE_HASH,
            "Hash (or short hash) of a TTF/OTF font uploaded as a source image.",
        ),
        Param(
            "text",
            Kind.STRING,
            "The text to write (at most 1000 characters).",
            pattern=TEXT_PATTERN,
        ),
        _num("size", 1, 1000, 16, "Font size in pixels."),
        _color("color", "000000", "Text colour, hex RRGGBB without #."),
        _int("opacity", 0, 100, 100, "Opacity of the text in percent (0 transparent)."),
        _num("angle", -360, 360, 0, "Clockwise rotation of the text in degrees."),
        Param(
            "anchor",
            Kind.STRING,
            "Where to place the text: X_Y pixels of its top-left corner, left|center|right_"
            "top|center|bottom, or an area keyword (centres the text on that area).",
            "center_center",
            pattern=ANCHOR_PATTERN,
        ),
        _int("width", 1, 10000, None, "Width of the text box in pixels: lines wrap there."),
        _int(
            "height",
            1,
            10000,
            None,
            "Height of the text box in pixels: text is centred in it, cut off if taller.",
        ),
        _int("spacing", 0, 1000, 0, "Extra space between lines, in pixels."),
        _enum(
            "align",
            ("left", "centre", "right"),
            "left",
            "How lines are aligned within the width (when width is given).",
        ),
        _bool(
            "resize_to_box",
            False,
            "With width and height: choose the font size so the whole text fills that box.",
        ),
        required=("font", "text"),
    ),
    _op(
        "primitive",
        "Redraw the image as count translucent geometric shapes (the method of "
        "fogleman/primitive, with a smaller search).",
        _int("count", 1, 200, 20, "How many shapes."),
        _int(
            "mode",
            0,
            9,
            0,
            "Kind of shape: 0 combo, 1 triangle, 2 rectangle, 3 ellipse, 4 circle, "
            "5 rotated rectangle, 6 bezier, 7 rotated ellipse, 8 polygon (9: none, refused).",
        ),
    ),
    _op(
        "glitch",
        "Glitch effect: bytes of the image's JPEG data are corrupted, the way databending does.",
        _int("amount", 0, 10, 4, "How much to glitch (0 = not at all)."),
        Param(
            "random",
            Kind.STRING,
            "Any text: another text gives another glitch, the same text the same one.",
            None,
            pattern=r"^.{0,256}$",
        ),
    ),
    _later("addframes", "Add frames to an animation.", ADDFRAMES_REASON),
    _op(
        "face",
        "Put a secondary image onto every detected face, scaled and turned to the line "
        "between two of its landmarks (needs detection_face metadata).",
        Param(
            "secondary_image",
            Kind.IMAGE_HASH,
            "Hash of an image of the same organization to put onto the faces.",
        ),
        _enum(
            "leftFeature",
            FACE_FEATURES,
            NO_DEFAULT,
            "The landmark the secondary's left side aligns to (image left, e.g. eyeLeft).",
        ),
        _enum(
            "rightFeature",
            FACE_FEATURES,
            NO_DEFAULT,
            "The landmark the secondary's right side aligns to (e.g. eyeRight).",
        ),
        Param(
            "anchor",
            Kind.STRING,
            "Which point of the secondary sits on the features: left|center|right (on "
            "leftFeature, their midpoint, rightFeature) _ top|center|bottom, or X_Y pixels "
            "of the secondary put on leftFeature.",
            "center_center",
            pattern=FACE_ANCHOR_PATTERN,
        ),
        _num(
            "scale",
            0.01,
            10,
            1.0,
            "Width of the secondary in units of the distance between the two features.",
        ),
        required=("secondary_image", "leftFeature", "rightFeature"),
        check=_face_check,
    ),
    _op(
        "svgdynamic",
        "Change attributes of elements (by id) of an SVG source image before it is rasterised.",
        Param(
            "changes",
            Kind.OBJECT_LIST,
            "Changes in order: id (of the element), attr (the attribute), value (its new value).",
            maximum=MAX_SVG_CHANGES,
            keys=("id", "attr", "value"),
        ),
        required=("changes",),
    ),
    _op(
        "svg2bitmap",
        "Rasterise an SVG source. cropstack rasterises every SVG with librsvg (no browser "
        "engine), so the result is the one without this operation.",
    ),
)

OPERATIONS: Mapping[str, OperationSpec] = MappingProxyType({spec.name: spec for spec in _TABLE})


def lookup_operation(name: str) -> OperationSpec:
    """The implemented operation ``name``.

    Raises ``NotImplementedOperation`` for rokka operations cropstack does not render yet
    and ``UnknownOperation`` for anything else (both status 400).
    """
    spec = OPERATIONS.get(name)
    if spec is None:
        raise UnknownOperation(f"unknown operation {shown(name)}", operation=name)
    if not spec.implemented:
        why = f": {spec.why}" if spec.why else ""
        raise NotImplementedOperation(f"operation {name} is not implemented{why}", operation=name)
    return spec


def implemented_operations() -> tuple[OperationSpec, ...]:
    """The specs cropstack renders, in table order."""
    return tuple(spec for spec in _TABLE if spec.implemented)


def describe_operations() -> dict[str, Any]:
    """The ``GET /operations`` body; lists implemented operations only."""
    return {spec.name: spec.describe() for spec in implemented_operations()}


@dataclass(frozen=True, slots=True)
class OperationItem:
    """An operation as the user wrote it: a known name and the *given* options only.

    Options are validated but defaults are not filled; that happens when a plan is built,
    so stored stacks echo back exactly what was sent.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # parameter -> expression text of the "expressions" field (syntax-checked), evaluated
    # per render; wins over an option of the same name. A VARIABLES parameter may have an
    # object of variable name -> expression text instead.
    expressions: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # parameter -> an option value written as an expression ("$w", "[$w * 2]"), as written
    written: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "expressions", MappingProxyType(dict(self.expressions)))
        object.__setattr__(self, "written", MappingProxyType(dict(self.written)))

    def effective_expressions(self) -> dict[str, Any]:
        """Parameter -> expression to evaluate: option texts, then the expressions field."""
        out = {key: _unbracket(text) for key, text in self.written.items()}
        out.update(self.expressions)
        return out


def _unbracket(text: str) -> str:
    stripped = text.strip()
    return stripped[1:-1] if stripped.startswith("[") and stripped.endswith("]") else text
