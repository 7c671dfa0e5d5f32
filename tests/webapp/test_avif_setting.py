"""The ``avif_effort`` setting from the server's settings to the encoder in the render
process, and its refusal at startup."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pyvips
from skimage import data

from tests.conftest import Account, close_app
from tests.engine.conftest import decode
from webapp import create_app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def photo_png() -> bytes:
    pixels = np.ascontiguousarray(data.astronaut()[::2, ::2])  # 256x256 photograph
    return bytes(pyvips.Image.new_from_array(pixels, interpretation="srgb").pngsave_buffer())


def _avif_at(tmp_path: Path, effort: int, source: bytes) -> bytes:
    app = create_app({"data_dir": str(tmp_path / f"effort{effort}"), "avif_effort": effort})
    client = app.test_client()
    account = Account(client, "acme", "admin@acme.example")
    form = {"filedata": (io.BytesIO(source), "photo.png")}
    uploaded = account.request(
        "POST", "/sourceimages/acme", data=form, content_type="multipart/form-data"
    )
    assert uploaded.status_code == 200, uploaded.get_data(as_text=True)
    image_hash = uploaded.get_json()["items"][0]["hash"]
    response = client.get(f"/acme/dynamic/resize-width-200/{image_hash}.avif")
    close_app(app)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "image/avif"
    return response.data


def test_the_setting_reaches_the_render_process(tmp_path, photo_png):
    fast, slow = _avif_at(tmp_path, 0, photo_png), _avif_at(tmp_path, 6, photo_png)
    assert fast != slow  # the same URL, another encoder effort
    expected = pyvips.Image.new_from_buffer(photo_png, "").resize(200 / 256).numpy()
    for body in (fast, slow):
        pixels = decode(body).astype(float)
        assert pixels.shape == (200, 200, 3)
        assert np.abs(pixels - expected).mean() < 10  # avif.quality 45 on a photo


def test_a_new_effort_is_not_served_from_renders_cached_at_the_old_one(tmp_path, photo_png):
    """An operator who changes ``avif_effort`` gets AVIFs of the new effort: renders cached
    at the old one are another entry (and ETag), not answers; other formats keep theirs."""
    data_dir = tmp_path / "data"
    answers: dict[int, dict[str, tuple[str, bytes]]] = {}
    for effort in (0, 6, 0):
        app = create_app({"data_dir": str(data_dir), "avif_effort": effort})
        client = app.test_client()
        if not answers:
            account = Account(client, "acme", "admin@acme.example")
            form = {"filedata": (io.BytesIO(photo_png), "photo.png")}
            uploaded = account.request(
                "POST", "/sourceimages/acme", data=form, content_type="multipart/form-data"
            )
            image_hash = uploaded.get_json()["items"][0]["hash"]
        seen = {}
        for ext in ("avif", "jpg"):
            response = client.get(f"/acme/dynamic/resize-width-200/{image_hash}.{ext}")
            assert response.status_code == 200, response.get_data(as_text=True)
            seen[ext] = (response.headers["ETag"], response.data)
        close_app(app)
        if effort in answers:  # back at effort 0: the first render, from the cache
            assert seen == answers[effort]
        answers[effort] = seen
    assert answers[6]["avif"][0] != answers[0]["avif"][0]
    assert answers[6]["avif"][1] != answers[0]["avif"][1]
    assert answers[6]["jpg"] == answers[0]["jpg"]


@pytest.mark.parametrize("raw", ["10", "best"])
def test_serve_refuses_a_bad_effort_in_one_line(tmp_path, raw: str):
    result = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "serve", "--init", "--data-dir", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "CROPSTACK_AVIF_EFFORT": raw},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cropstack: setting avif_effort (CROPSTACK_AVIF_EFFORT) must be")
    assert "0" in lines[0] and "9" in lines[0]
