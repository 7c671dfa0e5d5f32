"""The gunicorn worker of ``cropstack serve`` (webapp/httpworker.py) on kept-alive
connections: a thread that answered a request serves the connection's next one itself
when it comes soon, the head and a small body go out in one send, and the process's
set-up is frozen out of the garbage collector. Every answer must stay what it was:
status, headers, bytes, in order, for GET, HEAD, 304 and errors, pipelined or not; one
busy client must not hold the only thread; garbage made later is still collected."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.test_load import Call, send, sign_up, uploaded_hash
from tests.engine.conftest import png, scene
from tests.realserver import running_server


def _read_head(stream) -> tuple[int, dict[str, str]]:  # noqa: ANN001
    """The head of one HTTP/1.1 answer from ``stream`` (a socket's binary file): its
    status and headers (lower-case names)."""
    status = int(stream.readline().split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def _served(tmp_path: Path, *args: str):  # noqa: ANN202
    return running_server(tmp_path, *args, workers=1, env={"CROPSTACK_SIGNUP": "true"})


def _render_url(port: int) -> str:
    tenant = sign_up(port, "alive")
    image = uploaded_hash(send(port, tenant.upload("a.png", png(scene(300, 200))))[1])
    return f"/alive/dynamic/resize-width-120/{image}.png"


def test_a_kept_alive_connection_gets_every_answer_in_order(tmp_path: Path) -> None:
    with _served(tmp_path) as base:
        port = int(base.rsplit(":", 1)[1])
        url = _render_url(port)
        small = url.replace("width-120", "width-8")  # rendered the first time only
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", url)
        first = conn.getresponse()
        body, etag = first.read(), first.headers["ETag"]
        assert first.status == 200 and len(body) == int(first.headers["Content-Length"])
        for _ in range(40):  # memo hits, 304s, HEADs and errors, one after another
            conn.request("GET", url)
            answer = conn.getresponse()
            assert (answer.status, answer.read()) == (200, body)
            assert answer.headers["ETag"] == etag
            conn.request("GET", url, headers={"If-None-Match": etag})
            answer = conn.getresponse()
            assert (answer.status, answer.read()) == (304, b"")
            assert answer.headers["ETag"] == etag and "Content-Type" not in answer.headers
            conn.request("HEAD", url)
            answer = conn.getresponse()
            assert answer.status == 200 and answer.read() == b""
            assert answer.headers["Content-Length"] == str(len(body))
            conn.request("GET", "/alive/dynamic/resize-width-120/" + "0" * 40 + ".png")
            answer = conn.getresponse()
            error = json.loads(answer.read())
            assert answer.status == 404 and error["error"]["code"] == 404
            conn.request("GET", small)
            answer = conn.getresponse()
            assert answer.status == 200 and answer.read().startswith(b"\x89PNG")
        conn.close()
        log = (tmp_path / "server.log").read_text()
    lines = [json.loads(x) for x in log.splitlines() if x.startswith('{"time"')]
    assert sum(x["route"] == "render" for x in lines) == 1 + 40 * 5  # every answer logged


def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    """Requests sent together, before any answer: each answered once, in order, with
    its own status and body; a body never runs into the next answer."""
    with _served(tmp_path) as base:
        port = int(base.rsplit(":", 1)[1])
        url = _render_url(port)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            stream = sock.makefile("rb")
            requests = [("GET", url), ("HEAD", url), ("GET", "/nowhere"), ("GET", url)] * 5
            sock.sendall(
                b"".join(
                    f"{m} {u} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode() for m, u in requests
                )
            )
            bodies = []
            for method, _ in requests:
                status, headers = _read_head(stream)
                size = int(headers.get("content-length", "0"))
                body = stream.read(size) if method == "GET" else b""
                bodies.append((method, status, body))
    renders = {b for m, s, b in bodies if m == "GET" and s == 200}
    assert len(renders) == 1 and next(iter(renders)).startswith(b"\x89PNG")
    assert [s for _, s, _ in bodies] == [200, 200, 404, 200] * 5
    assert all(json.loads(b)["error"]["code"] == 404 for _, s, b in bodies if s == 404)


def test_a_busy_kept_alive_client_does_not_hold_the_only_thread(tmp_path: Path) -> None:
    """With one request thread, a client whose next request is always there already
    (it pipelines without end) shares the thread with everyone else: new connections are
    answered meanwhile."""
    with _served(tmp_path, "--threads", "1") as base:
        port = int(base.rsplit(":", 1)[1])
        url = _render_url(port)
        request = f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        stop = threading.Event()
        busy: list[int] = []
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)

        def pipeline() -> None:
            try:
                while not stop.is_set():
                    sock.sendall(request * 20)
            except OSError:
                pass  # closed at the end

        def drain() -> None:
            stream = sock.makefile("rb")
            try:
                while not stop.is_set():
                    status, headers = _read_head(stream)
                    stream.read(int(headers["content-length"]))
                    busy.append(status)
            except (OSError, ValueError, IndexError):
                pass

        threads = [threading.Thread(target=pipeline), threading.Thread(target=drain)]
        for thread in threads:
            thread.start()
        try:
            while len(busy) < 50:
                time.sleep(0.01)
            others = [send(port, Call("GET", url)) for _ in range(10)]
            during = len(busy)
        finally:
            stop.set()
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            for thread in threads:
                thread.join(timeout=30)
    assert [status for status, _, _ in others] == [200] * 10
    assert set(busy) == {200} and during > 50  # the busy client was served meanwhile too


def test_garbage_made_after_the_set_up_is_frozen_is_still_collected() -> None:
    """``settle_heap`` freezes what exists; reference cycles made afterwards (request
    garbage) are collected as before, so a worker's memory stays bounded."""
    script = """
import gc, resource
from webapp.httpworker import settle_heap
settle_heap()
assert gc.isenabled() and gc.get_freeze_count() > 1000, gc.get_freeze_count()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(100_000):  # 1 GB of 10 KB buffers, each in a reference cycle
    node = [bytearray(10_000)]
    node.append(node)
del node
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert int(out.stdout) < 64 * 1024  # KiB: collected as it went, never near 1 GB
