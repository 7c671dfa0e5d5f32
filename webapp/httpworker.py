"""The gunicorn worker of ``cropstack serve``: gthread, with gunicorn's own errors in JSON.

gunicorn answers requests it cannot parse (request line over ``limit_request_line``, a
header over ``limit_request_field_size``, too many headers, malformed lines) itself,
before the app sees them, with a small HTML page. Every error of this service is the
JSON error shape, so this worker sends that shape instead: same status, same reason.

For many small answers (render-cache hits, docs/performance.md "The tail"): a hit on a
kept-alive connection is answered on the worker's event-loop thread, without a request
thread (``JsonErrorWorker._answer_early``); a request thread serves the next request of
its kept-alive connection itself when it comes soon (``JsonErrorWorker.handle``), the
head and a small body go out in one send (``OneSendResponse``), and the worker's set-up
is frozen out of the garbage collector (``settle_heap``).
"""

from __future__ import annotations

import gc
import io
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gunicorn import SERVER, util
from gunicorn.http import wsgi
from gunicorn.workers.gthread import ThreadWorker
from werkzeug.exceptions import ClientDisconnected

from webapp import requesthead
from webapp.allocator import Trimmer
from webapp.hitmemo import ANSWERED, HitMemo

_MAX_MESSAGE = 200  # characters; gunicorn's messages may quote the (long) request line
# A body's first chunk up to this size goes out in the same send as the head (one copy).
_COALESCE_MAX = 64 * 1024
# How long a request thread waits for the next request on the connection it has just
# answered (keep-alive) before it hands the connection back to gunicorn's poller; only
# while no other connection waits for a thread.
LINGER_S = 0.002
# Render-cache hits answered on the event-loop thread (``JsonErrorWorker._answer_early``):
# at most this many bytes of a request head are read there, and only bodies up to this
# size are sent from there (a larger one goes through a request thread as before).
_EARLY_READ = 16 * 1024
EARLY_BODY_MAX = 256 * 1024


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
        # ``wsgi.create`` builds gunicorn's ``Response`` by this module-level name.
        wsgi.Response = OneSendResponse
        super().init_process()

    _memo: HitMemo | None = None

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection has a request: answered right here when it is a hit of
        the map of recent render URLs (webapp/hitmemo.py), else handed to a request thread
        as gunicorn does."""
        if self._memo is None or not self.alive or not self._answer_early(conn):
            super().on_client_socket_readable(conn, client)

    def _answer_early(self, conn: Any) -> bool:
        """Answer the request waiting on kept-alive ``conn`` on this (the event-loop)
        thread when it is a plain GET or HEAD of a render URL the hit memo holds; True
        when it was answered (the connection stays in the poller, or a request thread
        sends the rest of a long answer), False when gunicorn must handle it: whatever
        was read is given back to gunicorn's parser first.

        Through gunicorn a hit went from this thread to a request thread and back (a
        future, a callback, a pipe write, two poller updates, two thread wake-ups), was
        parsed by gunicorn into a WSGI request and answered through its ``Response``:
        ~250 µs of Python, and under load the request threads queued for the GIL behind
        each other and behind this thread. Here a hit is one ``recv``, a strict parse of
        its head (webapp/requesthead.py), the memo's answer (catalog version check, cache
        file read, access-log line, metrics, delivery count) and one ``send``."""
        parser = conn.parser
        if parser is None or conn.is_http2 or len(self.keepalived_conns) > self.max_keepalived:
            return False  # gunicorn would close after the answer: it answers
        try:
            data = conn.sock.recv(_EARLY_READ)
        except (BlockingIOError, InterruptedError):
            return True  # woken for nothing: the connection waits in the poller still
        except OSError:
            return False  # the request thread meets the same error and closes
        if not data:
            return False  # the client closed: gunicorn's parser sees the end
        payload = None
        try:
            head = None
            if not parser.unreader.buf.getbuffer().nbytes:
                head = requesthead.parse(data, line_max=self._line_max)
            answer = None
            if head is not None:
                answer = self._memo.answer(  # type: ignore[union-attr]
                    head.environ(conn.client), max_bytes=EARLY_BODY_MAX
                )
            if answer is not None:
                payload = self._head(answer) + answer.body
        except Exception:  # noqa: BLE001 - never the event loop's end: the route answers
            self.log.exception("answering a cached render early failed")
        if payload is None:
            parser.unreader.unread(data)
            return False
        try:
            sent = conn.sock.send(payload)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(conn)
            return True
        self.keepalived_conns.remove(conn)
        if sent < len(payload):
            # The socket's buffer is full (a slow reader): a request thread sends the
            # rest, blocking as gunicorn's own answers do, then the connection comes back.
            self.poller.unregister(conn.sock)
            future = self.tpool.submit(self._send_rest, conn, payload[sent:])
            future.add_done_callback(
                lambda done: self.method_queue.defer(self.finish_request, conn, done)
            )
            return True
        conn.set_timeout()  # kept alive from now, at the back of the line
        self.keepalived_conns.append(conn)
        return True

    def _head(self, answer: Any) -> bytes:
        """The status line and header fields of ``answer`` as gunicorn writes them."""
        now = int(time.time())
        if now != self._date_at:
            self._date_at, self._date = now, util.http_date(now)
        lines = [
            f"HTTP/1.1 {answer.status}\r\nServer: {SERVER}\r\nDate: {self._date}\r\n"
            "Connection: keep-alive\r\n",
            *(f"{name}: {value}\r\n" for name, value in answer.headers),
            "\r\n",
        ]
        return "".join(lines).encode("latin-1")

    _date_at = 0
    _date = ""

    @staticmethod
    def _send_rest(conn: Any, rest: bytes) -> bool:
        """Send ``rest`` of an early answer (request thread); True: keep the connection."""
        try:
            conn.sock.setblocking(True)
            util.write(conn.sock, rest)
        except OSError:
            return False
        return True

    def _drop(self, conn: Any) -> None:
        """Close kept-alive ``conn`` (its client went away)."""
        self.keepalived_conns.remove(conn)
        self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def handle(self, conn: Any) -> Any:
        """gunicorn's ``handle`` (one request of ``conn``), then the next ones of the same
        connection on this thread as long as each arrives within ``LINGER_S``.

        gunicorn hands a kept-alive connection back to its main thread after each answer:
        the connection goes into the poller, the main thread wakes when the next request
        arrives, and submits it to the pool again. For a cache hit that round trip was
        more Python than the answer itself (a future, a callback, a pipe write, two poller
        updates, two thread wake-ups), all of it on the one main thread, which every
        request of the worker passed through twice: under load it was the queue the
        tail waited in. A connection whose next request is already there (a browser's
        burst, a proxy's busy connection) now stays on its thread; one that is quiet for
        ``LINGER_S``, or whenever another connection waits for a thread, goes back to the
        poller as before."""
        result = super().handle(conn)
        while (
            result is True
            and self.alive
            and not (self._memo is not None and getattr(self._answered, "early", False))
            and self._next_request_soon(conn)
        ):
            result = super().handle(conn)
        return result

    def _next_request_soon(self, conn: Any) -> bool:
        parser = conn.parser
        if conn.is_http2 or parser is None:
            return False
        queue = getattr(self.tpool, "_work_queue", None)
        if queue is None or not queue.empty():
            # Another connection waits for a thread: this one goes to the back of the
            # line, as gunicorn would have it (one busy client never holds a thread).
            return False
        if parser.unreader.buf.getbuffer().nbytes:
            return True  # read ahead already: gunicorn would resubmit it at once too
        poller = select.poll()
        poller.register(conn.sock, select.POLLIN)
        return bool(poller.poll(LINGER_S * 1000))

    def load_wsgi(self) -> None:
        """The app, wrapped so that a render-cache hit answered before Flask
        (webapp.hitmemo) does not count towards ``max_requests``: recycling is against
        heap growth, and such an answer allocates next to nothing (at thousands of hits
        per second, counting them restarted a worker every few seconds)."""
        super().load_wsgi()
        settings = getattr(self.wsgi, "extensions", {}).get("cropstack.settings")
        trimmer = Trimmer() if settings is not None and settings.malloc_trim else None
        self._answered = threading.local()
        self.wsgi = _Uncounted(self.wsgi, self, trimmer)
        memo = getattr(self.wsgi, "wsgi_app", None)
        cfg = self.cfg
        plain = not cfg.is_ssl and cfg.proxy_protocol in ("off", False, None)
        plain = plain and cfg.protocol == "http"
        if isinstance(memo, HitMemo) and plain and self.cfg.keepalive:
            # Hits are answered on the event loop; after one, a request thread does not
            # keep the connection for its next request (which is likely a hit too).
            self._memo = memo
            self._line_max = self.cfg.limit_request_line or requesthead.FIELD_MAX
        settle_heap()


def settle_heap() -> None:
    """Once the app is set up: collect, then move every object left (modules, the app,
    its routes; ~60,000) into the collector's permanent generation, which it never
    scans again. Without it each full collection walks them all (tens of ms, every
    thread of the worker stopped): a latency spike no request caused. Objects made
    later are collected as before; what was frozen is never freed, and it is the
    worker's set-up, which lives as long as the worker anyway."""
    gc.collect()
    gc.freeze()


class OneSendResponse(wsgi.Response):  # type: ignore[misc]
    """gunicorn's response, whose head goes out in the same ``send`` as the body's first
    chunk (up to ``_COALESCE_MAX`` bytes): one system call, not two, for a small answer
    (a cache hit). gunicorn sends the head on its own; the second small send then costs
    a second wake-up of the client and of this worker's threads."""

    _head = b""

    def write(self, arg: bytes) -> None:
        if (
            self.headers_sent
            or self.chunked
            or self._omits_body
            or not isinstance(arg, bytes)
            or not 0 < len(arg) <= _COALESCE_MAX
        ):
            super().write(arg)
            return
        sock, self.sock = self.sock, _Held()
        try:
            self.send_headers()  # gunicorn's head, built as always, held back
        finally:
            self._head, self.sock = self.sock.data, sock
        super().write(arg)  # headers_sent: on to _emit_body (after any truncation)
        if self._head:  # nothing of the body was sent (Content-Length: 0): the head alone
            head, self._head = self._head, b""
            util.write(self.sock, head)

    def _emit_body(self, data: bytes) -> None:
        head, self._head = self._head, b""
        super()._emit_body(head + data if head else data)


class _Held:
    """A stand-in socket that keeps what is sent to it."""

    data = b""

    def sendall(self, data: bytes) -> None:
        self.data += data


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
        early = bool(environ.get(ANSWERED))
        self._worker._answered.early = early
        if early:
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


class SocketBody(io.RawIOBase):
    """The unread rest of gunicorn's length-delimited request body, received straight from
    the socket with ``recv_into`` into the caller's buffer (gunicorn's reader copies every
    chunk several times in Python: ~35 ms of a 6.3 MB upload).

    gunicorn's own accounting is kept exact after every read (its buffers hold nothing of
    the body, ``reader.length`` counts the bytes still on the socket), so its keep-alive
    parser and :func:`finish_body` see what is left; socket timeouts and errors surface as
    ``OSError`` (werkzeug: ``ClientDisconnected``), and the connection is then closed.
    """

    def __init__(self, sock: Any, body: Any) -> None:
        super().__init__()
        self._sock = sock
        self._body = body
        reader = body.reader
        # What gunicorn already holds of the body: its own buffer (bytes it took from the
        # reader), then the reader's read-ahead (never past the body's end, see _length_body).
        ahead = reader.unreader.buf.getvalue()
        taken = ahead[: reader.length]
        self._held = memoryview(body.buf.getvalue() + taken)
        reader.unreader.buf = type(reader.unreader.buf)()
        reader.unreader.buf.write(ahead[len(taken) :])
        reader.length -= len(taken)
        body.buf = type(body.buf)()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # type: ignore[override]
        """Fill ``buffer`` with the next bytes of the body; 0 at its end."""
        view = memoryview(buffer).cast("B")
        if self._held:
            count = min(len(view), len(self._held))
            view[:count] = self._held[:count]
            self._held = self._held[count:]
            return count
        reader = self._body.reader
        if reader.length <= 0 or not view:
            return 0
        try:
            count = self._sock.recv_into(view, min(len(view), reader.length))
        except OSError:
            self._body.failed = True  # where the next request starts is unknown
            raise
        if not count:
            self._body.failed = True  # the client closed (or the read side was shut)
        reader.length -= count
        return count


def socket_body(environ: dict[str, Any]) -> SocketBody | None:
    """A :class:`SocketBody` over this request's body when gunicorn serves it with a known
    length and the app has not read from it yet; None otherwise (use ``wsgi.input``)."""
    found = _length_body(environ)
    if found is None:
        return None
    sock, body, _ = found
    return SocketBody(sock, body)


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
