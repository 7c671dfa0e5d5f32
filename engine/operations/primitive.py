"""rokka ``primitive``: the image redrawn as ``count`` translucent geometric shapes.

The method of fogleman/primitive, which rokka's operation is based on: start from the
average colour, then add one shape at a time, each the one found to lower the difference
to the image the most. For a shape, a batch of random candidates of its kind is scored,
and the best is improved by rounds of random mutations (hill climbing); a candidate's
colour is the optimal one for its pixels at :data:`ALPHA` opacity. The search runs on a
copy at most :data:`WORK_SIDE` pixels a side and is smaller than primitive's own
(:data:`CANDIDATES` random shapes and :data:`CLIMB_ROUNDS` x :data:`MUTATIONS` mutations
per shape, against primitive's ~1000 and its climb until 100 fail in a row), so its shapes
fit a little worse; in return ``count`` (at most 200) shapes cost a bounded, size-independent
search. The shapes are then drawn as vectors at the image's own size (an SVG rasterised
by librsvg), so edges are sharp whatever the size. The generator is seeded from ``count``
and ``mode``: a URL always renders the same picture.

Modes as primitive's: 0 combo (a random kind per shape, no bezier), 1 triangle,
2 rectangle, 3 ellipse, 4 circle, 5 rotated rectangle, 6 quadratic bezier (stroked),
7 rotated ellipse, 8 polygon (4 points). Mode 9 has no shape in primitive: 400.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyvips

from engine.errors import UnsupportedOperation
from engine.geometry import Size
from engine.operations.context import RenderContext, join_alpha, split_alpha, to_srgb
from engine.operations.kind import OperationKind, megapixels, parameters

WORK_SIDE = 64
CANDIDATES = 64
CLIMB_ROUNDS = 5
MUTATIONS = 32
# primitive's default shape opacity (-a 128).
ALPHA = 128 / 255
# Stroke width of bezier curves, in pixels of the working copy.
BEZIER_WIDTH = 1.0
_BEZIER_SAMPLES = 12


@dataclass(frozen=True, slots=True)
class PrimitiveParameters:
    """``count`` shapes (1-200); ``mode`` 0-8 the kind of shape (see the module docstring)."""

    count: int
    mode: int


Masks = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _rect(p: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (p[:, i : i + 1] for i in range(4))
    return (
        (xs >= np.minimum(x1, x2))
        & (xs <= np.maximum(x1, x2))
        & (ys >= np.minimum(y1, y2))
        & (ys <= np.maximum(y1, y2))
    )


def _ellipse(p: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    cx, cy, rx, ry = (p[:, i : i + 1] for i in range(4))
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1


def _circle(p: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return _ellipse(np.concatenate([p, p[:, 2:3]], axis=1), xs, ys)


def _turned(p: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cx, cy, angle = p[:, 0:1], p[:, 1:2], p[:, 4:5]
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = xs - cx, ys - cy
    return dx * cos + dy * sin, -dx * sin + dy * cos


def _rotated_rect(p: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    u, v = _turned(p, xs, ys)
    return (np.abs(u) <= p[:, 2:3]) & (np.abs(v) <= p[:, 3:4])


def _rotated_ellipse(p: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    u, v = _turned(p, xs, ys)
    return (u / p[:, 2:3]) ** 2 + (v / p[:, 3:4]) ** 2 <= 1


def _polygon(p: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Even-odd rule over the closed polygon of the points in ``p`` (x0, y0, x1, y1, ...)."""
    n = p.shape[1] // 2
    inside = np.zeros((p.shape[0], xs.shape[-1]), dtype=bool)
    for i in range(n):
        xi, yi = p[:, 2 * i : 2 * i + 1], p[:, 2 * i + 1 : 2 * i + 2]
        j = (i + 1) % n
        xj, yj = p[:, 2 * j : 2 * j + 1], p[:, 2 * j + 1 : 2 * j + 2]
        crosses = (yi > ys) != (yj > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (xj - xi) * (ys - yi) / (yj - yi) + xi
        inside ^= crosses & (xs < at)
    return inside


def _bezier(p: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Pixels within half the stroke width (plus half a pixel) of points along the curve."""
    x0, y0, x1, y1, x2, y2 = (p[:, i : i + 1] for i in range(6))
    reach = (BEZIER_WIDTH / 2 + 0.5) ** 2
    near = np.zeros((p.shape[0], xs.shape[-1]), dtype=bool)
    for t in np.linspace(0, 1, _BEZIER_SAMPLES, dtype=np.float32):
        bx = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * x1 + t**2 * x2
        by = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * y1 + t**2 * y2
        near |= (xs - bx) ** 2 + (ys - by) ** 2 <= reach
    return near


@dataclass(frozen=True, slots=True)
class Shape:
    """One kind of shape: its parameters' count, how to draw them as masks and as SVG."""

    name: str
    size: int
    masks: Masks
    points: tuple[int, ...]  # parameter indexes that are x coordinates (y follows each)
    lengths: tuple[int, ...]  # parameter indexes that are half sizes (at least 1 px)


SHAPES: dict[int, Shape] = {
    1: Shape("triangle", 6, _polygon, (0, 2, 4), ()),
    2: Shape("rectangle", 4, _rect, (0, 2), ()),
    3: Shape("ellipse", 4, _ellipse, (0,), (2, 3)),
    4: Shape("circle", 3, _circle, (0,), (2,)),
    5: Shape("rotated rectangle", 5, _rotated_rect, (0,), (2, 3)),
    6: Shape("bezier", 6, _bezier, (0, 2, 4), ()),
    7: Shape("rotated ellipse", 5, _rotated_ellipse, (0,), (2, 3)),
    8: Shape("polygon", 8, _polygon, (0, 2, 4, 6), ()),
}
_COMBO = (1, 2, 3, 4, 5, 7, 8)
_ANGLE = 4  # the angle's index in rotated shapes


def _random(kind: int, k: int, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    shape = SHAPES[kind]
    p = np.empty((k, shape.size), dtype=np.float32)
    for i in shape.points:
        if i == shape.points[0]:
            p[:, i], p[:, i + 1] = rng.uniform(0, w, k), rng.uniform(0, h, k)
        else:
            # Later points near the first, as primitive does, but at any size up to half
            # the image: the first shapes are best large.
            spread = rng.uniform(2, max(w, h) / 2, (k, 1))
            p[:, i : i + 2] = p[:, 0:2] + rng.uniform(-1, 1, (k, 2)) * spread
    for i in shape.lengths:
        p[:, i] = rng.uniform(1, max(w, h) / 4, k)
    if shape.size == 5:
        p[:, _ANGLE] = rng.uniform(0, np.pi, k)
    return _clamped(kind, p, w, h)


def _clamped(kind: int, p: np.ndarray, w: int, h: int) -> np.ndarray:
    shape = SHAPES[kind]
    for i in shape.points:
        p[:, i] = p[:, i].clip(0, w)
        p[:, i + 1] = p[:, i + 1].clip(0, h)
    for i in shape.lengths:
        p[:, i] = p[:, i].clip(1, max(w, h))
    return p


def _mutated(kind: int, best: np.ndarray, k: int, w: int, h: int, rng: np.random.Generator):  # noqa: ANN202
    """``k`` copies of ``best`` with one parameter each moved by a normal step of 1/16 of
    the image (primitive's step), angles by about 17 degrees."""
    p = np.repeat(best[None, :], k, axis=0)
    which = rng.integers(0, p.shape[1], k)
    step = rng.normal(0, max(w, h) / 16, k)
    if SHAPES[kind].size == 5:
        step = np.where(which == _ANGLE, rng.normal(0, 0.3, k), step)
    p[np.arange(k), which] += step
    return _clamped(kind, p, w, h)


@dataclass(slots=True)
class Canvas:
    """The search state on the working copy: target and current pixels (N x 3, 0-255),
    pixel centres (1 x N) and the per-pixel sums a candidate's score needs (N x 15)."""

    target: np.ndarray
    current: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    features: np.ndarray | None = None

    def score(self, kind: int, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(change of the squared error, optimal colour K x 3, masks K x N) of drawing each
        candidate of ``p`` at ALPHA opacity; a lower change is better.

        With d = current - target over a candidate's pixels, drawing colour c changes the
        error by sum(2a d (c - current) + a^2 (c - current)^2): sums over the mask of d,
        d current, current and current^2, one matrix product for the whole batch.
        """
        if self.features is None:
            cur, d = self.current, self.current - self.target
            optimal = cur + (self.target - cur) / ALPHA
            self.features = np.concatenate([optimal, d, d * cur, cur, cur**2], 1).astype(np.float32)
        masks = SHAPES[kind].masks(p, self.xs, self.ys)
        sums = masks.astype(np.float32) @ self.features
        count = masks.sum(axis=1, keepdims=True)
        n = np.maximum(count, 1).astype(np.float64)
        sums = sums.astype(np.float64)
        colour = (sums[:, 0:3] / n).clip(0, 255)
        s_d, s_dcur, s_cur, s_cur2 = (sums[:, i : i + 3] for i in (3, 6, 9, 12))
        change = 2 * ALPHA * (colour * s_d - s_dcur) + ALPHA**2 * (
            colour**2 * n - 2 * colour * s_cur + s_cur2
        )
        change = change.sum(axis=1)
        change[count[:, 0] == 0] = np.inf
        return change, colour, masks

    def draw(self, mask: np.ndarray, colour: np.ndarray) -> None:
        self.current += ALPHA * mask[:, None] * (colour[None, :] - self.current)
        self.features = None


def _search(pixels: np.ndarray, p: PrimitiveParameters, seed: bytes) -> tuple[np.ndarray, list]:
    """(background colour, [(kind, parameters, colour)]) for ``pixels`` (H x W x 3)."""
    h, w = pixels.shape[:2]
    rng = np.random.default_rng(np.frombuffer(seed, dtype=np.uint32))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    target = pixels.reshape(-1, 3).astype(np.float64)
    background = target.mean(axis=0)
    canvas = Canvas(
        target, np.repeat(background[None, :], len(target), 0), xs.ravel() + 0.5, ys.ravel() + 0.5
    )
    canvas.xs, canvas.ys = canvas.xs[None, :], canvas.ys[None, :]
    shapes = []
    for _ in range(p.count):
        kind = int(rng.choice(_COMBO)) if p.mode == 0 else p.mode
        params = _random(kind, CANDIDATES, w, h, rng)
        change, colour, masks = canvas.score(kind, params)
        best = int(np.argmin(change))
        best_p, best_change, best_colour, best_mask = (
            params[best],
            change[best],
            colour[best],
            masks[best],
        )
        for _round in range(CLIMB_ROUNDS):
            params = _mutated(kind, best_p, MUTATIONS, w, h, rng)
            change, colour, masks = canvas.score(kind, params)
            i = int(np.argmin(change))
            if change[i] < best_change:
                best_p, best_change, best_colour, best_mask = (
                    params[i],
                    change[i],
                    colour[i],
                    masks[i],
                )
        if not np.isfinite(best_change):
            continue
        canvas.draw(best_mask, best_colour)
        shapes.append((kind, best_p, best_colour))
    return background, shapes


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _svg_shape(kind: int, p: np.ndarray) -> str:
    if kind in (1, 8):
        points = " ".join(f"{_fmt(p[i])},{_fmt(p[i + 1])}" for i in range(0, len(p), 2))
        return f'<polygon points="{points}"'
    if kind == 2:
        x, y = min(p[0], p[2]), min(p[1], p[3])
        return (
            f'<rect x="{_fmt(x)}" y="{_fmt(y)}" width="{_fmt(abs(p[2] - p[0]))}" '
            f'height="{_fmt(abs(p[3] - p[1]))}"'
        )
    if kind in (3, 4):
        ry = p[3] if kind == 3 else p[2]
        return f'<ellipse cx="{_fmt(p[0])}" cy="{_fmt(p[1])}" rx="{_fmt(p[2])}" ry="{_fmt(ry)}"'
    if kind in (5, 7):
        turn = f'transform="translate({_fmt(p[0])} {_fmt(p[1])}) rotate({_fmt(np.degrees(p[4]))})"'
        if kind == 5:
            return (
                f'<rect x="{_fmt(-p[2])}" y="{_fmt(-p[3])}" width="{_fmt(2 * p[2])}" '
                f'height="{_fmt(2 * p[3])}" {turn}'
            )
        return f'<ellipse rx="{_fmt(p[2])}" ry="{_fmt(p[3])}" {turn}'
    path = f"M{_fmt(p[0])} {_fmt(p[1])} Q{_fmt(p[2])} {_fmt(p[3])} {_fmt(p[4])} {_fmt(p[5])}"
    return f'<path fill="none" stroke-width="{_fmt(BEZIER_WIDTH)}" d="{path}"'


def svg(size: Size, work: Size, background: np.ndarray, shapes: list) -> bytes:
    """The shapes (in working-copy pixels) as an SVG document of ``size`` pixels."""

    def hex_colour(c: np.ndarray) -> str:
        return "#" + "".join(f"{int(round(v)):02x}" for v in c)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size.width}" height="{size.height}" '
        f'viewBox="0 0 {work.width} {work.height}" preserveAspectRatio="none">',
        f'<rect width="{work.width}" height="{work.height}" fill="{hex_colour(background)}"/>',
        f'<g fill-opacity="{_fmt(ALPHA)}" stroke-opacity="{_fmt(ALPHA)}">',
    ]
    for kind, p, colour in shapes:
        paint = "stroke" if kind == 6 else "fill"
        parts.append(f'{_svg_shape(kind, p)} {paint}="{hex_colour(colour)}"/>')
    parts.append("</g></svg>")
    return "".join(parts).encode()


def apply(image: pyvips.Image, options: Mapping[str, Any], ctx: RenderContext) -> pyvips.Image:
    p = parameters(PrimitiveParameters, options)
    if p.mode not in (0, *SHAPES):
        raise UnsupportedOperation(
            f"operation primitive: mode {p.mode} is no shape (0 combo, 1-8 as primitive's)"
        )
    colour, alpha = split_alpha(to_srgb(image))
    scale = min(1.0, WORK_SIDE / max(colour.width, colour.height))
    small = colour.resize(scale) if scale < 1 else colour
    pixels = small.numpy()[..., :3]
    seed = hashlib.sha256(f"primitive {p.count} {p.mode}".encode()).digest()
    background, shapes = _search(pixels, p, seed)
    work = Size(pixels.shape[1], pixels.shape[0])
    drawn = pyvips.Image.svgload_buffer(
        svg(Size(colour.width, colour.height), work, background, shapes)
    )
    drawn = drawn.flatten(background=[float(v) for v in background])
    if (drawn.width, drawn.height) != (colour.width, colour.height):
        drawn = drawn.gravity("centre", colour.width, colour.height, extend="copy")
    return join_alpha(drawn.cast("uchar").copy(interpretation="srgb"), alpha)


def passes(options: Mapping[str, Any], before: Size, after: Size) -> float:
    """The search costs about half a pass per shape whatever the size (measured ~4 ms);
    librsvg fills every shape over the output, counted as a tenth of a pass per shape."""
    count = parameters(PrimitiveParameters, options).count
    return 0.5 * count + (2.0 + 0.1 * count) * megapixels(after)


KIND = OperationKind("primitive", apply, PrimitiveParameters, passes=passes)
