"""Counting what render URLs deliver, per organization and UTC day, without a catalog
write per request.

Each app (one per gunicorn worker process) holds one ``UsageCounter``. A render answer
marks the request (``mark_delivery``: the organization, and whether the body came from
the render cache); an ``after_request`` hook adds a 200 answer to a GET with its body
length to the counter, in memory. A daemon thread adds the counts to the catalog every
``stats_flush_seconds`` (``Usage.add_deliveries``, an UPSERT that adds, so the workers
and nodes sharing a database sum up), and ``close()`` flushes what is left when the
worker stops (gunicorn's ``worker_exit`` hook). A flush the catalog refuses (busy,
unreachable, read-only) keeps its counts for the next one; a worker killed outright loses
at most one interval's counts.

What counts (docs/stats.md): every 200 answer with an image body to a GET of a render URL
(stacks, ``dynamic``, ``source_file`` originals, IIIF images), whether rendered or read
from the render cache (``cache_hits`` says how many were). HEAD, 304 and errors deliver
no image and count nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g, request

from webapp.catalog import Catalog
from webapp.catalog.usage import DeliveryCount

log = logging.getLogger(__name__)

EXTENSION = "cropstack.usage"


@dataclass(slots=True)
class _Tally:
    renders: int = 0
    cache_hits: int = 0
    bytes: int = 0


class UsageCounter:
    """In-memory delivery counts of one process, flushed to the catalog.

    ``open_catalog`` makes a catalog handle (``CatalogBackend.open``); ``interval_s`` is
    the time between flushes, seconds (> 0). Thread-safe: request threads count while the
    flusher thread writes.
    """

    def __init__(self, open_catalog: Callable[[], Catalog], interval_s: float) -> None:
        self._open_catalog = open_catalog
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def count(self, org_id: str, size: int, *, cached: bool, day: str | None = None) -> None:
        """Count one delivered image of ``size`` bytes for ``org_id`` on ``day`` (UTC
        ``YYYY-MM-DD``, default today); starts the flusher on first use."""
        day = day or datetime.now(UTC).strftime("%Y-%m-%d")
        with self._lock:
            tally = self._tallies.setdefault((org_id, day), _Tally())
            tally.renders += 1
            tally.cache_hits += int(cached)
            tally.bytes += max(size, 0)
            if self._thread is None and not self._stop.is_set():
                # Started here, not with the app: under gunicorn the app is created in the
                # worker after the fork, and apps that never render need no thread.
                self._thread = threading.Thread(
                    target=self._run, name="cropstack-usage-flush", daemon=True
                )
                self._thread.start()

    def pending(self) -> int:
        """Renders counted in memory and not yet flushed."""
        with self._lock:
            return sum(t.renders for t in self._tallies.values())

    def flush(self) -> int:
        """Add the counts so far to the catalog; the renders written (0 when there was
        nothing to write or the catalog refused: the counts are then kept)."""
        with self._lock:
            taken, self._tallies = self._tallies, {}
        if not taken:
            return 0
        counts = [
            DeliveryCount(
                organization_id=org,
                day=day,
                renders=t.renders,
                cache_hits=t.cache_hits,
                bytes=t.bytes,
            )
            for (org, day), t in sorted(taken.items())
        ]
        try:
            catalog = self._open_catalog()
            try:
                catalog.usage.add_deliveries(counts)
            finally:
                catalog.close()
        except Exception as exc:  # noqa: BLE001 - any catalog fault: keep the counts, retry
            if not self._failing:  # once per outage, not once per interval
                log.warning("usage counts not written (%s): kept, retried every flush", exc)
            self._failing = True
            self._merge_back(taken)
            return 0
        if self._failing:
            log.warning("usage counts written again")
        self._failing = False
        return sum(c.renders for c in counts)

    def _merge_back(self, taken: dict[tuple[str, str], _Tally]) -> None:
        with self._lock:
            for key, old in taken.items():
                tally = self._tallies.setdefault(key, _Tally())
                tally.renders += old.renders
                tally.cache_hits += old.cache_hits
                tally.bytes += old.bytes

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.flush()

    def close(self) -> None:
        """Stop the flusher and write what is left (a worker's last flush)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._interval_s + 5)
        self.flush()


def mark_delivery(org_id: str, *, cached: bool) -> None:
    """Mark this request's answer as an image of ``org_id`` (read from the render cache
    when ``cached``); it is counted once answered, if it is a 200 to a GET."""
    g.usage_delivery = (org_id, cached)


def install(app: Flask, counter: UsageCounter) -> None:
    """Keep ``counter`` on ``app`` and count the marked answers of its requests."""
    app.extensions[EXTENSION] = counter
    app.after_request(_count_answer)


def _count_answer(response: Response) -> Response:
    marked = g.pop("usage_delivery", None)
    if marked is None or request.method != "GET" or response.status_code != 200:
        return response
    size = response.content_length
    if size is None:  # every render answer has a length; a stream would be counted as 0
        size = 0
    org_id, cached = marked
    current_app.extensions[EXTENSION].count(org_id, size, cached=cached)
    return response


def counter_of(app: Flask) -> UsageCounter | None:
    """The counter of ``app`` (None for an app made without one)."""
    return app.extensions.get(EXTENSION)
