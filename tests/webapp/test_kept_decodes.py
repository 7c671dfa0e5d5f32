"""Kept decodes through the app and a real server: the widths of a ``srcset`` asked at
once share one decode across web workers and render processes, answer the pixels of
independent renders, and the server removes its kept decodes when it stops."""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import engine
from engine.decoded import KeptDecodes
from tests.conftest import Account
from tests.engine.conftest import decode, jpeg, op, plan
from tests.engine.test_shrink_on_load import _detailed
from tests.realserver import running_server
from tests.webapp.test_hostile_server import _call, _upload
from webapp import create_app, keptdecodes

WIDTHS = (160, 240, 320, 400, 512, 640, 800, 960)


def _like_alone(body: bytes, source: bytes, width: int) -> None:
    alone = engine.render(plan(op("resize", width=width), fmt="jpg"), source)
    a, b = decode(body).astype(int), decode(alone.body).astype(int)
    assert a.shape == b.shape and a.shape[1] == width
    assert np.abs(a - b).mean() < 6.5


def test_widths_through_the_app_match_independent_renders(tmp_path):
    settings = {"data_dir": str(tmp_path / "d"), "decoded_cache_dir": str(tmp_path / "kept")}
    kept = keptdecodes.directory_for(SimpleNamespace(**settings))
    assert kept.startswith(str(tmp_path / "kept") + "/")  # its own directory in the parent
    app = create_app({**settings, "render_cache": False})
    client = app.test_client()
    account = Account(client, "acme", "admin@acme.example")
    source = jpeg(_detailed(2400, 1600))
    form = {"filedata": (io.BytesIO(source), "a.jpg")}
    image = account.request("POST", "/sourceimages/acme", data=form).get_json()["items"][0]
    for width in (100, 1000, 150, 600, 100):
        response = client.get(f"/acme/dynamic/resize-width-{width}/{image['hash']}.jpg")
        assert response.status_code == 200
        _like_alone(response.data, source, width)
    counts = KeptDecodes(kept, 1).counts()
    # 100 decoded at 1/8 for itself, 1000 at 1/2 (kept with 1/4 and 1/8), the rest served
    assert counts == {"decodes": 2, "kept": 1, "served": 3}
    # kept under the content hash of the original (its blob key, SHA-256), nothing else
    digest = hashlib.sha256(source).hexdigest()
    assert {n for n in os.listdir(kept) if n.endswith(".v")} == {
        f"{digest}.{s}.v" for s in (2, 4, 8)
    }


def test_nothing_is_kept_when_off(tmp_path):
    kept = tmp_path / "kept"
    app = create_app(
        {
            "data_dir": str(tmp_path / "d"),
            "render_cache": False,
            "decoded_cache_dir": str(kept),
            "decoded_cache_mb": 0,
        }
    )
    client = app.test_client()
    account = Account(client, "acme", "admin@acme.example")
    source = jpeg(_detailed(1200, 800))
    form = {"filedata": (io.BytesIO(source), "a.jpg")}
    image = account.request("POST", "/sourceimages/acme", data=form).get_json()["items"][0]
    for width in (100, 600, 300):
        response = client.get(f"/acme/dynamic/resize-width-{width}/{image['hash']}.jpg")
        assert response.status_code == 200
    assert not kept.exists()


@pytest.mark.server
def test_a_srcset_burst_on_a_real_server_shares_one_decode(tmp_path):
    source = jpeg(_detailed(3000, 2000))
    settings = SimpleNamespace(data_dir=str(tmp_path / "data"), decoded_cache_dir="")
    directory = keptdecodes.directory_for(settings)
    # As benchmarks/test_srcset_bench.py: renders wait for a process up to 10 s (default
    # 1 s), 16 may wait (default 4), so that a busy test machine answers 8 renders on one
    # worker late rather than 503 (which clients retry).
    env = {
        "CROPSTACK_RENDER_CACHE": "false",
        "CROPSTACK_RENDER_QUEUE_TIMEOUT": "10",
        "CROPSTACK_RENDER_QUEUE_LIMIT": "16",
    }
    with running_server(tmp_path, "--signup", env=env, workers=2) as base:
        status, body, _ = _call(
            base, "POST", "/users", b'{"email": "e@acme.example", "organization": "acme"}'
        )
        assert status == 200
        key = json.loads(body)["api_key"]
        status, body, _ = _upload(base, key, "a.jpg", source, org="acme")
        assert status == 200
        image = json.loads(body)["items"][0]["hash"]

        def get(width: int) -> tuple[int, bytes]:
            answer = _call(base, "GET", f"/acme/dynamic/resize-width-{width}/{image}.jpg")
            return answer[0], answer[1]

        with ThreadPoolExecutor(len(WIDTHS)) as clients:
            answers = list(clients.map(get, WIDTHS))
        for width, (status, body) in zip(WIDTHS, answers, strict=True):
            assert status == 200
            _like_alone(body, source, width)
        counts = KeptDecodes(directory, 1).counts()
        # Without kept decodes: 8 decodes. One when the second render claims the image
        # while the first one's bytes are fetched; 2 on a machine too slow for that (the
        # first render's own size, then one wide decode); never one per width.
        assert counts["decodes"] <= 2, counts
        assert counts["decodes"] + counts["served"] == len(WIDTHS), counts
        assert Path(directory, "datadir").read_text() == os.path.realpath(settings.data_dir)
    assert not os.path.exists(directory)  # the server removed them when it stopped


def test_a_kept_directory_whose_data_directory_is_gone_is_swept(tmp_path):
    gone = SimpleNamespace(data_dir=str(tmp_path / "gone"), decoded_cache_dir="")
    live = SimpleNamespace(data_dir=str(tmp_path / "live"), decoded_cache_dir="")
    for settings in (gone, live):
        os.makedirs(settings.data_dir)
    orphan = keptdecodes.prepare(gone)
    if not orphan.startswith("/dev/shm/"):
        pytest.fail("this machine has no writable /dev/shm")  # the default place
    Path(orphan, "x.v").write_bytes(b"pixels")
    os.rmdir(gone.data_dir)
    kept = keptdecodes.prepare(live)
    try:
        assert not os.path.exists(orphan)
        assert os.path.isdir(kept)
    finally:
        keptdecodes.remove(live)
    assert not os.path.exists(kept)
