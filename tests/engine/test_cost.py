"""The cost model: sizes of every image of the chain, frames, work, and the budget checks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine import Budget, ImageInfo, OverBudget
from engine.cost import Cost, Step, check, estimate, probe_work, unpredictable
from engine.geometry import Size
from tests.engine.conftest import op, plan


def _info(width: int, height: int, fmt: str = "jpg", frames: int = 1) -> ImageInfo:
    return ImageInfo(width, height, fmt, "image/" + fmt, frames > 1, frames, True, 1)


def test_every_image_of_the_chain_gets_its_size():
    cost = estimate(
        plan(op("rotate", angle=90), op("resize", width=300), fmt="jpg"),
        _info(4000, 3000),
        animate=False,
    )
    assert [(s.name, s.size.width, s.size.height) for s in cost.steps] == [
        ("decode", 4000, 3000),
        ("rotate", 3000, 4000),
        ("resize", 300, 400),
    ]
    shrunk = estimate(plan(op("resize", width=300), fmt="jpg"), _info(4000, 3000), animate=False)
    assert shrunk.steps[0].name == "decode-shrunk"
    # 4000/300 > 8: the JPEG decoder hands over 1/8 of each side.
    assert (shrunk.steps[0].size.width, shrunk.steps[0].size.height) == (500, 375)
    crop_first = estimate(
        plan(op("crop", width=2000, height=2000), op("resize", width=250), fmt="jpg"),
        _info(4000, 3000),
        animate=False,
    )
    assert [(s.name, s.size.width, s.size.height) for s in crop_first.steps] == [
        ("decode-shrunk", 500, 375),
        ("crop", 2000, 2000),
        ("resize", 250, 250),
    ]


def test_shrinking_saves_work_only_where_the_decoder_does_less():
    resize = plan(op("resize", width=300), fmt="jpg")
    work = {
        fmt: estimate(resize, _info(6000, 4000, fmt), animate=False).work
        for fmt in ("jpg", "webp", "png", "svg")
    }
    assert work["jpg"] < work["png"] / 4  # DCT scaling
    assert work["webp"] > work["png"]  # decodes every pixel, then scales
    assert work["svg"] < work["jpg"]  # rasterised at the target size


def test_frames_multiply_work_and_count_against_the_animation_budget():
    # transparent: every frame goes through libvips' GIF writer, like the still first frame
    gif = replace(_info(100, 100, "gif", frames=300), opaque=False)
    first_frame = estimate(plan(op("resize", width=100), fmt="gif"), gif, animate=False)
    moving = estimate(plan(op("resize", width=100), fmt="gif"), gif, animate=True)
    assert (first_frame.frames, moving.frames) == (1, 300)
    assert moving.work == pytest.approx(first_frame.work * 300)
    still = estimate(plan(op("resize", width=100), fmt="png"), gif, animate=False)
    with pytest.raises(OverBudget, match="300 frames"):
        check(moving, Budget(max_animation_pixels=2_000_000))
    check(still, Budget(max_animation_pixels=2_000_000))


def test_a_gif_costs_what_its_writer_costs():
    # libvips' GIF writer quantises with dithering (~1.25 s per output megapixel of a
    # photo); engine/gifwriter.py writes opaque animations below gif.quality 100 (~0.1 s).
    opaque = _info(400, 400, "gif", frames=10)
    moving = estimate(plan(op("resize", width=400), fmt="gif"), opaque, animate=True)
    lossless = estimate(
        plan(op("resize", width=400), fmt="gif", **{"gif.quality": 100}),
        opaque,
        animate=True,
    )
    see_through = estimate(
        plan(op("resize", width=400), fmt="gif"), replace(opaque, opaque=False), animate=True
    )
    assert lossless.work == pytest.approx(see_through.work)
    assert lossless.work > 8 * moving.work
    # a still 3000x3000 GIF: ~11 s of one core, past the default render work (1000 passes
    # of ~10 ms): refused before any decode, not stopped at the deadline
    still = estimate(plan(op("resize", width=3000), fmt="gif"), _info(4000, 4000), animate=False)
    with pytest.raises(OverBudget, match="too expensive"):
        check(still, Budget())
    small = estimate(plan(op("resize", width=500), fmt="gif"), _info(4000, 4000), animate=False)
    check(small, Budget())


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ((op("resize", width=9000, height=9000, mode="absolute"),), "resize makes 9000x9000"),
        ((op("rotate", angle=45), op("resize", width=100)), "rotate makes"),
        ((op("resize", width=3000), op("blur", sigma=200)), "too expensive"),
    ],
)
def test_the_first_step_past_a_budget_is_named(ops, message: str):
    cost = estimate(plan(*ops, fmt="jpg"), _info(6000, 6000), animate=False)
    with pytest.raises(OverBudget, match=message) as err:
        check(cost, Budget(max_pixels=40_000_000))
    assert err.value.status == 400


def test_upload_checks_and_unpredictable_sources():
    assert probe_work(_info(6000, 4000, "jpg")) < probe_work(_info(6000, 4000, "png")) / 4
    assert probe_work(_info(15000, 15000, "webp")) > 60  # expensive lane: decoded whole
    assert unpredictable(_info(300, 300, "svg")) and not unpredictable(_info(300, 300, "png"))


def test_quantised_png_lossless_webp_and_alpha_fallback_count_their_encode():
    """Palette quantisation (PNG with optim.immediate) and lossless WebP cost many times a
    plain save;
    a JPEG that may leave as PNG/WebP (jpg.transparency.autoformat) counts the dearer."""
    source = _info(2000, 2000, "png")

    def work(fmt: str, **options: object) -> float:
        return estimate(plan(fmt=fmt, **options), source, animate=False).work

    plain = work("png")
    assert work("png", **{"optim.immediate": True}) > plain * 2
    assert work("png", **{"optim.immediate": True, "pngquant.quality": 100}) == plain
    assert work("png", **{"optim.immediate": True, "optim.disable_all": True}) == plain
    assert work("webp", **{"webp.quality": 100}) > work("webp") * 2
    assert work("jpg", **{"jpg.transparency.autoformat": "true"}) >= work("png") > work("jpg")


def test_sharpen_on_a_downsizing_resize_counts_its_passes():
    def work(*ops):  # noqa: ANN002, ANN202
        return estimate(plan(*ops, fmt="jpg"), _info(4000, 3000), animate=False).work

    plain = work(op("resize", width=2000))
    assert work(op("resize", width=2000, sharpen=True)) > plain + 6 * 2000 * 1500 / 1e6
    # Enlarging never sharpens, so it costs nothing more.
    big = (op("resize", width=8000),)
    assert work(*big) == work(op("resize", width=8000, sharpen=True))


# rokka's output limits (10000 px a side, 100 MP), as the budget check applies them.
_ROKKA = Budget(max_pixels=100_000_000)


@pytest.mark.parametrize(
    ("size", "too_large"),
    [
        (Size(10000, 10000), False),
        (Size(10001, 10), True),
        (Size(10, 10001), True),
        (Size(1, 1), False),
    ],
)
def test_output_limits(size: Size, too_large: bool):
    cost = Cost(steps=(Step("decode", size),), frames=1, work=0.0)
    if too_large:
        with pytest.raises(OverBudget, match="output too large"):
            check(cost, _ROKKA)
    else:
        check(cost, _ROKKA)


def test_output_limit_megapixels():
    cost = estimate(
        plan(op("resize", width=10000, height=10000), dpr=10, fmt="jpg"),
        _info(100, 100),
        animate=False,
    )
    with pytest.raises(OverBudget):
        check(cost, _ROKKA)
