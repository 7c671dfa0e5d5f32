"""Hostile files and URLs against a real ``cropstack serve``, with the memory of every
server process (master, worker, render processes) sampled while they are answered."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests import hostilefiles
from tests.realserver import descendants, memory_kb, running_server

# The peak a server process may reach with the default budgets (docs/security.md).
MEMORY_BUDGET_KB = 512 * 1024

pytestmark = [pytest.mark.server, pytest.mark.slow]


class _Peaks:
    """Highest VmHWM of every process below this one, sampled every 50 ms."""

    def __init__(self) -> None:
        self.peak_kb: dict[int, int] = {}
        self.stop = threading.Event()

    def sample(self) -> None:
        for pid in descendants(os.getpid()):
            found = memory_kb(pid)
            if found is not None:
                self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), *found)

    def run(self) -> None:
        while not self.stop.wait(0.05):
            self.sample()


def _call(base: str, method: str, path: str, body: bytes | None = None, **headers: str):
    request = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def _upload(base: str, key: str, name: str, data: bytes, org: str = "evil"):
    boundary = uuid.uuid4().hex
    body = (
        (
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="filedata"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return _call(
        base,
        "POST",
        f"/sourceimages/{org}",
        body,
        **{"Api-Key": key, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def _expect(answer, statuses: set[int]) -> dict:
    status, body, _ = answer
    assert status in statuses, body[:300]
    if status >= 400:
        error = json.loads(body)["error"]
        assert error["code"] == status and error["message"]
        return {}
    return json.loads(body) if body.startswith(b"{") else {}


def test_hostile_inputs_keep_every_server_process_under_the_memory_budget(tmp_path):
    peaks = _Peaks()
    sampler = threading.Thread(target=peaks.run, daemon=True)
    with running_server(
        tmp_path, "--signup", workers=1, env={"CROPSTACK_RENDER_TIMEOUT": "3"}
    ) as base:
        sampler.start()
        try:
            status, body, _ = _call(
                base, "POST", "/users", b'{"email": "e@evil.example", "organization": "evil"}'
            )
            assert status == 200
            key = json.loads(body)["api_key"]
            photo = _expect(
                _upload(base, key, "p.jpg", hostilefiles.photo_jpeg(3000, 2000, 1)), {200}
            )["items"][0]["hash"]
            hostile_urls = [
                "resize-width-9000-height-9000-mode-absolute--rotate-angle-45--rotate-angle-45"
                "--resize-width-100",
                "resize-width-7000-height-7000-mode-absolute--blur-sigma-100",
                "resize-width-10000-height-10000-mode-absolute",
                "resize-width-5000--options-dpr-10",
            ]
            for ops in hostile_urls:
                _expect(_call(base, "GET", f"/evil/dynamic/{ops}/{photo}.avif"), {400})
            _expect(_call(base, "GET", f"/evil/dynamic/resize-width-300/{photo}.jpg"), {200})

            _expect(_upload(base, key, "h.png", hostilefiles.png_header_bomb(1)), {422})
            _expect(_upload(base, key, "j.bin", hostilefiles.junk_upload(30)), {422})
            bomb = _expect(_upload(base, key, "z.png", hostilefiles.png_zip_bomb(1)), {200, 503})
            if bomb:
                image = bomb["items"][0]["hash"]
                _expect(
                    _call(base, "GET", f"/evil/dynamic/resize-width-300/{image}.png"), {200, 503}
                )
                _expect(_call(base, "GET", f"/evil/dynamic/rotate-angle-90/{image}.png"), {400})
            webp = _expect(
                _upload(base, key, "w.webp", hostilefiles.webp_lossless_solid(1)), {200, 422, 503}
            )
            if webp:
                image = webp["items"][0]["hash"]
                _expect(
                    _call(base, "GET", f"/evil/dynamic/resize-width-300/{image}.webp"), {200, 503}
                )
                _expect(_call(base, "GET", f"/evil/dynamic/noop/{image}.webp"), {400})
            frames = _expect(
                _upload(base, key, "g.gif", hostilefiles.gif_many_frames(1)), {200, 503}
            )
            if frames:
                image = frames["items"][0]["hash"]
                url = f"/evil/dynamic/resize-width-300-height-300-mode-absolute/{image}"
                _expect(_call(base, "GET", url + ".gif"), {400})
                _expect(_call(base, "GET", url + ".png"), {200})
            svg = _expect(_upload(base, key, "s.svg", hostilefiles.svg_filter_bomb(1)), {200, 503})
            if svg:
                image = svg["items"][0]["hash"]
                _expect(
                    _call(base, "GET", f"/evil/dynamic/resize-width-3000/{image}.png"), {200, 503}
                )
            # Documents whose header costs what the file costs are read only in a render
            # process: a 4.9 MB SVG of 170,000 shapes, a GIF of 60,000 frames.
            rects = b'<rect width="1" height="1"/>' * 170_000
            busy_svg = (
                b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
                + rects
                + b"</svg>"
            )
            _expect(_upload(base, key, "busy.svg", busy_svg), {200, 503})
            _expect(_upload(base, key, "huge.svg", busy_svg + rects), {422})
            many_frames = hostilefiles.gif_many_frames(2, 60_000, 1)
            _expect(_upload(base, key, "many.gif", many_frames), {422})
            # After all that the server still answers normal work.
            _expect(_call(base, "GET", f"/evil/dynamic/resize-width-310/{photo}.jpg"), {200})
            peaks.sample()
        finally:
            peaks.stop.set()
            sampler.join()
    assert len(peaks.peak_kb) >= 3  # master, worker, at least one render process
    over = {pid: kb // 1024 for pid, kb in peaks.peak_kb.items() if kb > MEMORY_BUDGET_KB}
    assert not over, f"processes over {MEMORY_BUDGET_KB // 1024} MB: {over}"


def test_unread_bodies_are_dropped_and_the_answer_still_arrives(tmp_path):
    """A big body the server refuses before reading it (no key, not an image) is received
    and dropped, so the client, which sends it whole before reading, gets the answer; and
    the connection stays usable."""
    with running_server(tmp_path, "--signup", workers=1) as base:
        status, body, _ = _call(
            base, "POST", "/users", b'{"email": "e@evil.example", "organization": "evil"}'
        )
        key = json.loads(body)["api_key"]
        junk = bytes(60 * 2**20)
        anonymous = _call(
            base, "POST", "/sourceimages/evil", junk, **{"Content-Type": "application/octet-stream"}
        )
        assert anonymous[0] == 403
        assert json.loads(anonymous[1])["error"]["code"] == 403
        refused = _upload(base, key, "junk.jpg", hostilefiles.junk_upload(60))
        assert refused[0] == 422
        assert json.loads(refused[1])["error"]["message"] == (
            "not an image, or an unsupported format"
        )
        accepted = _upload(base, key, "ok.jpg", hostilefiles.photo_jpeg(300, 200, 2))
        assert accepted[0] == 200


def _send_blind(base: str, path: str, size: int, **headers: str):
    """POST ``size`` zero bytes the way a naive client does (all of it before reading);
    (status, body) or the exception the client saw."""
    connection = http.client.HTTPConnection(base[len("http://") :], timeout=30)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Length", str(size))
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        chunk, sent = bytes(2**20), 0
        while sent < size:
            connection.send(chunk[: size - sent])
            sent += min(len(chunk), size - sent)
        response = connection.getresponse()
        return response.status, response.read()
    except OSError as exc:
        return exc
    finally:
        connection.close()


def test_bodies_over_the_upload_limit(tmp_path):
    """Up to twice the upload limit the body is received and dropped, so even a naive client
    reads the JSON answer; past that the connection is closed at once (nothing is received
    for a client that declares gigabytes), and the server goes on serving."""
    limit = 4 * 2**20
    env = {"CROPSTACK_MAX_UPLOAD_BYTES": str(limit)}
    with running_server(tmp_path, "--signup", workers=1, env=env) as base:
        status, body, _ = _call(
            base, "POST", "/users", b'{"email": "e@evil.example", "organization": "evil"}'
        )
        key = json.loads(body)["api_key"]
        over = _send_blind(
            base,
            "/sourceimages/evil",
            limit + 2**20,
            **{"Api-Key": key, "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert not isinstance(over, OSError), over
        assert over[0] == 413 and json.loads(over[1])["error"]["code"] == 413
        far_over = _send_blind(
            base,
            "/sourceimages/evil",
            3 * limit,
            **{"Api-Key": key, "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert isinstance(far_over, OSError) or far_over[0] == 413
        assert _call(base, "GET", "/healthz")[0] == 200


def test_a_stalled_upload_gives_its_place_back(tmp_path):
    """A client that stops sending its upload holds its upload place at most 10 s (408),
    and never blocks other organizations' uploads meanwhile."""
    with running_server(tmp_path, "--signup", workers=1) as base:
        keys = {}
        for org in ("slow", "other"):
            body = json.dumps({"email": f"a@{org}.example", "organization": org}).encode()
            keys[org] = json.loads(_call(base, "POST", "/users", body)[1])["api_key"]
        stalled = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        head = (
            "POST /sourceimages/slow HTTP/1.1\r\nHost: x\r\n"
            f"Api-Key: {keys['slow']}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            "Content-Length: 1000000\r\n\r\n--b\r\nContent-Disposition: form-data; "
            'name="filedata"; filename="x.jpg"\r\n\r\n'
        )
        stalled.sendall(head.encode() + b"\xff\xd8\xff\xe0")
        started = time.monotonic()
        photo = hostilefiles.photo_jpeg(300, 200, 3)
        assert _upload(base, keys["other"], "ok.jpg", photo, org="other")[0] == 200
        stalled.settimeout(30)
        answer = stalled.recv(4096)
        waited = time.monotonic() - started
        stalled.close()
        assert b" 408 " in answer.split(b"\r\n", 1)[0], answer[:200]
        assert waited < 20
        assert _upload(base, keys["slow"], "again.jpg", photo, org="slow")[0] == 200
