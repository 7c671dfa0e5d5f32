"""Prometheus metrics of the service, and the ``GET /metrics`` answer.

Every web worker process counts into prometheus-client's metrics. Under ``cropstack
serve`` the metrics are shared across gunicorn's worker processes: the command points
``PROMETHEUS_MULTIPROC_DIR`` at a private directory (``<data dir>/metrics``, emptied at
each start) before any worker imports this module, each worker writes its values to
files there, and a scrape sums them (``MultiProcessCollector``), so the answer is the
same whichever worker it reaches. Without that variable (tests, ``flask run``) the
process's own registry answers.

Names and labels (no label carries an organization, a hash or a key: bounded cardinality):

- ``cropstack_http_requests_total{method,route,status}`` and
  ``cropstack_http_request_duration_seconds{method,route}``: ``route`` is the URL rule
  (``/sourceimages/<org>``), ``render`` for render URLs, ``unmatched`` for 404s;
- ``cropstack_jobs_seconds{kind,lane}``: time a render process spent on a render
  (``kind=render``) or an upload check (``kind=probe``), seconds;
- ``cropstack_queue_wait_seconds{queue}``: time a render or an upload waited for a place
  (``queue`` = ``cheap``, ``expensive``, ``upload``), seconds;
- ``cropstack_busy_total{queue,reason}``: 503s for want of capacity (``queue_full``,
  ``wait_timeout``, ``start_failed``, ``deadline``, ``crashed``);
- ``cropstack_render_cache_requests_total{result}`` (``hit``, ``miss``),
  ``cropstack_render_cache_evictions_total``, and ``cropstack_render_cache_bytes`` (the
  shared usage counter of the cache, read at scrape time);
- ``cropstack_storage_errors_total{part,kind}``: catalog (``part=catalog``) and blob
  store (``part=store``) faults: ``full``, ``read_only``, ``io``, ``busy``,
  ``unavailable``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "cropstack_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "cropstack_http_request_duration_seconds",
    "Time from the request reaching the app to its answer, seconds.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)
JOB_DURATION = Histogram(
    "cropstack_jobs_seconds",
    "Time a render process spent on one job (render, or probe = upload check), seconds.",
    ["kind", "lane"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
QUEUE_WAIT = Histogram(
    "cropstack_queue_wait_seconds",
    "Time a render or an upload waited for a place, seconds (0 when one was free).",
    ["queue"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
BUSY = Counter(
    "cropstack_busy",
    "503 answers for want of capacity, by queue and reason.",
    ["queue", "reason"],
)
CACHE_REQUESTS = Counter(
    "cropstack_render_cache_requests",
    "Render cache look-ups, by result (hit, miss).",
    ["result"],
)
CACHE_EVICTIONS = Counter(
    "cropstack_render_cache_evictions",
    "Render cache entries removed to stay under the bound.",
)
STORAGE_ERRORS = Counter(
    "cropstack_storage_errors",
    "Catalog and blob store faults, by part (catalog, store) and kind.",
    ["part", "kind"],
)


def route_label(rule: str | None, endpoint: str | None) -> str:
    """The ``route`` label of a request: its URL rule, ``render`` or ``unmatched``."""
    if rule is None:
        return "unmatched"
    if endpoint == "render.render":
        return "render"
    return rule


class _CacheBytes(Collector):
    """``cropstack_render_cache_bytes``, read from the cache's shared counter per scrape."""

    def __init__(self, read: Callable[[], int | None]) -> None:
        self._read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        value = self._read()
        family = GaugeMetricFamily(
            "cropstack_render_cache_bytes",
            "Bytes the render cache holds (its usage counter; 4 KiB blocks).",
        )
        if value is not None:
            family.add_metric([], float(value))
        yield family


def exposition(cache_bytes: Callable[[], int | None]) -> tuple[bytes, str]:
    """The text exposition of every metric (all workers' under ``cropstack serve``) and
    its content type."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
        registry.register(_CacheBytes(cache_bytes))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    registry.register(_CacheBytes(cache_bytes))
    return generate_latest(REGISTRY) + generate_latest(registry), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Forget a dead worker's live gauges (gunicorn's ``child_exit`` hook)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
