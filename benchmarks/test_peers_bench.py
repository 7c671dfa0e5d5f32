"""cropstack beside its peers, thumbor (+ gifsicle) and ipx (sharp), in one interleaved run:
W1 (JPEG) and W4 (animated GIF).

Run: ``./dev bench -k peers -s``, or once the peers are installed (``./dev bench`` does that;
benchmarks/peers.py says where): ``.venv/bin/python -m pytest benchmarks/test_peers_bench.py
-s`` (about 4 minutes).

**W4** (issue 14's animated GIF figure): a 480x360 GIF of 40 frames with real motion and
colour (tests/engine/motion.py: drifting sine colour fields, three circling discs; every
frame differs almost everywhere; 80 ms delays, written by libvips at effort 1, ~2.6 MB)
cut to 200x200 (fill, then a centre crop):

- ``cropstack``: ``GET /{org}/dynamic/resize-width-200-height-200-mode-fill--crop-width-200-
  height-200/{hash}.gif`` against a real ``cropstack serve --workers 2`` (render cache off);
- ``thumbor``: ``GET /unsafe/200x200/w4.gif`` (thumbor's fill and centre crop, by gifsicle).

Both must answer 40 frames of 200x200; the output sizes are printed beside the times.

**W1** (benchmarks/test_w1_bench.py): 30 distinct 24 MP JPEGs, each cut to 480-530 px
(fill + crop around its subject area, JPEG quality 80), each source requested once per
case and round:

- ``bare``: the ceiling, pyvips with the best shrink-on-load (test_w1_bench.bare);
- ``cropstack``: the same server as above;
- ``thumbor``: ``/unsafe/{w}x{h}/filters:focal(...)/{file}`` (its crop centred on the
  subject area; PIL, JPEG quality 80);
- ``ipx``: ``/s_{w}x{h},q_80/{file}`` (sharp's cover with a centre crop: ipx has no focal
  point; the crop's position costs nothing either way).

Each case renders its batch with ``PEERS_STREAMS`` (default 2) concurrent clients, the
cases take turns for ``PEERS_ROUNDS`` rounds (default 2; the order rotates each round) and
the best round of each counts. thumbor runs two processes (one per core), cropstack two
workers; ipx is one Node process (sharp runs libvips on its own thread pool). Prints the
time per render, the ratios, the output sizes and the load average.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from benchmarks import peers
from benchmarks.test_load import Call, must, send, sign_up, uploaded_hash
from benchmarks.test_w1_bench import COUNT, bare, sources
from tests.engine.motion import motion_gif
from tests.realserver import running_server

ROUNDS = int(os.environ.get("PEERS_ROUNDS", "2"))
STREAMS = int(os.environ.get("PEERS_STREAMS", "2"))
W4_WIDTH, W4_HEIGHT, W4_FRAMES, W4_SIDE = 480, 360, 40, 200
W4_RENDERS = int(os.environ.get("PEERS_W4_RENDERS", "8"))  # per case and round
# Which workloads run: "w1,w4" (default), "w4" or "w1".
WORKLOADS = os.environ.get("PEERS_WORKLOADS", "w1,w4").split(",")
W4_PATH = (
    f"dynamic/resize-width-{W4_SIDE}-height-{W4_SIDE}-mode-fill"
    f"--crop-width-{W4_SIDE}-height-{W4_SIDE}"
)


def _w1_path(width: int, height: int) -> str:
    return (
        f"dynamic/resize-width-{width}-height-{height}-mode-fill"
        f"--crop-width-{width}-height-{height}-anchor-auto"
    )


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        return response.read()


def _frames(body: bytes) -> tuple[int, int, int]:
    """(frames, width, frame height) of an encoded image."""
    import pyvips

    if not body.startswith(b"GIF"):
        image = pyvips.Image.new_from_buffer(body, "")
        return 1, image.width, image.height
    image = pyvips.Image.new_from_buffer(body, "", n=-1)
    pages = image.get("n-pages")
    return pages, image.width, image.height // pages


def _timed(
    cases: dict[str, Callable[[int], bytes]], batches: list[range]
) -> tuple[dict[str, float], dict[str, list[bytes]]]:
    """Best seconds per item of each case over the rounds (one batch per round), the cases
    taking turns in a rotating order; and each case's outputs of its last round."""
    best: dict[str, float] = {}
    outputs: dict[str, list[bytes]] = {}
    names = list(cases)
    for r, batch in enumerate(batches if names else []):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            with ThreadPoolExecutor(STREAMS) as streams:
                outputs[name] = list(streams.map(cases[name], batch))
            took = (time.perf_counter() - start) / len(batch)
            best[name] = min(best.get(name, took), took)
    return best, outputs


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("peers")
    images = tmp / "images"
    images.mkdir()
    # two more sources warm up every path
    made = sources(COUNT * ROUNDS + 2) if "w1" in WORKLOADS else []
    for i, (data, *_rest) in enumerate(made):
        (images / f"w1-{i}.jpg").write_bytes(data)
    gif = motion_gif(W4_WIDTH, W4_HEIGHT, W4_FRAMES)
    (images / "w4.gif").write_bytes(gif)
    return {"tmp": tmp, "images": images, "w1": made, "w4": gif}


