"""Face detection against a real ``cropstack serve``: the detector runs in the server's
render processes, and hostile sources (a 225-megapixel PNG, a 1000-frame GIF, an SVG that
declares 225 megapixels) get a face list or an answer in the error shape, never a 500,
while every server process stays under the memory budget."""

from __future__ import annotations

import json
import threading

import pytest

from tests import hostilefiles
from tests.realserver import running_server
from tests.webapp.test_faces import FACE, astronaut, box_of, overlap
from tests.webapp.test_hostile_server import MEMORY_BUDGET_KB, _call, _Peaks, _upload

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _detect(base: str, key: str, image_hash: str):  # noqa: ANN202
    return _call(
        base,
        "PUT",
        f"/sourceimages/evil/{image_hash}/meta/dynamic/detection_face",
        b"",
        **{"Api-Key": key},
    )


def _uploaded(base: str, key: str, name: str, data: bytes) -> str:
    status, body, _ = _upload(base, key, name, data)
    assert status == 200, body[:300]
    return json.loads(body)["items"][0]["hash"]


def _answered(answer, statuses: set[int]) -> dict:  # noqa: ANN001
    status, body, headers = answer
    assert status in statuses, body[:300]
    if status >= 400:
        error = json.loads(body)["error"]
        assert error["code"] == status and error["message"]
        assert headers["Content-Type"] == "application/json"
        return {}
    return json.loads(body) if body else {}


def test_detection_in_render_processes_under_budgets(tmp_path):
    peaks = _Peaks()
    sampler = threading.Thread(target=peaks.run, daemon=True)
    with running_server(
        tmp_path, "--signup", workers=1, env={"CROPSTACK_RENDER_TIMEOUT": "8"}
    ) as base:
        sampler.start()
        try:
            status, body, _ = _call(
                base, "POST", "/users", b'{"email": "e@evil.example", "organization": "evil"}'
            )
            assert status == 200
            key = json.loads(body)["api_key"]

            photo = _uploaded(base, key, "astronaut.png", astronaut())
            found = _answered(_detect(base, key, photo), {201})
            stored = found["dynamic_metadata"]["detection_face"]
            assert overlap(box_of(stored), FACE) > 0.5, stored
            crop = f"/evil/dynamic/crop-width-100-height-100-anchor-face/{found['hash']}.jpg"
            assert _call(base, "GET", crop)[0] == 200

            # 225 megapixels of zeros: decoded shrunk and streamed; nothing found, or past
            # the deadline on a slow machine.
            bomb = _uploaded(base, key, "z.png", hostilefiles.png_zip_bomb(3))
            answer = _answered(_detect(base, key, bomb), {201, 503})
            if answer:
                assert answer["dynamic_metadata"]["detection_face"] == {"faces": []}
            # 1000 frames: only the first is looked at.
            frames = _uploaded(base, key, "g.gif", hostilefiles.gif_many_frames(3))
            answer = _answered(_detect(base, key, frames), {201})
            assert answer["dynamic_metadata"]["detection_face"] == {"faces": []}
            # An SVG declaring 225 megapixels is rasterised at the detection size only.
            svg = _uploaded(
                base,
                key,
                "s.svg",
                b'<svg xmlns="http://www.w3.org/2000/svg" width="15000" height="15000">'
                b'<rect width="100%" height="100%" fill="#3a6"/></svg>',
            )
            answer = _answered(_detect(base, key, svg), {201})
            assert answer["dynamic_metadata"]["detection_face"] == {"faces": []}

            # The server still detects afterwards (same result: unchanged, 204).
            assert _detect(base, key, photo)[0] in (201, 204)
            assert _detect(base, key, found["hash"])[0] == 204
            peaks.sample()
        finally:
            peaks.stop.set()
            sampler.join()
    assert len(peaks.peak_kb) >= 3  # master, worker, at least one render process
    over = {pid: kb // 1024 for pid, kb in peaks.peak_kb.items() if kb > MEMORY_BUDGET_KB}
    assert not over, f"processes over {MEMORY_BUDGET_KB // 1024} MB: {over}"
