"""Animated GIF output (engine/gifwriter.py for opaque animations, libvips for the rest):
frames, delays, loop, pixels against the source's resized frames, and size against the
libvips writer it replaced."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

import engine
from tests.engine.conftest import op, plan
from tests.engine.motion import motion_frames, motion_gif

WIDTH, HEIGHT, FRAMES, SIDE = 160, 120, 12, 60  # scale 0.5: exact geometry
DELAYS = [40 + 10 * i for i in range(FRAMES)]  # distinct: a dropped or moved frame shows


@pytest.fixture(scope="module")
def source() -> bytes:
    return motion_gif(WIDTH, HEIGHT, FRAMES, DELAYS, loop=3)


def fill(side: int = SIDE):
    return plan(
        op("resize", width=side, height=side, mode="fill"),
        op("crop", width=side, height=side),
        fmt="gif",
    )


def frames_of(body: bytes) -> tuple[pyvips.Image, np.ndarray]:
    """The decoded animation and its frames as a float ``(n, h, w, 3)`` array."""
    image = pyvips.Image.new_from_buffer(body, "", n=-1)
    pages = image.get("n-pages")
    rgb = image.colourspace("srgb")[:3].numpy().astype(np.float32)
    return image, rgb.reshape(pages, image.height // pages, image.width, 3)


def reference(source: bytes, side: int = SIDE) -> pyvips.Image:
    """The source's decoded frames, each scaled to cover ``side`` and cut at the centre,
    as a strip in full colour (no palette)."""
    image = pyvips.Image.new_from_buffer(source, "", n=-1)
    height = image.get("page-height")
    scale = side / min(image.width, height)
    frames = []
    for i in range(image.height // height):
        frame = image.crop(0, i * height, image.width, height)[:3].resize(scale)
        frames.append(frame.crop((frame.width - side) // 2, (frame.height - side) // 2, side, side))
    strip = pyvips.Image.arrayjoin(frames, across=1).copy_memory()
    strip.set_type(pyvips.GValue.gint_type, "page-height", side)
    strip.set_type(pyvips.GValue.array_int_type, "delay", list(image.get("delay")))
    return strip


def blurred(frames: np.ndarray) -> np.ndarray:
    """A 3x3 box blur of every frame: what the eye sees of a palette's error."""
    padded = np.pad(frames, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = frames.shape[1:3]
    return sum(padded[:, y : y + h, x : x + w] for y in range(3) for x in range(3)) / 9


def test_opaque_animation_keeps_frames_delays_and_loop(source: bytes):
    out = engine.render(fill(), source)
    decoded, _ = frames_of(out.body)
    assert (out.width, out.height) == (SIDE, SIDE)
    assert decoded.get("n-pages") == FRAMES
    assert list(decoded.get("delay")) == DELAYS
    assert decoded.get("loop") == 3


def test_opaque_animation_frames_match_the_resized_source(source: bytes):
    out = engine.render(fill(), source)
    _, got = frames_of(out.body)
    want = reference(source).numpy().astype(np.float32).reshape(FRAMES, SIDE, SIDE, 3)
    for i in range(FRAMES):
        error = np.abs(got[i] - want).mean(axis=(1, 2, 3))
        # each frame is its own source frame's (in order), within a palette's error
        assert error.argmin() == i
        # measured 4.8-6.1 (libvips' dithering writer: 3.6-4.7); the frames are resized with
        # a triangle filter, which alone differs from this Lanczos 3 reference by 1.2
        # (engine/pipeline.py `_run_frames`)
        assert error[i] < 7, f"frame {i}: mean error {error[i]:.1f} of 255"
    # measured 2.75 (libvips' writer: 1.53): no banding the eye would see at this size
    assert np.abs(blurred(got) - blurred(want)).mean() < 4


def libvips_writer(strip: pyvips.Image) -> bytes:
    """What cropstack wrote before engine/gifwriter.py (engine/formats.py, gif.quality 70)."""
    return bytes(strip.gifsave_buffer(keep="none", interframe_maxerror=3.0, bitdepth=8))


def test_changing_animation_within_5_percent_of_libvips_writer(source: bytes):
    # every pixel changes every frame: each frame gets its own colour table (measured
    # -1.3% here; W4, 40 frames of 200x200, is 27% smaller: docs/performance.md)
    out = engine.render(fill(), source)
    assert len(out.body) <= 1.05 * len(libvips_writer(reference(source)))


def test_mostly_still_animation_no_larger_than_libvips_writer():
    background = motion_frames(240, 180, 1)
    pages = []
    for i in range(12):
        frame = background.copy()
        frame[60:100, 10 + 15 * i : 50 + 15 * i] = (250, 40, 40)  # a square moves across
        pages.append(frame)
    strip = pyvips.Image.new_from_array(np.concatenate(pages)).copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", 180)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [50] * 12)
    source = bytes(strip.gifsave_buffer(effort=1))
    out = engine.render(fill(90), source)
    # frames share the first frame's colours, so unchanged pixels keep their indices
    assert len(out.body) <= len(libvips_writer(reference(source, 90)))


def test_low_gif_quality_means_fewer_colours(source: bytes):
    out = engine.render(plan(op("resize", width=SIDE), fmt="gif", **{"gif.quality": 30}), source)
    _, got = frames_of(out.body)
    for frame in got:
        assert len(np.unique(frame.reshape(-1, 3), axis=0)) <= 16  # 4 bits at quality 30


def test_transparent_animation_keeps_its_transparency():
    pages = []
    for i in range(4):
        rgba = np.zeros((40, 60, 4), dtype=np.uint8)
        rgba[10:30, 10 + 8 * i : 30 + 8 * i] = (255, 0, 0, 255)  # a red square on nothing
        pages.append(pyvips.Image.new_from_array(rgba, interpretation="srgb"))
    strip = pyvips.Image.arrayjoin(pages, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 40)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [60] * 4)
    out = engine.render(plan(op("resize", width=30), fmt="gif"), bytes(strip.gifsave_buffer()))
    decoded = pyvips.Image.new_from_buffer(out.body, "", n=-1)
    assert decoded.get("n-pages") == 4 and decoded.hasalpha()
    px = decoded.numpy().reshape(4, 20, 30, 4)
    assert (px[..., 3] == 0).mean() > 0.4  # the empty part stays transparent
    assert (px[0, 10, 10] == (255, 0, 0, 255)).all()


def test_quality_100_keeps_every_frame(source: bytes):
    out = engine.render(plan(op("resize", width=SIDE), fmt="gif", **{"gif.quality": 100}), source)
    decoded, _ = frames_of(out.body)
    assert decoded.get("n-pages") == FRAMES
    assert list(decoded.get("delay")) == DELAYS
