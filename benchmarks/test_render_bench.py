"""Render benchmark on a 24 MP JPEG: the whole Flask app vs. the bare pyvips lower bound.

Run: ``./dev bench`` (or ``.venv/bin/python -m pytest benchmarks -q``).

Cases, all producing the same 500x500 JPEG (fill + crop, quality 80, progressive):

- ``bare``: pyvips alone, shrink-on-load + fill + centre crop; no cropstack code, no HTTP.
- ``engine``: ``engine.render`` of the plan the URL parses to, with a subject area.
- ``app``: ``GET /{org}/dynamic/...`` through the Flask app (auth-free render route,
  catalog lookup, URL parsing, plan, render, headers), render cache off.
- ``app_cached``: the same request answered from the disk render cache.
- ``crop_first``: ``engine.render`` of the reverse order, a 1:1 ratio crop around the
  subject area then a resize to 500x500 (the JPEG is shrunk while decoding here too).

Prints mean times, the ratios against ``bare`` measured in the same run, and the peak RSS
of one uncached app render in a fresh subprocess (tracemalloc cannot see libvips): of the
web process and of the render process that decoded the pixels.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT, SIDE = 6000, 4000, 500
SUBJECT = {"x": 4200, "y": 900, "width": 400, "height": 400}
DYNAMIC = f"dynamic/resize-width-{SIDE}-height-{SIDE}-mode-fill--crop-width-{SIDE}-height-{SIDE}"
CROP_FIRST = (
    f"dynamic/crop-width-1-height-1-mode-ratio--resize-width-{SIDE}-height-{SIDE}/abcdef.jpg"
)
CASES = ["bare", "engine", "app", "app_cached", "crop_first"]
RESULTS: dict[str, float] = {}


def make_source() -> bytes:
    """A 6000x4000 JPEG of blurred noise (a texture libjpeg cannot compress away)."""
    import pyvips

    noise = pyvips.Image.gaussnoise(WIDTH, HEIGHT, sigma=40, mean=128)
    image = noise.bandjoin([noise.rot180(), noise.fliphor()]).gaussblur(1.0).cast("uchar")
    return bytes(image.copy(interpretation="srgb").jpegsave_buffer(Q=85))


def bare(data: bytes) -> bytes:
    """Lower bound: shrink-on-load + fill 500x500 + centre crop + the same JPEG settings."""
    import pyvips

    thumb = pyvips.Image.thumbnail_buffer(data, SIDE, height=SIDE, crop="centre")
    return bytes(thumb.jpegsave_buffer(Q=80, interlace=True, optimize_coding=True, keep="none"))


def prepare(data_dir: Path, data: bytes) -> tuple[str, str]:
    """Create an account, upload ``data`` and set the subject area; (org, render URL)."""
    from webapp import create_app

    client = create_app({"data_dir": str(data_dir), "signup": True}).test_client()
    user = client.post("/users", data=json.dumps({"email": "b@x.example", "organization": "bench"}))
    headers = {"Api-Key": user.get_json()["api_key"]}
    form = {"filedata": (io.BytesIO(data), "big.jpg")}
    uploaded = client.post("/sourceimages/bench", data=form, headers=headers)
    image_hash = uploaded.get_json()["items"][0]["hash"]
    moved = client.put(
        f"/sourceimages/bench/{image_hash}/meta/dynamic/subject_area",
        data=json.dumps(SUBJECT),
        headers=headers,
    )
    return "bench", f"/bench/{DYNAMIC}/{moved.get_json()['hash']}.jpg"


def app_client(data_dir: Path, *, cache: bool) -> Any:
    from webapp import create_app

    return create_app({"data_dir": str(data_dir), "render_cache": cache}).test_client()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from stacks.resolve import build_plan
    from stacks.url import parse_render_path

    data = make_source()
    data_dir = tmp_path_factory.mktemp("bench") / "data"
    _, url = prepare(data_dir, data)
    plan = build_plan(None, parse_render_path(url.split("/", 2)[2]))
    crop_first = build_plan(None, parse_render_path(CROP_FIRST))
    cached = app_client(data_dir, cache=True)
    assert cached.get(url).status_code == 200  # fill the cache
    return {
        "data": data,
        "data_dir": data_dir,
        "url": url,
        "plan": plan,
        "crop_first": crop_first,
        "uncached": app_client(data_dir, cache=False),
        "cached": cached,
    }


def _cases(setup: dict[str, Any]) -> dict[str, Callable[[], bytes]]:
    import engine

    meta = {"subject_area": SUBJECT}
    return {
        "bare": lambda: bare(setup["data"]),
        "engine": lambda: engine.render(setup["plan"], setup["data"], dynamic_metadata=meta).body,
        "app": lambda: setup["uncached"].get(setup["url"]).data,
        "app_cached": lambda: setup["cached"].get(setup["url"]).data,
        "crop_first": lambda: (
            engine.render(setup["crop_first"], setup["data"], dynamic_metadata=meta).body
        ),
    }


@pytest.mark.parametrize("case", CASES)
def test_render(benchmark: Any, setup: dict[str, Any], case: str) -> None:
    rounds = 50 if case == "app_cached" else 8
    body = benchmark.pedantic(_cases(setup)[case], rounds=rounds, warmup_rounds=1)
    assert body[:2] == b"\xff\xd8", body[:200]
    RESULTS[case] = benchmark.stats.stats.mean


def test_report(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert set(RESULTS) == set(CASES), "run the whole module"
    out = subprocess.run(
        [sys.executable, __file__, str(setup["data_dir"]), setup["url"]],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    memory = json.loads(out.stdout.strip().splitlines()[-1])
    with capsys.disabled():
        print(
            f"\nsource: {WIDTH}x{HEIGHT} JPEG, {len(setup['data']) / 1e6:.1f} MB -> {SIDE}x{SIDE}"
        )
        for case, mean in RESULTS.items():
            print(f"{case:>10}: mean {mean * 1000:7.1f} ms   x{mean / RESULTS['bare']:.2f} of bare")
        print(
            f"peak RSS of one uncached app render: web process {memory['peak_mb']:.0f} MB "
            f"(after imports and app set-up: {memory['base_mb']:.0f} MB), render process "
            f"{memory['render_mb']:.0f} MB"
        )


if __name__ == "__main__":
    # Subprocess entry: one uncached render through the app; report VmHWM as JSON.
    sys.path.insert(0, str(ROOT))

    def vm_hwm() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    client = app_client(Path(sys.argv[1]), cache=False)
    assert client.get("/healthz").status_code == 200
    base = vm_hwm()
    response = client.get(sys.argv[2])
    assert response.status_code == 200
    from webapp.renderpool import pool_for

    render_mb = pool_for(client.application.extensions["cropstack.settings"]).peak_bytes() / 2**20
    print(json.dumps({"peak_mb": vm_hwm(), "base_mb": base, "render_mb": render_mb}))
