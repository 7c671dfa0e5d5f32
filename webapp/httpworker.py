"""The gunicorn worker of ``cropstack serve``: gthread, with gunicorn's own errors in JSON.

gunicorn answers requests it cannot parse (request line over ``limit_request_line``, a
header over ``limit_request_field_size``, too many headers, malformed lines) itself,
before the app sees them, with a small HTML page. Every error of this service is the
JSON error shape, so this worker sends that shape instead: same status, same reason.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker
from werkzeug.exceptions import ClientDisconnected

from webapp.allocator import Trimmer
from webapp.hitmemo import ANSWERED

_MAX_MESSAGE = 200  # characters; gunicorn's messages may quote the (long) request line


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Send ``{"error": {"code", "message"}}`` and close, as gunicorn's ``write_error``."""
    message = f"{reason}: {mesg}" if mesg else reason
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    error = {"error": {"code": status_int, "message": message}}
    body = json.dumps(error, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class JsonErrorWorker(ThreadWorker):
    """``gthread`` whose parse errors (400, 414, 431, 501, ...) are JSON."""

    def init_process(self) -> None:
        # Every error page gunicorn writes goes through ``util.write_error`` (called by
        # ``Worker.handle_error``); replacing it in this worker process is the one hook
        # that keeps gunicorn's own status choice, logging and access log.
        util.write_error = write_json_error
        super().init_process()

    def load_wsgi(self) -> None:
        """The app, wrapped so that a render-cache hit answered before Flask
        (webapp.hitmemo) does not count towards ``max_requests``: recycling is against
        heap growth, and such an answer allocates next to nothing (at thousands of hits
        per second, counting them restarted a worker every few seconds)."""
        super().load_wsgi()
        settings = getattr(self.wsgi, "extensions", {}).get("cropstack.settings")
        trimmer = Trimmer() if settings is not None and settings.malloc_trim else None
        self.wsgi = _Uncounted(self.wsgi, self, trimmer)


class _Uncounted:
    """A WSGI app that gives back the request count of each answer given before Flask, and
    has the heap trimmed after the others (``malloc_trim``); other attributes are the
    app's (``worker_exit`` reads the app's extensions)."""

    def __init__(self, app: Any, worker: ThreadWorker, trimmer: Trimmer | None = None) -> None:
        self._app = app
        self._worker = worker
        self._trimmer = trimmer

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = self._app(environ, start_response)
        if environ.get(ANSWERED):
            self._worker.nr -= 1
        elif self._trimmer is not None:
            # Flask's requests read originals, receive uploads, hold outputs: once the
            # worker is quiet, their freed pages go back (webapp/allocator.py).
            self._trimmer.touch()
        return body

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


_DRAIN_CHUNK = 1 << 20
_DRAIN_STALL_S = 10.0
_DRAIN_TOTAL_S = 30.0
_BODY_TOTAL_S = 120.0  # 150 MB at 10 Mbit/s


def _length_body(environ: dict[str, Any]) -> tuple[Any, Any, int] | None:
    """(socket, gunicorn body, bytes of it still on the socket) for a body of known length
    read by this gunicorn; None for anything else (another server, a chunked body)."""
    sock = environ.get("gunicorn.socket")
    body = environ.get("wsgi.input")
    reader = getattr(body, "reader", None)
    unreader = getattr(reader, "unreader", None)
    if sock is None or not isinstance(getattr(reader, "length", None), int) or unreader is None:
        return None
    return sock, body, reader.length - unreader.buf.getbuffer().nbytes


def _discard(sock: Any, body: Any, left: int) -> None:
    """Receive and drop the ``left`` bytes of the request body still on the socket.

    gunicorn's body reader copies every chunk several times in Python (~180 MB/s here);
    ``recv_into`` one reused buffer costs almost nothing.
    """
    buffer = bytearray(_DRAIN_CHUNK)
    previous = sock.gettimeout()
    # A client that stalls, or trickles, does not hold the thread for long.
    sock.settimeout(_DRAIN_STALL_S)
    give_up = time.monotonic() + _DRAIN_TOTAL_S
    try:
        while left > 0:
            if time.monotonic() > give_up:
                raise TimeoutError("request body too slow")
            received = sock.recv_into(buffer, min(left, _DRAIN_CHUNK))
            if not received:
                break
            left -= received
    except OSError:
        body.failed = True  # where the next request starts is unknown: close the connection
    finally:
        sock.settimeout(previous)
    # Nothing of this body is left for gunicorn's keep-alive parser to skip.
    body.reader.unreader.buf = type(body.reader.unreader.buf)()
    body.reader.length = 0
    body.buf = type(body.buf)()


def finish_body(environ: dict[str, Any], max_bytes: int) -> None:
    """Before an answer goes out: a body the app left unread (an early 4xx, a 503, a 413) is
    dropped here, cheaply, rather than by gunicorn's slow reader, so a client that sends its
    whole body before reading still gets the answer. A body over twice ``max_bytes`` (the
    upload limit) is not received at all: the connection is closed instead."""
    found = _length_body(environ)
    if found is None:
        return  # not gunicorn's length-delimited body: the server drains it its own way
    sock, body, left = found
    if left <= 0 or body.failed:
        return  # nothing left, or the connection closes anyway
    if left > 2 * max_bytes:
        body.failed = True
    else:
        _discard(sock, body, left)


@contextmanager
def body_time_limit(environ: dict[str, Any], *, total_s: float = _BODY_TOTAL_S) -> Iterator[None]:
    """Bound the time the app may spend receiving the request body: each read waits at most
    ``_DRAIN_STALL_S`` seconds, the whole body ``total_s`` (then the read side is shut, the
    parser sees the body end). Either way ``BodyTooSlow``, and the connection is closed.

    Without it a client that stops sending (or trickles) holds its thread, and whatever
    place it took (an upload place), forever: gthread sockets block without a timeout.
    """
    sock = environ.get("gunicorn.socket")
    if sock is None:
        yield
        return
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        try:
            sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    timer = threading.Timer(total_s, expire)
    previous = sock.gettimeout()
    sock.settimeout(_DRAIN_STALL_S)
    timer.start()
    try:
        yield
    except (TimeoutError, ClientDisconnected) as exc:
        if expired.is_set() or _timed_out(exc):
            _close_after(environ)
            raise BodyTooSlow() from exc
        raise
    finally:
        timer.cancel()
        try:
            sock.settimeout(previous)
        except OSError:
            pass


class BodyTooSlow(Exception):
    """The request body did not arrive in time (the route answers 408)."""

    status = 408
    message = "Request body too slow: the connection is closed"


def _timed_out(exc: BaseException) -> bool:
    """Whether a read timeout is behind ``exc`` (werkzeug turns it into ClientDisconnected)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _close_after(environ: dict[str, Any]) -> None:
    body = environ.get("wsgi.input")
    if hasattr(body, "failed"):
        body.failed = True  # where the next request would start is unknown
