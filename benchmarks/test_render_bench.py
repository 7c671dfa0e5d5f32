"""Render benchmark: engine.render vs. the bare pyvips lower bound on a 24 MP JPEG.

Run: /work/main/.venv/bin/python -m pytest benchmarks -q
Prints mean times, the ratio engine/bare (goal <= 1.3) and peak RSS per case, each case
measured in a fresh subprocess (tracemalloc cannot see libvips' allocations).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

WIDTH, HEIGHT, SIDE = 6000, 4000, 500
SUBJECT = {"subject_area": {"x": 4200, "y": 900, "width": 400, "height": 400}}
RESULTS: dict[str, float] = {}


def make_source(path: Path) -> bytes:
    """A 6000x4000 JPEG of blurred noise (a texture libjpeg cannot compress away)."""
    import pyvips

    noise = pyvips.Image.gaussnoise(WIDTH, HEIGHT, sigma=40, mean=128)
    image = noise.bandjoin([noise.rot180(), noise.fliphor()]).gaussblur(1.0).cast("uchar")
    data = bytes(image.copy(interpretation="srgb").jpegsave_buffer(Q=85))
    path.write_bytes(data)
    return data


def bare(data: bytes) -> bytes:
    """Lower bound: shrink-on-load + fill 500x500 + centre crop + the same JPEG settings."""
    import pyvips

    thumb = pyvips.Image.thumbnail_buffer(data, SIDE, height=SIDE, crop="centre")
    return bytes(thumb.jpegsave_buffer(Q=80, interlace=True, optimize_coding=True, keep="none"))


def engine_plan() -> Any:
    from stacks.plan import Operation, RenderPlan

    resize = {
        "width": SIDE,
        "height": SIDE,
        "mode": "fill",
        "upscale": True,
        "upscale_dpr": True,
        "sharpen": False,
    }
    crop = {
        "width": SIDE,
        "height": SIDE,
        "anchor": "auto",
        "fallback": "center_center",
        "mode": "absolute",
        "scale": 100,
        "movearea_x": None,
        "movearea_y": None,
        "area": None,
    }
    options = {
        "jpg.quality": 80,
        "interlacing.mode": "plane",
        "dpr": 1.0,
        "jpg.transparency.color": "FFFFFF",
    }
    return RenderPlan(
        operations=(Operation("resize", resize), Operation("crop", crop)),
        options=options,
        output_format="jpg",
    )


def with_engine(data: bytes) -> bytes:
    import engine

    return engine.render(engine_plan(), data, dynamic_metadata=SUBJECT).body


CASES = {"bare": bare, "engine": with_engine}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    import engine

    engine.configure(concurrency=1)
    path = tmp_path_factory.mktemp("bench") / "source.jpg"
    return path, make_source(path)


@pytest.mark.parametrize("case", list(CASES))
def test_render(benchmark: Any, source: tuple[Path, bytes], case: str) -> None:
    _, data = source
    body = benchmark.pedantic(CASES[case], args=(data,), rounds=8, warmup_rounds=1)
    assert body[:2] == b"\xff\xd8"
    RESULTS[case] = benchmark.stats.stats.mean


def _peak_rss(case: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, case, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_report(source: tuple[Path, bytes], capsys: pytest.CaptureFixture[str]) -> None:
    path, data = source
    assert set(RESULTS) == set(CASES), "run the whole module"
    memory = {case: _peak_rss(case, path) for case in CASES}
    ratio = RESULTS["engine"] / RESULTS["bare"]
    with capsys.disabled():
        print(f"\nsource: {WIDTH}x{HEIGHT} JPEG, {len(data) / 1e6:.1f} MB")
        for case in CASES:
            m = memory[case]
            print(
                f"{case:>7}: mean {RESULTS[case] * 1000:.1f} ms, peak RSS {m['peak_mb']:.0f} MB "
                f"(baseline after import {m['base_mb']:.0f} MB)"
            )
        print(f"ratio engine/bare: {ratio:.2f} (goal <= 1.3)")
    assert ratio <= 1.3


if __name__ == "__main__":
    # Subprocess entry: run one case once and report peak RSS (VmHWM) as JSON.
    sys.path.insert(0, str(Path(__file__).parent.parent))

    def vm_hwm() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    import engine

    engine.configure(concurrency=1)
    case_name, source_path = sys.argv[1], Path(sys.argv[2])
    payload = source_path.read_bytes()
    base = vm_hwm()
    CASES[case_name](payload)
    print(json.dumps({"peak_mb": vm_hwm(), "base_mb": base}))
