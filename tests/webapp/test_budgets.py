"""Hostile render URLs and files against the budgets, the deadline and the render processes.

Each test answers "what does one anonymous request cost?": refused from geometry (400),
refused from the header (422), or stopped at the deadline (503) with its process killed,
and the render processes' peak memory stays under the stated budget.
"""

from __future__ import annotations

import io
import os
import signal
import time

import pytest
import pyvips
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Account
from tests.webapp.images import gif, jpeg, png_header_only
from webapp import create_app, renderpool
from webapp.renderpool import pool_for

# What a render process may reach with the default budgets (docs/security.md).
MEMORY_BUDGET = 512 * 1024 * 1024


def _app(tmp_path, **settings: object) -> tuple[Flask, FlaskClient, Account]:
    app = create_app({"data_dir": str(tmp_path / "d"), **settings})
    client = app.test_client()
    return app, client, Account(client, "acme", "admin@acme.example")


def _upload(account: Account, data: bytes, name: str):
    form = {"filedata": (io.BytesIO(data), name)}
    return account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )


def _hash(account: Account, data: bytes, name: str) -> str:
    response = _upload(account, data, name)
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.get_json()["items"][0]["hash"]


def _error(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == status
    return body["error"]["message"]


def _lossless_webp(side: int) -> bytes:
    return pyvips.Image.black(side, side, bands=3).webpsave_buffer(lossless=True)


@pytest.fixture
def hostile(tmp_path) -> tuple[Flask, FlaskClient, Account]:
    return _app(tmp_path)


def test_intermediate_images_are_budgeted_not_only_the_output(hostile):
    _, client, account = hostile
    image = _hash(account, jpeg(300, 200), "a.jpg")
    # The output is 100x100, but the rotations make 14143x14143 then 20000x20000 px.
    url = (
        "/acme/dynamic/resize-width-7000-height-7000-mode-absolute--rotate-angle-45"
        f"--rotate-angle-45--resize-width-100-height-100-mode-absolute/{image}.jpg"
    )
    message = _error(client.get(url), 400)
    assert "rotate makes 9899x9899" in message
    # The same chain inside the budget renders.
    small = url.replace("7000", "700")
    assert client.get(small).status_code == 200


def test_output_side_and_dpr_are_budgeted(hostile):
    _, client, account = hostile
    image = _hash(account, jpeg(300, 200), "a.jpg")
    url = f"/acme/dynamic/resize-width-2000-height-2000--options-dpr-10/{image}.jpg"
    assert "output too large" in _error(client.get(url), 400)


def test_work_budget_refuses_huge_blurs_before_decoding(hostile):
    _, client, account = hostile
    image = _hash(account, jpeg(300, 200), "a.jpg")
    url = f"/acme/dynamic/resize-width-7000-height-7000-mode-absolute--blur-sigma-100/{image}.jpg"
    assert "too expensive" in _error(client.get(url), 400)
    modest = f"/acme/dynamic/resize-width-600--blur-sigma-3/{image}.jpg"
    assert client.get(modest).status_code == 200


def test_animation_budget_counts_every_frame(tmp_path):
    _, client, account = _app(tmp_path, max_animation_pixels=2_000_000)
    image = _hash(account, gif(300, size=20), "many.gif")
    # 300 frames of 100x100 = 3 MP over all frames: past the 2 MP animation budget.
    message = _error(client.get(f"/acme/dynamic/resize-width-100/{image}.gif"), 400)
    assert "300 frames" in message
    # A still of the first frame, or a smaller animation, is fine.
    assert client.get(f"/acme/dynamic/resize-width-100/{image}.png").status_code == 200
    assert client.get(f"/acme/dynamic/resize-width-40/{image}.gif").status_code == 200


def test_tiny_files_declaring_huge_images_cost_nothing(hostile):
    app, client, account = hostile
    # A 74-byte PNG declaring 10 gigapixels: refused from its header.
    assert "too large" in _error(_upload(account, png_header_only(100_000, 100_000), "b.png"), 422)
    # An 8 KB lossless WebP of 15000x15000 (225 MP, the source limit): libwebp may decode
    # it whole whatever scale is asked (939 MB measured), so it is refused from its header.
    webp = _lossless_webp(15_000)
    assert len(webp) < 20_000
    assert "too large to decode" in _error(_upload(account, webp, "big.webp"), 422)
    # A WebP within the budget is checked and rendered; renders that would need more than
    # the budget are refused from geometry.
    image = _hash(account, _lossless_webp(7_000), "fits.webp")
    assert client.get(f"/acme/dynamic/resize-width-300/{image}.png").status_code == 200
    turned = client.get(f"/acme/dynamic/rotate-angle-45--resize-width-300/{image}.png")
    assert "rotate makes 9899x9899" in _error(turned, 400)
    assert pool_for(app.extensions["cropstack.settings"]).peak_bytes() < MEMORY_BUDGET


def test_whole_image_decoders_are_refused_past_the_budget_at_upload(tmp_path):
    _, _, account = _app(tmp_path, max_render_pixels=1_000_000)
    avif = pyvips.Image.black(1200, 1000, bands=3).heifsave_buffer(compression="av1")
    assert "too large to decode" in _error(_upload(account, avif, "big.avif"), 422)


def test_deadline_kills_the_render_process_and_frees_its_slot(tmp_path):
    app, client, account = _app(
        tmp_path,
        render_timeout=0.5,
        render_concurrency=1,
        max_render_work=1e9,
        expensive_render_work=1e9,  # one lane, one process: the one the deadline must kill
    )
    image = _hash(account, jpeg(300, 200), "a.jpg")
    pool = pool_for(app.extensions["cropstack.settings"])
    # Warm the lane so its process id is known.
    assert client.get(f"/acme/dynamic/resize-width-50/{image}.jpg").status_code == 200
    before = set(pool.pids())
    slow = f"/acme/dynamic/resize-width-6000-height-6000-mode-absolute--blur-sigma-60/{image}.png"
    started = time.monotonic()
    response = client.get(slow)
    elapsed = time.monotonic() - started
    assert "longer than 0.5 s" in _error(response, 503)
    assert response.headers["Retry-After"] == "1"
    # Stopped at the deadline (plus process start-up), not after the minutes it would take.
    assert elapsed < 5
    for pid in before:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid), "render process not killed"
    # The slot is free at once: the next render gets a fresh process and succeeds.
    assert client.get(f"/acme/dynamic/resize-width-60/{image}.jpg").status_code == 200
    assert not before & set(pool.pids())


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return fh.read().split(")")[-1].split()[0] == "Z"


