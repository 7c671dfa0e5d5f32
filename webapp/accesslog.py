"""Per-request bookkeeping: the JSON access log line and the request metrics.

One line per request on stderr, a JSON object::

    {"time": "2026-11-30T05:31:02.123Z", "event": "request", "method": "GET",
     "route": "/sourceimages/<org>", "status": 200, "duration_ms": 12.3, "bytes": 512,
     "org": "acme", "remote": "127.0.0.1", "pid": 4242}

``route`` is the URL rule (``render`` for render URLs, ``unmatched`` for paths no route
takes), never the raw path or query: so no API key, signing key, ``sig`` parameter or
``Authorization`` header can reach the log, whatever a client puts where. ``org`` is the
organization named by the URL (as sent, at most 64 characters; null when none);
``remote`` the client's address (``webapp.auth.client_ip``: the connecting address, or
the one trusted proxies appended to ``X-Forwarded-For`` when ``proxy_count`` is set).
``bytes`` is the answer's body length (null when streamed without a length).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from flask import Flask, Response, current_app, g, request

from webapp.auth import client_ip
from webapp.metrics import HTTP_DURATION, HTTP_REQUESTS, route_label
from webapp.settings import Settings

log = logging.getLogger("cropstack.access")
_configured = False
_handler: _LineHandler | None = None  # set once configured
_ORG_MAX = 64
# Methods any route of this service takes; others are labelled "other" (a client can
# send any token as a method, and each distinct label is a new time series).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "COPY", "OPTIONS"})


class _LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Each line in one ``write(2)`` to the stream's descriptor, with no lock held.

    logging's handlers hold a lock around the write; a request thread lets go of the GIL
    inside that write and then waits for it again with the lock held, while every other
    request thread queues on the lock (at thousands of requests per second, a convoy of
    milliseconds). One ``write`` of a whole line needs no lock: a line (a few hundred
    bytes, under ``PIPE_BUF``) is never split by another line on a pipe, nor in a file.
    A stream without a descriptor (a test's capture) is written as logging does."""

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        try:
            self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            return bool(super().handle(record))
        try:
            self._write_line(self.format(record))
        except Exception:  # noqa: BLE001 - as logging: a failed log line never fails a request
            self.handleError(record)
        return True

    def write(self, text: str) -> None:
        """``text`` as one line, as ``handle`` writes a record whose message it is (the
        formatter is ``%(message)s``): for the access log, without building a record."""
        try:
            self.stream.fileno()
            self._write_line(text)
        except Exception:  # noqa: BLE001 - as logging: a failed log line never fails a request
            super().handle(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))

    def _write_line(self, text: str) -> None:
        fd = self.stream.fileno()
        data = memoryview((text + "\n").encode("utf-8", "replace"))
        while data:
            data = data[os.write(fd, data) :]


def _configure_logger() -> None:
    """Log lines as they are, to stderr, once per process; not through the root logger
    (gunicorn's or pytest's formatting would wrap the JSON)."""
    global _configured, _handler
    if not _configured:
        handler = _handler = _LineHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        _configured = True


def install(app: Flask) -> None:
    """Time every request of ``app``, count it, and log it when ``access_log`` is on.

    Registered before the app's other ``after_request`` functions, so it runs after them
    (Flask runs them in reverse order) and sees the final answer.
    """
    _configure_logger()
    app.before_request(_start)
    app.after_request(_finish)


def _start() -> None:
    g.started = time.perf_counter()


def _org() -> str | None:
    args = request.view_args or {}
    org = args.get("org", args.get("org_name"))  # org_name: IIIF by path
    if org is None and request.endpoint and request.endpoint.startswith("accounts."):
        org = args.get("name")  # /organizations/<name>
    if org is None and request.endpoint == "render.render":
        settings = current_app.extensions["cropstack.settings"]
        host = request.host.split(":", 1)[0].lower()
        domain = settings.render_domain.lower()
        if domain and host.endswith("." + domain):
            org = host[: -len(domain) - 1]
        else:
            org = str(args.get("path", "")).partition("/")[0]
    return None if org is None else str(org)[:_ORG_MAX]


def _finish(response: Response) -> Response:
    started = g.get("started")
    duration = time.perf_counter() - started if started is not None else 0.0
    rule = request.url_rule.rule if request.url_rule is not None else None
    settings = current_app.extensions["cropstack.settings"]
    record(
        settings,
        method=request.method,
        route=route_label(rule, request.endpoint),
        status=response.status_code,
        duration=duration,
        size=response.content_length,
        org=_org() if settings.access_log else None,
        remote=client_ip(settings) if settings.access_log else "",
    )
    return response


def record(
    settings: Settings,
    *,
    method: str,
    route: str,
    status: int,
    duration: float,
    size: int | None,
    org: str | None,
    remote: str,
) -> None:
    """Count one answered request (``duration`` in seconds, ``size`` the body's bytes)
    and log its line when ``access_log`` is on."""
    method = method if method in _METHODS else "other"
    series = _series.get((method, route, status))
    if series is None:
        # Labels are bounded (methods, route templates, statuses): so is this map.
        series = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_DURATION.labels(method, route),
        )
        _series[(method, route, status)] = series
    series[0].inc()
    series[1].observe(duration)
    if settings.access_log:
        global _stamp
        now = time.time()
        second, prefix = _stamp
        if second != int(now):
            second = int(now)
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            _stamp = (second, prefix)
        line = {
            "time": f"{prefix}{int((now - second) * 1000):03d}Z",
            "event": "request",
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(duration * 1000, 1),
            "bytes": size,
            "org": org,
            "remote": remote[:64],
            "pid": os.getpid(),
        }
        text = json.dumps(line, ensure_ascii=True, separators=(",", ":"))
        handler = _handler
        if (
            handler is not None
            and log.handlers == [handler]
            and not (log.filters or handler.filters)
            and not log.disabled
            and log.isEnabledFor(logging.INFO)
        ):
            handler.write(text)  # what log.info would do, without a LogRecord
        else:
            log.info(text)


# (method, route, status) -> the request counter's and the duration histogram's series
_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
# the second of the last line's time, and that time's text up to the milliseconds
_stamp: tuple[int, str] = (-1, "")