def test_peers(workload: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    tmp: Path = workload["tmp"]
    images: Path = workload["images"]
    made = workload["w1"]
    load_before = os.getloadavg()
    env = {"CROPSTACK_SIGNUP": "true", "CROPSTACK_RENDER_CACHE": "false"}
    with (
        running_server(tmp, env=env) as base,
        peers.thumbor(images, tmp) as thumbor,
        peers.ipx(images, tmp) as ipx,
    ):
        port = int(base.rsplit(":", 1)[1])
        tenant = sign_up(port, "peers")
        w1_urls = []
        for i, (data, area, w, h) in enumerate(made):
            image = uploaded_hash(send(port, tenant.upload(f"{i}.jpg", data))[1])
            path = f"/sourceimages/peers/{image}/meta/dynamic/subject_area"
            moved = must(port, Call("PUT", path, json.dumps(area).encode(), tenant.get("").headers))
            w1_urls.append(f"{base}/peers/{_w1_path(w, h)}/{moved['hash']}.jpg")
        w4_hash = uploaded_hash(send(port, tenant.upload("w4.gif", workload["w4"]))[1])

        def focal(i: int) -> str:
            _, area, w, h = made[i]
            right, bottom = area["x"] + area["width"], area["y"] + area["height"]
            box = f"{area['x']}x{area['y']}:{right}x{bottom}"
            return f"{thumbor}/unsafe/{w}x{h}/filters:focal({box})/w1-{i}.jpg"

        w1: dict[str, Callable[[int], bytes]] = {
            "bare": lambda i: bare(*made[i]),
            "cropstack": lambda i: _get(w1_urls[i]),
            "thumbor": lambda i: _get(focal(i)),
            "ipx": lambda i: _get(f"{ipx}/s_{made[i][2]}x{made[i][3]},q_80/w1-{i}.jpg"),
        }
        w4: dict[str, Callable[[int], bytes]] = {
            "cropstack": lambda i: _get(f"{base}/peers/{W4_PATH}/{w4_hash}.gif"),
            "thumbor": lambda i: _get(f"{thumbor}/unsafe/{W4_SIDE}x{W4_SIDE}/w4.gif"),
        }
        w1 = w1 if "w1" in WORKLOADS else {}
        w4 = w4 if "w4" in WORKLOADS else {}
        for run in [*w1.values(), *w4.values()]:  # warm up: imports, render processes
            for i in (COUNT * ROUNDS, COUNT * ROUNDS + 1):
                run(i)
        w4_best, w4_out = _timed(w4, [range(W4_RENDERS)] * ROUNDS)
        w1_best, w1_out = _timed(w1, [range(r * COUNT, (r + 1) * COUNT) for r in range(ROUNDS)])
    load_after = os.getloadavg()

    # the same geometry everywhere
    for name, bodies in w4_out.items():
        assert {_frames(b) for b in bodies} == {(W4_FRAMES, W4_SIDE, W4_SIDE)}, name
    wanted = [(1, w, h) for _, _, w, h in made[(ROUNDS - 1) * COUNT : ROUNDS * COUNT]]
    for name, bodies in w1_out.items():
        assert [_frames(b) for b in bodies] == wanted, name

    w4_size = {name: len(bodies[0]) for name, bodies in w4_out.items()}
    w1_size = {name: sum(map(len, bodies)) / len(bodies) for name, bodies in w1_out.items()}
    with capsys.disabled():
        print(f"\nload average before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    if w4_best:
        _print_w4(w4_best, w4_size, capsys)
    if w1_best:
        _print_w1(w1_best, w1_size, capsys)
    with capsys.disabled():
        print(
            json.dumps(
                {
                    "w4_ms": {k: round(v * 1000, 1) for k, v in w4_best.items()},
                    "w4_bytes": w4_size,
                    "w1_ms": {k: round(v * 1000, 1) for k, v in w1_best.items()},
                    "load": [round(load_before[0], 1), round(load_after[0], 1)],
                }
            )
        )


def _print_w4(
    best: dict[str, float], size: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        print(
            f"W4: {W4_WIDTH}x{W4_HEIGHT} GIF, {W4_FRAMES} frames -> {W4_SIDE}x{W4_SIDE} fill, "
            f"{STREAMS} streams, {W4_RENDERS} renders, best of {ROUNDS}"
        )
        for name, took in best.items():
            print(
                f"{name:>10}: {took * 1000:7.1f} ms per render  {size[name]:>8} bytes  "
                f"thumbor/{name} time {best['thumbor'] / took:.2f}x  "
                f"size {name}/thumbor {size[name] / size['thumbor']:.2f}"
            )


def _print_w1(
    best: dict[str, float], size: dict[str, float], capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        print(
            f"W1: {COUNT} distinct 24 MP JPEGs -> 480..530 px fill + crop, {STREAMS} streams, "
            f"best of {ROUNDS}"
        )
        for name, took in best.items():
            print(
                f"{name:>10}: {took * 1000:7.1f} ms per render  {size[name]:>8.0f} bytes avg  "
                f"{best['bare'] / took:.2f} of bare  "
                f"{name}/cropstack time {took / best['cropstack']:.2f}x"
            )
