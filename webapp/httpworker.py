"""The gunicorn worker of ``cropstack serve``: gthread, with gunicorn's own errors in JSON.

gunicorn answers requests it cannot parse (request line over ``limit_request_line``, a
header over ``limit_request_field_size``, too many headers, malformed lines) itself,
before the app sees them, with a small HTML page. Every error of this service is the
JSON error shape, so this worker sends that shape instead: same status, same reason.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

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
