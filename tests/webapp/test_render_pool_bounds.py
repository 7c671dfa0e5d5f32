"""Render pools stay bounded in a process that builds many apps, and render jobs work when
the web worker's descriptors are numbered past 1024 (``select`` refuses those)."""

from __future__ import annotations

import gc
import io
import os
import resource

from tests.conftest import Account
from tests.webapp.images import jpeg
from webapp import create_app
from webapp.renderpool import _MAX_POOLS, _pools, pool_for


def _render(app, org: str = "acme") -> None:
    client = app.test_client()
    account = Account(client, org, f"admin@{org}.example")
    form = {"filedata": (io.BytesIO(jpeg(120, 80)), "a.jpg")}
    uploaded = account.request(
        "POST", f"/sourceimages/{org}", data=form, content_type="multipart/form-data"
    )
    assert uploaded.status_code == 200, uploaded.get_data(as_text=True)
    image = uploaded.get_json()["items"][0]["hash"]
    answer = client.get(f"/{org}/dynamic/resize-width-40/{image}.png")
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_apps_with_their_own_data_directories_keep_at_most_a_few_pools(tmp_path):
    apps = [create_app({"data_dir": str(tmp_path / f"d{n}")}) for n in range(_MAX_POOLS + 3)]
    pools = []
    for app in apps:
        _render(app)
        pools.append(pool_for(app.extensions["cropstack.settings"]))
    mine = [key for key in _pools if key[0] == os.getpid()]
    assert len(mine) <= _MAX_POOLS
    # the pools let go have no render process left running (each held two pipes)
    for pool in pools[: len(pools) - _MAX_POOLS]:
        assert all(not lane.pids() for lane in pool.lanes.values())
    # and an app whose pool was let go still renders
    _render(apps[0], "again")


def test_renders_work_with_descriptors_past_1024(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
    filler = []
    try:
        app = create_app({"data_dir": str(tmp_path / "d"), "render_nice": 3})
        # Its pool first: making it lets the oldest pool of earlier tests go, closing that
        # pool's pipes; their low numbers must be taken by the filler, not by ours.
        pool = pool_for(app.extensions["cropstack.settings"])
        gc.collect()  # nor freed by a finalizer while the render process starts
        # the render process's pipes are opened after these, so numbered past 1024
        while len(filler) < 1100:
            filler.append(os.open(os.devnull, os.O_RDONLY))
        _render(app)
        assert min(p._replies for lane in pool.lanes.values() for p in lane._all) > 1024
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
