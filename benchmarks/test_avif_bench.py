"""AVIF encoder effort 0-9: time and size per effort, against the chosen default and against
JPEG at equal quality, in one run.

Run: ``flock /work/notes/bench.lock .venv/bin/python -m pytest benchmarks/test_avif_bench.py -s``
(about 4 minutes on a loaded machine; ``AVIF_ROUNDS``, default 2).

Three images, each rendered through ``engine.render`` (one libvips thread, as a render
process runs):

- ``photo``: a 6000x4000 JPEG (q 90) made of four real photographs (skimage's astronaut,
  coffee, chelsea, rocket) scaled up, with film grain; rendered to 1000 px wide;
- ``graphic``: a 1200x800 PNG of flat colours (rectangles, discs, a stripe band, hard
  anti-aliased edges), rendered to 900 px;
- ``thumb``: the photo mosaic as a 1000x667 JPEG, rendered to 200 px wide.

For each image and effort: ``render`` (the whole engine.render, decode included) and
``encode`` (``engine.formats.encode`` of the same output pixels alone), best of the rounds,
interleaved (every effort once per round, after one warm-up call each); size in bytes;
SSIM of the decoded output against the unencoded pixels. Efforts 5-9 take seconds to a
minute per photo: they are encoded once and not rendered. JPEG baselines in the same
rounds: rokka's default ``jpg.quality`` 80, and the JPEG quality whose SSIM equals the
default AVIF's ("equal quality", found by bisection on the same pixels).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import pyvips

ROUNDS = int(os.environ.get("AVIF_ROUNDS", "2"))
RENDERED_EFFORTS = range(0, 5)  # 5-9: encoded once (up to a minute each on a photo)


def _mosaic() -> pyvips.Image:
    from skimage import data

    tiles = []
    for pixels in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket()):
        tile = pyvips.Image.new_from_array(np.ascontiguousarray(pixels), interpretation="srgb")
        tiles.append(tile.thumbnail_image(600, height=400, crop="centre"))
    top = tiles[0].join(tiles[1], "horizontal")
    return top.join(tiles[2].join(tiles[3], "horizontal"), "vertical")  # 1200x800


def _photo_jpeg(width: int, height: int) -> bytes:
    mosaic = _mosaic()
    image = mosaic.resize(width / mosaic.width, vscale=height / mosaic.height, kernel="lanczos3")
    grain = pyvips.Image.gaussnoise(width, height, sigma=5, mean=0)
    image = (image + grain).cast("uchar").copy(interpretation="srgb")
    return bytes(image.jpegsave_buffer(Q=90))


def _graphic_png() -> bytes:
    width, height = 1200, 800
    canvas = np.full((height, width, 3), (245, 240, 228), dtype=np.uint8)
    canvas[:, :300] = (32, 64, 160)
    canvas[500:, 300:] = (250, 190, 40)
    for i in range(12):  # a band of stripes
        canvas[100:400, 380 + i * 60 : 410 + i * 60] = (200, 30 + i * 15, 60)
    image = pyvips.Image.new_from_array(canvas, interpretation="srgb")
    for x, y, r, colour in ((600, 620, 120, (20, 140, 90)), (1000, 650, 80, (230, 60, 40))):
        image = image.draw_circle(list(colour), x, y, r, fill=True)
    # hard edges anti-aliased as a drawing program's export would be
    image = image.resize(0.5, kernel="lanczos3").resize(2.0, kernel="lanczos3")
    return bytes(image.cast("uchar").pngsave_buffer())


def _ssim(body: bytes, reference: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    got = pyvips.Image.new_from_buffer(body, "").numpy()
    return float(structural_similarity(got, reference, channel_axis=2, data_range=255))


def _best(times: dict[str, list[float]], name: str) -> float:
    return min(times[name]) * 1000


def _jpeg_q_for(ssim: float, pixels: pyvips.Image, reference: np.ndarray) -> int:
    """The lowest JPEG quality whose SSIM reaches ``ssim`` (bisection over 1..100)."""
    low, high = 1, 100
    while low < high:
        q = (low + high) // 2
        body = bytes(pixels.jpegsave_buffer(Q=q, optimize_coding=True, keep="none"))
        if _ssim(body, reference) >= ssim:
            high = q
        else:
            low = q + 1
    return low


def _case(name: str, source: bytes, width: int) -> dict[str, Any]:
    import engine
    from engine.formats import DEFAULT_AVIF_EFFORT, FORMATS, encode
    from tests.engine.conftest import op, plan

    avif = plan(op("resize", width=width), fmt="avif")
    lossless = engine.render(plan(op("resize", width=width), fmt="png"), source).body
    pixels = pyvips.Image.new_from_buffer(lossless, "").copy_memory()
    reference = pixels.numpy()
    bodies = {e: encode(pixels, FORMATS["avif"], avif.options, avif_effort=e) for e in range(10)}
    ssims = {e: _ssim(b, reference) for e, b in bodies.items()}
    equal_q = _jpeg_q_for(ssims[DEFAULT_AVIF_EFFORT], pixels, reference)
    jpegs = {q: plan(op("resize", width=width), fmt="jpg", **{"jpg.quality": q}) for q in (80,)}
    jpegs[equal_q] = plan(op("resize", width=width), fmt="jpg", **{"jpg.quality": equal_q})
    jpeg_bodies = {q: engine.render(p, source).body for q, p in jpegs.items()}

    runs: dict[str, Callable[[], object]] = {}
    for e in RENDERED_EFFORTS:
        runs[f"render e{e}"] = lambda e=e: engine.render(avif, source, avif_effort=e)
        runs[f"encode e{e}"] = lambda e=e: encode(
            pixels, FORMATS["avif"], avif.options, avif_effort=e
        )
    for q, p in jpegs.items():
        runs[f"render jpg q{q}"] = lambda p=p: engine.render(p, source)
        runs[f"encode jpg q{q}"] = lambda q=q: encode(pixels, FORMATS["jpg"], {"jpg.quality": q})
    times: dict[str, list[float]] = {key: [] for key in runs}
    for run in runs.values():  # warm up: imports, first-call set-up of each encoder
        run()
    for _ in range(ROUNDS):
        for key, run in runs.items():
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    for e in range(RENDERED_EFFORTS.stop, 10):  # once: up to a minute each on the photo
        start = time.perf_counter()
        encode(pixels, FORMATS["avif"], avif.options, avif_effort=e)
        times[f"encode e{e}"] = [time.perf_counter() - start]
    return {
        "name": name,
        "size": f"{pixels.width}x{pixels.height}",
        "bodies": bodies,
        "ssims": ssims,
        "times": times,
        "jpeg": {q: (len(b), _ssim(b, reference)) for q, b in jpeg_bodies.items()},
        "equal_q": equal_q,
    }


def _report(case: dict[str, Any], default: int) -> list[str]:
    times, bodies = case["times"], case["bodies"]
    base_size = len(bodies[default])
    base_encode = _best(times, f"encode e{default}")
    base_render = _best(times, f"render e{default}")
    lines = [
        f"\n{case['name']} -> {case['size']} (AVIF q45; default effort {default}: "
        f"{base_size} B, encode {base_encode:.1f} ms)",
        "  effort   encode ms  x default   render ms  x default    bytes  x default   SSIM",
    ]
    for e in range(10):
        encode_ms = _best(times, f"encode e{e}")
        render = f"{_best(times, f'render e{e}'):9.1f}" if f"render e{e}" in times else "        -"
        render_x = (
            f"{_best(times, f'render e{e}') / base_render:9.2f}"
            if f"render e{e}" in times
            else "        -"
        )
        lines.append(
            f"  {e:>6} {encode_ms:11.1f} {encode_ms / base_encode:10.2f} {render:>11} "
            f"{render_x:>10} {len(bodies[e]):8d} {len(bodies[e]) / base_size:10.2f} "
            f"{case['ssims'][e]:6.4f}"
        )
    for q, (size, ssim) in case["jpeg"].items():
        tag = "equal SSIM" if q == case["equal_q"] else "rokka default"
        encode_ms = _best(times, f"encode jpg q{q}")
        render_ms = _best(times, f"render jpg q{q}")
        lines.append(
            f"  jpg q{q:<3} {encode_ms:9.1f} {encode_ms / base_encode:10.2f} {render_ms:11.1f} "
            f"{render_ms / base_render:10.2f} {size:8d} {size / base_size:10.2f} {ssim:6.4f}"
            f"  ({tag})"
        )
    return lines


def test_avif_effort(capsys: pytest.CaptureFixture[str]) -> None:
    import engine
    from engine.formats import DEFAULT_AVIF_EFFORT

    engine.configure(concurrency=1)
    photo = _photo_jpeg(6000, 4000)
    cases = [
        _case("photo 6000x4000 JPEG", photo, 1000),
        _case("graphic 1200x800 PNG, flat colours", _graphic_png(), 900),
        _case("thumb from a 1000x667 JPEG", _photo_jpeg(1000, 667), 200),
    ]
    load = os.getloadavg()
    with capsys.disabled():
        print(f"\nAVIF effort, best of {ROUNDS} interleaved rounds, one libvips thread")
        print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        print(subprocess.run(["uname", "-srm"], capture_output=True, text=True).stdout.strip())
        for case in cases:
            print("\n".join(_report(case, DEFAULT_AVIF_EFFORT)))
        summary = {
            c["name"]: {
                e: [round(_best(c["times"], f"encode e{e}"), 1), len(c["bodies"][e])]
                for e in range(10)
            }
            for c in cases
        }
        print(json.dumps(summary))
    for case in cases:  # every effort made a file of the right kind and near quality
        assert all(body[4:12] == b"ftypavif" for body in case["bodies"].values())
        assert min(case["ssims"].values()) > 0.8
