"""A real S3-compatible server on loopback for tests (moto's standalone server), and a
fault proxy in front of it that makes the store full or unreachable on demand.

moto_server is started as a subprocess (``moto_server -H 127.0.0.1 -p PORT``) once per
test session by the ``s3_server`` fixture (tests/conftest.py) and stopped after. It
speaks the S3 REST API over HTTP; cropstack talks to it through boto3 exactly as to AWS,
MinIO or Ceph, configured by the standard AWS variables.

The proxy forwards every request unchanged, except when told:

* ``full``: object writes are answered 507 ``XMinioStorageFull``, what MinIO answers
  when its drives reach their free-space threshold;
* ``read_only``: object writes and deletes are answered 403 ``AccessDenied``, what a
  store answers credentials that may only read;
* ``down``: every connection is closed without an answer, as when the store or the
  network in between has gone away.

Independently of the mode, ``delete_delay_s`` holds each object DELETE that long before
forwarding it (``delete_held`` is set when one arrives): a slow network between a
collection and the store, which widens the time between its last look and its delete.
``delay_s`` (0 by default) holds every request that long first: a slow, distant store.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.realserver import free_port

BUCKET = "cropstack-test"

DENIED_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message><RequestId>0</RequestId></Error>"
)
FULL_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>XMinioStorageFull</Code>'
    b"<Message>Storage backend has reached its minimum free drive threshold. Please delete "
    b"a few objects to proceed.</Message><RequestId>0</RequestId></Error>"
)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def moto_server(log_path: Path, start_timeout_s: float = 30.0) -> Iterator[str]:
    """``moto_server`` on a free loopback port; yields its endpoint URL. Always stopped."""
    port = free_port()
    script = Path(sys.executable).with_name("moto_server")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    argv += ["-H", "127.0.0.1", "-p", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + start_timeout_s
            while not _listening(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


class FaultProxy:
    """An HTTP proxy on loopback in front of ``upstream``; ``mode`` is ``"ok"``,
    ``"full"``, ``"read_only"`` or ``"down"`` (see the module docstring). Use as a context
    manager."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.mode = "ok"
        self.delete_delay_s = 0.0
        self.delete_held = threading.Event()
        self.delay_s = 0.0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.delay_s:
                    time.sleep(proxy.delay_s)
                if proxy.mode == "down":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                # Object writes carry a key after the bucket: PUT /bucket/key.
                on_object = self.path.split("?")[0].count("/") >= 2
                if proxy.mode == "full" and self.command == "PUT" and on_object:
                    self._refuse(507, FULL_BODY)
                    return
                if proxy.mode == "read_only" and self.command in ("PUT", "DELETE") and on_object:
                    self._refuse(403, DENIED_BODY)
                    return
                if self.command == "DELETE" and on_object and proxy.delete_delay_s:
                    proxy.delete_held.set()
                    time.sleep(proxy.delete_delay_s)
                upstream_conn = http.client.HTTPConnection(host, int(port), timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    upstream_conn.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream_conn.getresponse()
                    data = answer.read()
                finally:
                    upstream_conn.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _refuse(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
