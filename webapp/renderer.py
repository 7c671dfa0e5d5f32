"""The web layer's handle on the engine: per-process set-up and the render bound.

libvips must be configured in each process after any fork (gunicorn forks workers), so
``ensure_engine`` runs lazily on first use and again if the process id changed. Renders
are bounded per process by a semaphore: past the bound a request waits up to
``render_queue_timeout`` seconds, then gets 503 with ``Retry-After``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import engine
from stacks.plan import RenderPlan
from webapp.errors import ApiError
from webapp.settings import Settings

_lock = threading.Lock()
_configured_pid: int | None = None
# One semaphore per configured bound: in production one app runs per process; tests may
# build apps with different bounds in one process, and each must get its own.
_slots: dict[int, threading.BoundedSemaphore] = {}


def ensure_engine(settings: Settings) -> None:
    """Configure libvips for this process once (cache off, concurrency, loaders)."""
    global _configured_pid
    if _configured_pid == os.getpid():
        return
    with _lock:
        if _configured_pid == os.getpid():
            return
        engine.configure(concurrency=max(1, settings.vips_concurrency))
        _slots.clear()  # semaphores inherited through a fork are not ours
        _configured_pid = os.getpid()


def _slots_for(settings: Settings) -> threading.BoundedSemaphore:
    bound = max(1, settings.render_concurrency)
    with _lock:
        return _slots.setdefault(bound, threading.BoundedSemaphore(bound))


@contextmanager
def render_slot(settings: Settings) -> Iterator[None]:
    """Hold one of this process's render slots, or raise 503 when none frees in time."""
    ensure_engine(settings)
    slots = _slots_for(settings)
    if not slots.acquire(timeout=settings.render_queue_timeout):
        raise ApiError(
            503, "Too many renders in progress, retry shortly", headers={"Retry-After": "1"}
        )
    try:
        yield
    finally:
        slots.release()


def render(
    settings: Settings,
    plan: RenderPlan,
    source: bytes,
    *,
    dynamic_metadata: Mapping[str, Any] | None,
    info: engine.ImageInfo | None = None,
) -> engine.Rendered:
    """``engine.render`` inside a render slot."""
    with render_slot(settings):
        return engine.render(
            plan,
            source,
            dynamic_metadata=dynamic_metadata,
            info=info,
            max_side=settings.max_output_side,
            max_pixels=settings.max_output_pixels,
        )


def check_output_size(settings: Settings, plan: RenderPlan, width: int, height: int) -> None:
    """400 (``OutputTooLarge``) when ``plan`` on a ``width`` x ``height`` source would exceed
    the configured output limits; decided from geometry, before any pixel is decoded."""
    engine.check_output_size(
        plan,
        engine.Size(width, height),
        max_side=settings.max_output_side,
        max_pixels=settings.max_output_pixels,
    )


def probe(settings: Settings, data: bytes) -> engine.ImageInfo:
    """``engine.probe`` with the configured source limits, inside a render slot."""
    with render_slot(settings):
        return engine.probe(
            data,
            max_pixels=settings.max_source_pixels,
            max_frames=settings.max_source_frames,
        )
