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


def _answer(sock: socket.socket, stream, request: bytes) -> bytes:  # noqa: ANN001
    """The raw answer (head and body) to ``request`` on kept-alive ``sock``, without
    its Date field."""
    sock.sendall(request)
    lines = []
    while (line := stream.readline()) not in (b"\r\n", b""):
        lines.append(line)
    size = [int(x.split(b":")[1]) for x in lines if x.lower().startswith(b"content-length")]
    body = stream.read(size[0]) if size and not request.startswith(b"HEAD") else b""
    return b"".join(x for x in lines if not x.lower().startswith(b"date:")) + b"\r\n" + body


def test_hits_on_the_event_loop_are_the_answers_a_request_thread_gives(tmp_path: Path) -> None:
    """The first request of a connection is answered by a request thread; a hit on a
    kept-alive connection on the worker's event loop (webapp/requesthead.py): byte for
    byte the same answer, for GET, HEAD and 304, and each logged."""
    with _served(tmp_path) as base:
        port = int(base.rsplit(":", 1)[1])
        url = _render_url(port)
        etag = http_etag(port, url)
        requests = [
            f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n",
            f"HEAD {url} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
            f"GET {url} HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n",
        ]
        for request in (r.encode() for r in requests):
            answers = []
            for _ in range(2):  # a new connection: its first answer comes from a thread
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    stream = sock.makefile("rb")
                    answers += [_answer(sock, stream, request) for _ in range(3)]
            assert len(set(answers)) == 1, answers
            assert answers[0].startswith(b"HTTP/1.1 ")
            assert b"Connection: keep-alive\r\n" in answers[0]
        log = (tmp_path / "server.log").read_text()
    lines = [json.loads(x) for x in log.splitlines() if x.startswith('{"time"')]
    renders = [(x["method"], x["status"]) for x in lines if x["route"] == "render"]
    assert renders.count(("GET", 200)) == 1 + 6  # the ETag's, then these
    assert renders.count(("HEAD", 200)) == 6 and renders.count(("GET", 304)) == 6


def http_etag(port: int, url: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", url)
    answer = conn.getresponse()
    answer.read()
    conn.close()
    return answer.headers["ETag"]


def test_a_hit_is_answered_while_every_request_thread_is_busy(tmp_path: Path) -> None:
    """With one request thread, held by a connection that sends nothing (gunicorn waits
    5 s for its first request), a hit on a kept-alive connection is still answered at
    once: it never needs a request thread."""
    with _served(tmp_path, "--threads", "1") as base:
        port = int(base.rsplit(":", 1)[1])
        url = _render_url(port)
        request = f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            stream = sock.makefile("rb")
            first = _answer(sock, stream, request)
            for _ in range(3):  # until the event loop's catalog version is the entry's
                time.sleep(0.1)  # (its first read after the upload's commits is a miss)
                assert _answer(sock, stream, request) == first
            with socket.create_connection(("127.0.0.1", port), timeout=10):
                time.sleep(0.3)  # its wait for a request holds the only thread now
                started = time.monotonic()
                again = _answer(sock, stream, request)
                took = time.monotonic() - started
    assert again == first and first.startswith(b"HTTP/1.1 200 ")
    assert took < 2.0  # through a request thread it waited for the 5 s to pass


def test_a_long_hit_to_a_slow_reader_is_sent_whole(tmp_path: Path) -> None:
    """An answer larger than what the socket takes at once (a client with a small
    receive buffer that does not read for a while) is sent whole, and the connection
    serves its next request."""
    import pyvips

    noise = pyvips.Image.gaussnoise(700, 500, sigma=60, mean=128).cast("uchar")
    source = noise.bandjoin([noise.rot180(), noise.fliphor()]).copy(interpretation="srgb")
    with _served(tmp_path) as base:
        port = int(base.rsplit(":", 1)[1])
        tenant = sign_up(port, "slow")
        image = uploaded_hash(send(port, tenant.upload("n.png", source.pngsave_buffer()))[1])
        url = f"/slow/dynamic/resize-width-300/{image}.png"
        request = f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        send(port, Call("GET", url))  # rendered and remembered
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        with sock:
            stream = sock.makefile("rb")
            first = _answer(sock, stream, request)
            sock.sendall(request)
            time.sleep(0.5)  # not reading: the server's send cannot take it all
            late = _answer(sock, stream, b"")
            after = _answer(sock, stream, request)
    body_size = len(first) - first.index(b"\r\n\r\n") - 4
    assert 100_000 < body_size <= 256 * 1024
    assert late == first == after