def test_upload_check_has_the_deadline_too(tmp_path):
    _, _, account = _app(tmp_path, render_timeout=0.3)
    # An SVG whose filters take far longer than 0.3 s to rasterise at the checked scale.
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="8000" height="8000">'
        b'<filter id="f"><feTurbulence baseFrequency="0.9" numOctaves="40"/>'
        b'<feGaussianBlur stdDeviation="200"/></filter>'
        b'<rect width="8000" height="8000" filter="url(#f)"/></svg>'
    )
    started = time.monotonic()
    response = _upload(account, svg, "slow.svg")
    assert time.monotonic() - started < 5
    assert "longer than 0.3 s" in _error(response, 503)


def test_expensive_renders_run_in_their_own_lane(tmp_path):
    # Its own render_nice gives this test a pool of its own.
    app, client, account = _app(tmp_path, expensive_render_work=5.0, render_nice=12)
    image = _hash(account, jpeg(300, 200), "a.jpg")
    pool = pool_for(app.extensions["cropstack.settings"])
    assert client.get(f"/acme/dynamic/resize-width-50/{image}.jpg").status_code == 200
    assert pool.lanes["expensive"].pids() == []
    big = f"/acme/dynamic/resize-width-3000-height-3000-mode-absolute/{image}.jpg"
    assert client.get(big).status_code == 200
    (pid,) = pool.lanes["expensive"].pids()
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        nice = int(fh.read().split(")")[-1].split()[16])
    assert nice == 12


def test_full_lane_answers_503_at_once_past_the_queue_limit(tmp_path):
    app, client, account = _app(
        tmp_path, render_concurrency=1, render_queue_limit=0, render_queue_timeout=30
    )
    image = _hash(account, jpeg(300, 200), "a.jpg")
    lane = pool_for(app.extensions["cropstack.settings"]).lanes["cheap"]
    process = lane.acquire(1.0)
    try:
        started = time.monotonic()
        response = client.get(f"/acme/dynamic/resize-width-70/{image}.jpg")
        assert time.monotonic() - started < 1
        assert "waiting" in _error(response, 503)
        assert response.headers["Retry-After"] == "1"
    finally:
        lane.release(process)
    assert client.get(f"/acme/dynamic/resize-width-70/{image}.jpg").status_code == 200


