"""AVIF encoder effort (the ``avif_effort`` setting): what it changes and what it keeps.

Speed and size per effort are measured in benchmarks/test_avif_bench.py; here: every effort
gives a valid AVIF whose pixels match the source within the tolerance of ``avif.quality``,
the effort reaches the encoder (other efforts make other files), and the cost model
charges a dearer effort more.
"""

from __future__ import annotations

import numpy as np
import pytest
import pyvips
from skimage import data

from engine import Budget, ImageInfo, OverBudget, plan_cost, render
from engine.cost import encode_passes, estimate
from engine.formats import DEFAULT_AVIF_EFFORT, FORMATS, encode, sniff
from tests.engine.conftest import decode, op, plan, png
from webapp.settings import load_settings


@pytest.fixture(scope="module")
def photo() -> pyvips.Image:
    """A real photograph (skimage's astronaut), 128x128: detail at every scale."""
    pixels = np.ascontiguousarray(data.astronaut()[::4, ::4])
    return pyvips.Image.new_from_array(pixels, interpretation="srgb")


def _error(body: bytes, source: pyvips.Image) -> tuple[float, float]:
    """(mean absolute difference, PSNR in dB) of the decoded body against ``source``."""
    got = decode(body).astype(float)
    want = source.numpy().astype(float)
    assert got.shape == want.shape
    mse = float(((got - want) ** 2).mean())
    return float(np.abs(got - want).mean()), 10 * np.log10(255**2 / mse)


@pytest.mark.parametrize("effort", range(10))
def test_every_effort_encodes_the_pixels_within_tolerance(photo, effort: int):
    body = encode(photo, FORMATS["avif"], {"avif.quality": 45}, avif_effort=effort)
    assert sniff(body) == "avif"
    mean_error, psnr = _error(body, photo)
    # avif.quality 45 (rokka's default) on a detailed photo: ~8 levels off on average at
    # every effort (measured 7.3-9.6); a broken encode is off by tens of levels.
    assert mean_error < 12 and psnr > 24, (effort, mean_error, psnr)


def test_the_effort_reaches_the_encoder(photo):
    bodies = {
        effort: encode(photo, FORMATS["avif"], {"avif.quality": 45}, avif_effort=effort)
        for effort in (0, DEFAULT_AVIF_EFFORT, 6)
    }
    assert len(set(bodies.values())) == 3  # each effort makes another file
    # and the same effort makes the same file (no other source of difference)
    again = encode(photo, FORMATS["avif"], {"avif.quality": 45}, avif_effort=0)
    assert again == bodies[0]
    # a higher effort spends its time on quality per byte: never much worse than effort 0
    assert _error(bodies[6], photo)[1] >= _error(bodies[0], photo)[1] - 0.5


def test_render_passes_the_effort_and_other_formats_ignore_it(photo):
    source = png(photo)
    avif = plan(op("resize", width=96), fmt="avif")
    fast = render(avif, source, avif_effort=0).body
    assert fast == render(avif, source, avif_effort=0).body
    assert fast != render(avif, source, avif_effort=6).body
    assert render(avif, source).body == render(avif, source, avif_effort=DEFAULT_AVIF_EFFORT).body
    jpg = plan(op("resize", width=96), fmt="jpg")
    assert render(jpg, source, avif_effort=0).body == render(jpg, source, avif_effort=9).body


@pytest.mark.parametrize("effort", [0, 9])
def test_lossless_keeps_every_pixel_at_any_effort(photo, effort: int):
    small = photo.crop(0, 0, 32, 32)
    body = encode(small, FORMATS["avif"], {"avif.quality": 100}, avif_effort=effort)
    assert (decode(body) == small.numpy()).all()


def _info(width: int, height: int) -> ImageInfo:
    return ImageInfo(width, height, "jpg", "image/jpeg", False, 1, True, 1)


def test_cost_counts_the_effort_for_avif_only():
    passes = [encode_passes(plan(fmt="avif"), effort) for effort in range(10)]
    assert passes == sorted(passes) and passes[0] * 100 < passes[-1]
    jpg = [encode_passes(plan(fmt="jpg"), effort) for effort in range(10)]
    assert len(set(jpg)) == 1
    resize = op("resize", width=2000)
    low = estimate(plan(resize, fmt="avif"), _info(6000, 4000), animate=False, avif_effort=0)
    high = estimate(plan(resize, fmt="avif"), _info(6000, 4000), animate=False, avif_effort=9)
    assert high.work > low.work * 10


def test_a_dear_effort_turns_a_large_avif_into_a_400_before_decoding():
    large = plan(op("resize", width=3000), fmt="avif")
    info = _info(6000, 4000)
    plan_cost(large, info, Budget())  # the default effort admits a 6 MP AVIF
    with pytest.raises(OverBudget, match="render too expensive"):
        plan_cost(large, info, Budget(), avif_effort=9)


def test_the_setting_default_is_the_engine_default():
    assert load_settings({}, environ={}).avif_effort == DEFAULT_AVIF_EFFORT


@pytest.mark.parametrize("raw", ["10", "-1", "fast", "2.5", ""])
def test_invalid_efforts_are_refused_by_name(raw: str):
    with pytest.raises(ValueError, match=r"setting avif_effort \(CROPSTACK_AVIF_EFFORT\)"):
        load_settings({}, environ={"CROPSTACK_AVIF_EFFORT": raw})
    assert load_settings({}, environ={"CROPSTACK_AVIF_EFFORT": " 7 "}).avif_effort == 7
