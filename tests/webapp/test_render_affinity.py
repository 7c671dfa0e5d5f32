"""Render jobs of one source go to the render process that rendered it lately (so the
widths of a ``srcset`` share its kept decode), without ever waiting past the queue rules."""

from __future__ import annotations

import os
import threading
import time

from webapp.renderpool import Lane, LaneConfig

ENV = {**os.environ, "CROPSTACK_RENDER_KEPT_MB": "0"}


def _lane(size: int = 2) -> Lane:
    return Lane(LaneConfig("cheap", size, 0, 4), ENV)


def test_an_idle_process_that_rendered_the_source_is_preferred():
    lane = _lane()
    try:
        first = lane.acquire(1.0, "img-a")
        other = lane.acquire(1.0, "img-b")
        lane.release(first)
        lane.release(other)  # released last: taken first without affinity
        assert lane.acquire(1.0, "img-a") is first
        assert lane.acquire(1.0, "img-c") is other  # no process knows it: any idle one
    finally:
        lane.close()


def test_a_job_waits_for_the_busy_process_of_its_source():
    lane = _lane()
    try:
        busy = lane.acquire(1.0, "img-a")
        spare = lane.acquire(1.0, None)
        lane.release(spare)  # idle, but it never rendered img-a
        got: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(lane.acquire(1.0, "img-a")))
        waiter.start()
        time.sleep(0.2)
        assert not got  # waiting for the process that holds img-a's decode
        lane.release(busy)
        waiter.join(timeout=5)
        assert got == [busy]
    finally:
        lane.close()


def test_the_wait_for_a_busy_process_is_bounded():
    lane = _lane()
    try:
        busy = lane.acquire(1.0, "img-a")
        spare = lane.acquire(1.0, None)
        lane.release(spare)
        started = time.monotonic()
        taken = lane.acquire(1.0, "img-a")  # img-a's process stays busy: the spare one
        assert taken is spare
        assert time.monotonic() - started < 0.9
        lane.release(busy)
        lane.release(taken)
    finally:
        lane.close()


def test_widths_of_one_image_through_the_app_match_independent_renders(tmp_path):
    import io

    import numpy as np

    import engine
    from tests.conftest import Account
    from tests.engine.conftest import decode, jpeg, op, plan
    from tests.engine.test_shrink_on_load import _detailed
    from webapp import create_app

    app = create_app({"data_dir": str(tmp_path / "d"), "render_cache": False})
    client = app.test_client()
    account = Account(client, "acme", "admin@acme.example")
    source = jpeg(_detailed(2400, 1600))
    form = {"filedata": (io.BytesIO(source), "a.jpg")}
    uploaded = account.request("POST", "/sourceimages/acme", data=form)
    image = uploaded.get_json()["items"][0]["hash"]
    # 100 px keeps a 1/8 decode; 1000 px needs more (sent again with the bytes); the rest
    # are served by the kept 1/2 decode
    for width in (100, 1000, 150, 600, 100):
        response = client.get(f"/acme/dynamic/resize-width-{width}/{image}.jpg")
        assert response.status_code == 200
        alone = engine.render(plan(op("resize", width=width)), source)
        a, b = decode(response.data).astype(int), decode(alone.body).astype(int)
        assert a.shape == b.shape and a.shape[1] == width
        assert np.abs(a - b).mean() < 6.5