def test_a_render_process_killed_from_outside_is_replaced(tmp_path):
    app, client, account = _app(tmp_path, render_concurrency=1, render_queue_limit=3)
    image = _hash(account, jpeg(300, 200), "a.jpg")
    pool = pool_for(app.extensions["cropstack.settings"])
    assert client.get(f"/acme/dynamic/resize-width-80/{image}.jpg").status_code == 200
    (pid,) = pool.lanes["cheap"].pids()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert client.get(f"/acme/dynamic/resize-width-81/{image}.jpg").status_code == 200
    assert pool.lanes["cheap"].pids() not in ([], [pid])


def test_webps_pass_one_after_another_in_one_render_process(tmp_path):
    # Once it decoded a WebP, libvips reserves a whole frame of address space at every WebP
    # header read: the address-space limit leaves room for it.
    app, client, account = _app(tmp_path, expensive_render_concurrency=1, render_nice=11)
    for side in (7_000, 6_999, 6_998):
        image = _hash(account, _lossless_webp(side), f"{side}.webp")
        assert client.get(f"/acme/dynamic/resize-width-200/{image}.png").status_code == 200
    pool = pool_for(app.extensions["cropstack.settings"])
    assert pool.peak_bytes() < MEMORY_BUDGET


def test_progressive_jpegs_over_the_budget_are_refused_from_their_header(hostile):
    _, client, account = hostile
    # A progressive JPEG decodes with every DCT coefficient in memory, at any scale: a
    # 1.3 MB one of 15000x15000 took 692 MB. Baseline JPEGs of that size stream.
    flat = (pyvips.Image.black(8000, 7000, bands=3) + 128).cast("uchar")
    progressive = flat.jpegsave_buffer(interlace=True, Q=50)
    message = _error(_upload(account, progressive, "p.jpg"), 422)
    assert "too large to decode" in message and "progressive" in message
    baseline = _hash(account, flat.jpegsave_buffer(Q=50), "b.jpg")
    assert client.get(f"/acme/dynamic/resize-width-300/{baseline}.jpg").status_code == 200
    small_progressive = flat.crop(0, 0, 300, 200).jpegsave_buffer(interlace=True)
    small = _hash(account, small_progressive, "small.jpg")  # within the budget: fine
    assert client.get(f"/acme/dynamic/resize-width-100/{small}.jpg").status_code == 200


def test_interlaced_pngs_and_big_gif_frames_over_the_budget_are_refused(hostile):
    _, _, account = hostile
    black = pyvips.Image.black(8000, 7000, bands=3)
    interlaced = black.pngsave_buffer(interlace=True, compression=9)
    message = _error(_upload(account, interlaced, "i.png"), 422)
    assert "interlaced png" in message
    # The same pixels not interlaced stream through the check.
    assert _upload(account, black.pngsave_buffer(compression=9), "s.png").status_code == 200
    big_frame = black.cast("uchar").gifsave_buffer()
    assert "for gif" in _error(_upload(account, big_frame, "g.gif"), 422)


def test_a_render_process_that_cannot_start_is_a_503_and_leaks_nothing(tmp_path, monkeypatch):
    app, client, account = _app(tmp_path, render_concurrency=1, render_nice=13)
    image = _hash(account, jpeg(300, 200), "a.jpg")
    pool = pool_for(app.extensions["cropstack.settings"])
    pool.close()  # no live process: the next render must start one

    def no_more_processes(*args, **kwargs):
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(renderpool.subprocess, "Popen", no_more_processes)
    before = len(os.listdir("/proc/self/fd"))
    for width in range(60, 70):
        response = client.get(f"/acme/dynamic/resize-width-{width}/{image}.jpg")
        assert "could be started" in _error(response, 503)
        assert response.headers["Retry-After"] == "1"
    assert len(os.listdir("/proc/self/fd")) <= before
    monkeypatch.undo()
    assert client.get(f"/acme/dynamic/resize-width-70/{image}.jpg").status_code == 200
