"""Render-cache hits and 304s answered before Flask, from a map of recent render URLs.

A hit through the render route costs a catalog handle, three lookups, URL parsing and
plan building before the cache file is read; all of that only ever depends on the
request line, the ``Host`` and ``Accept`` headers and the catalog. So after the route
answered a plain render (not protected or signed, no preview, no expression reading
other request headers) from the render cache or stored it there, this WSGI layer keeps
what it answered: the cache key and the response headers, under the request's identity.
The next identical request is answered here: 304 when its ``If-None-Match`` matches,
else the cache file's bytes.

Invalidation: every entry carries the catalog's version when its request began: a
generation raised whenever SQLite's ``PRAGMA data_version`` (read on each request
thread's own watching connection) changes, which it does whenever any connection, in any
process, commits (a metadata change, a delete, a new stack, an organization option). An
entry of another version is never used, so a catalog change is seen by the very next
request, as through the route. Purges delete the cache files: the file read here misses,
and the request goes to the route. With a PostgreSQL catalog (no such cheap version)
nothing is kept and every request goes to the route.

Every answer from here is logged and counted as the route's would be (webapp.accesslog),
and a 200 to a GET counts as a delivery from the render cache (webapp.usagecounter). The
delivery counts' own flushes are catalog commits too: each empties the map in effect,
once per ``stats_flush_seconds``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.http import parse_etags

from webapp import accesslog
from webapp.auth import remote_of
from webapp.rendercache import CacheKey, RenderCache
from webapp.settings import Settings
from webapp.usagecounter import UsageCounter

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000  # render URLs kept per process (about 1 KiB each)
# A request whose host, path, query and Accept add up to more is answered by the route
# and not remembered: the client chooses them (8 KiB each), so without this bound 10,000
# entries could hold hundreds of MB per worker.
MAX_IDENTITY_BYTES = 2048
HINT = "cropstack.hit_memo"  # environ: what the render route answered from the cache
_VERSION = "cropstack.hit_memo.version"  # environ: the catalog version at the start
# environ: set when this layer answered; such a request does not count towards a worker's
# recycling (webapp/httpworker.py): it allocates next to nothing.
ANSWERED = "cropstack.hit_memo.answered"

StartResponse = Callable[..., Any]
_LENGTH = "Content-Length"  # in an entry's headers: filled in with the body's length
_Identity = tuple[str, str, str, str]  # host, raw path, query, Accept


@dataclass(frozen=True, slots=True)
class Hint:
    """What the render route tells this layer about a cacheable answer."""

    key: CacheKey
    org: str | None  # for the access log
    org_id: str  # for the delivery counts (webapp/usagecounter.py)
    # When the route answered 304: the headers the 200 has beyond (or instead of) the
    # 304's (its Content-Type), and the cached body's length in bytes.
    full: dict[str, str] | None = None
    size: int = -1


@dataclass(frozen=True, slots=True)
class _Entry:
    version: int
    key: CacheKey
    org: str | None
    org_id: str
    # the 200's headers in the route's order, Content-Length's value left empty
    headers: tuple[tuple[str, str], ...]
    size: int  # the body's bytes as the route answered (-1: not told)
    path: str  # the render cache's file of ``key``


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer given from this layer: a WSGI status line, headers and body (empty for a
    304 or a HEAD); logged and counted already."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes


class CatalogVersion:
    """A number for the state of the SQLite catalog at ``path`` as this process sees it:
    it changes after any commit by any connection, in any process.

    Each thread reads ``PRAGMA data_version`` on a connection of its own (3 µs), with no
    lock: one connection behind a lock made a convoy under load, since the holder lets go
    of the GIL inside SQLite and then waits for it with the lock held, while every other
    request thread queues on the lock. ``data_version`` is per connection, so the number
    handed out is a process-wide generation, raised (under a lock, rarely taken) whenever
    a thread's connection reports a change, or first reads. Every commit is seen by each
    connection's next read; the first of those reads after the commit raises the
    generation before its request looks up anything, so no request that starts after a
    commit is given an older generation's number. Extra raises (each connection sees the
    same commit) only cost misses. Connections: one per request thread (gunicorn's pool:
    ``--threads``) plus the thread that created this, each 3 file descriptors.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._local = threading.local()
        self._raise = threading.Lock()
        self._generation = 0
        self.read()  # open now: the app holds its descriptors from the start

    def read(self) -> int | None:
        """The current generation, or None when the catalog cannot be read."""
        local = self._local
        try:
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = sqlite3.connect(self._path, isolation_level=None)
                local.conn, local.seen = conn, None
            seen = int(conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            conn = getattr(local, "conn", None)
            local.conn = local.seen = None
            if conn is not None:
                conn.close()
            return None
        if seen != local.seen:
            with self._raise:  # ``+=`` of two threads at once could lose one raise
                self._generation += 1
            local.seen = seen
        return self._generation


class HitMemo:
    """The WSGI layer in front of the Flask app ``app`` (see the module docstring)."""

    def __init__(
        self,
        app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
        *,
        settings: Settings,
        cache: RenderCache,
        catalog_path: str,
        counter: UsageCounter | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.cache = cache
        self.counter = counter
        self.version = CatalogVersion(catalog_path)
        self._entries: OrderedDict[_Identity, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD") or _has_body(environ):
            return self.app(environ, start_response)
        started = time.perf_counter()
        version = self.version.read()
        if version is None:
            return self.app(environ, start_response)
        ident = _identity(environ)
        answer = self._lookup(ident, version, environ, started)
        if answer is not None:
            start_response(answer.status, answer.headers)
            environ[ANSWERED] = True
            return [answer.body] if answer.body else []
        environ[_VERSION] = version
        return self.app(environ, self._remembering(ident, environ, start_response))

    def answer(self, environ: dict[str, Any], *, max_bytes: int) -> Answer | None:
        """The answer to a body-less ``GET`` or ``HEAD`` described by ``environ`` when this
        layer holds it and its body is at most ``max_bytes``; None when the request must go
        through the app (``__call__``). For a server that answers before building a whole
        WSGI request (webapp/httpworker.py); logs and counts as ``__call__`` does."""
        started = time.perf_counter()
        version = self.version.read()
        if version is None:
            return None
        return self._lookup(_identity(environ), version, environ, started, max_bytes)

    def _lookup(
        self,
        ident: _Identity,
        version: int,
        environ: dict[str, Any],
        started: float,
        max_bytes: int | None = None,
    ) -> Answer | None:
        with self._lock:
            entry = self._entries.get(ident)
        if entry is None or entry.version != version:
            return None
        if max_bytes is not None and not 0 <= entry.size <= max_bytes:
            return None
        return self._answer(entry, environ, started)

    def _remembering(
        self, ident: _Identity, environ: dict[str, Any], start_response: StartResponse
    ) -> StartResponse:
        def start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            hint = environ.get(HINT)
            small = sum(map(len, ident)) <= MAX_IDENTITY_BYTES
            full = status.startswith("200 ") or (
                status.startswith("304 ") and hint is not None and hint.full is not None
            )
            if hint is not None and small and full:
                told = [v for k, v in headers if k.lower() == "content-length"]
                size = int(told[0]) if told and told[0].isdigit() else -1
                kept = tuple(
                    (_LENGTH, "") if k.lower() == "content-length" else (k, v) for k, v in headers
                )
                if hint.full is not None:  # a 304: the 200's headers, as the route told
                    kept = _completed(kept, {**hint.full, _LENGTH: ""})
                    size = hint.size
                path = self.cache.path_of(hint.key)
                entry = _Entry(
                    environ[_VERSION], hint.key, hint.org, hint.org_id, kept, size, path
                )
                with self._lock:
                    self._entries[ident] = entry
                    self._entries.move_to_end(ident)
                    while len(self._entries) > MAX_ENTRIES:
                        self._entries.popitem(last=False)
            return start_response(status, headers, *args)

        return start

    def _answer(self, entry: _Entry, environ: dict[str, Any], started: float) -> Answer | None:
        """The answer to a request ``entry`` holds, or None when the route must answer
        (the cache file is gone: purged or evicted)."""
        etag = entry.key.etag.strip('"')
        if parse_etags(environ.get("HTTP_IF_NONE_MATCH")).contains_weak(etag):
            # As the route's 304: its headers, without the body's type and length.
            headers = [(k, v) for k, v in entry.headers if k is not _LENGTH]
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            self._log(environ, entry, 304, None, started)
            return Answer("304 NOT MODIFIED", headers, b"")
        body = self.cache.read(entry.path)
        if body is None:
            with self._lock:
                self._entries.pop(_identity(environ), None)
            return None
        length = str(len(body))
        headers = [(k, length) if k is _LENGTH else (k, v) for k, v in entry.headers]
        if self.counter is not None and environ.get("REQUEST_METHOD") == "GET":
            self.counter.count(entry.org_id, len(body), cached=True)  # as the route counts
        self._log(environ, entry, 200, len(body), started)
        return Answer("200 OK", headers, b"" if environ.get("REQUEST_METHOD") == "HEAD" else body)

    def _log(
        self,
        environ: dict[str, Any],
        entry: _Entry,
        status: int,
        size: int | None,
        started: float,
    ) -> None:
        accesslog.record(
            self.settings,
            method=environ["REQUEST_METHOD"],
            route="render",
            status=status,
            duration=time.perf_counter() - started,
            size=size,
            org=entry.org,
            remote=remote_of(
                self.settings, environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR")
            ),
        )


def _completed(
    headers: tuple[tuple[str, str], ...], full: dict[str, str]
) -> tuple[tuple[str, str], ...]:
    """``headers`` with the values of ``full`` (by name, case-insensitive) in place, and
    those of its names ``headers`` lacks added."""
    lower = {name.lower(): value for name, value in full.items()}
    kept = tuple((k, lower.pop(k.lower(), v)) for k, v in headers)
    return kept + tuple((k, v) for k, v in full.items() if k.lower() in lower)


def _has_body(environ: dict[str, Any]) -> bool:
    length = environ.get("CONTENT_LENGTH")
    return bool(length and length != "0") or "chunked" in environ.get(
        "HTTP_TRANSFER_ENCODING", ""
    ).lower()


def _identity(environ: dict[str, Any]) -> _Identity:
    """What a render answer depends on besides the catalog: the host, the raw path as sent
    (gunicorn's ``RAW_URI`` also holds the query), the query (signatures and ``v`` are in
    it) and ``Accept`` (autoformat)."""
    path = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not path:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    return environ.get("HTTP_HOST", ""), path, query, environ.get("HTTP_ACCEPT", "")
