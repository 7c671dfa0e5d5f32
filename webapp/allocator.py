"""glibc's allocator in the server's processes: how freed memory goes back to the system.

Four measures, each a setting (docs/performance.md has their measured effect):

- ``malloc_arena_max``: at most this many malloc arenas per process (glibc makes up to 8
  per core, one per thread that meets a locked arena, and an arena's freed pages stay
  with it). An environment variable (``MALLOC_ARENA_MAX``) only reaches a process that
  is started with it: gunicorn's workers are forks of the master, which has read its
  environment long before, so the master sets it with ``mallopt`` before forking.
- ``malloc_mmap_threshold_kb``: in the master and the web workers, blocks at least this
  large are mapped on their own and unmapped when freed. glibc's default threshold starts
  at 128 KiB but rises to the size of any mapped block freed (up to 32 MiB): after the
  first 11 MB upload body went through a worker, every later one was carved from the
  heap and its pages kept. A fixed threshold stops that rise. Render processes do the
  opposite (32 MiB, webapp/renderpool.py): libvips' buffers of a few MB, mapped and
  unmapped on every job, were faulted in again each time (16 ms of system time in a
  24 MP render), so they stay in the heap while jobs come, and the trim returns them.
- ``malloc_huge_pages``: render processes start with ``glibc.malloc.hugetlb=1`` (glibc
  2.35+), so glibc asks for transparent huge pages (``madvise``) where its heap grows: a
  24 MP decode's buffers fault in 2 MiB at a time (a srcset batch's render processes:
  ~7,100 page faults and 63 ms of system time → ~1,800 and 44 ms). The kernel's
  ``transparent_hugepage`` mode decides: ``madvise`` or ``always`` (``never``: no effect).
- ``malloc_trim``: ``malloc_trim(0)`` gives the free pages inside every arena back
  (``madvise``) once a render process had no job for a second (engine/worker.py; at
  once when a job left it above ``render_recycle_mb``) and, in a web worker, a second
  after its last request that was not a cache hit. Not after every job: the next job
  would fault all those pages in again.

Without glibc (musl, macOS) every call here does nothing and says so by returning False.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

# mallopt parameters, from glibc's <malloc.h>.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# glibc caps the mmap threshold at HEAP_MAX_SIZE / 2 on 64-bit systems.
MAX_MMAP_THRESHOLD_KB = 32 * 1024

_libc: Any = None


def _glibc() -> Any:
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.malloc_trim  # noqa: B018  (glibc only: musl has no malloc_trim)
            libc.mallopt  # noqa: B018
        except (OSError, AttributeError):
            libc = False
        _libc = libc
    return _libc


def tune(arena_max: int, mmap_threshold_kb: int) -> bool:
    """Apply the arena and mmap-threshold settings to this process (and to the processes
    it forks later); 0 leaves glibc's default. True when glibc took both."""
    libc = _glibc()
    if not libc:
        return False
    ok = True
    if arena_max > 0:
        ok = bool(libc.mallopt(_M_ARENA_MAX, arena_max)) and ok
    if mmap_threshold_kb > 0:
        threshold = min(mmap_threshold_kb, MAX_MMAP_THRESHOLD_KB) * 1024
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and ok
    return ok


def environment(
    arena_max: int, mmap_threshold_kb: int, *, huge_pages: bool = False, tunables: str = ""
) -> dict[str, str]:
    """The same settings as environment variables, for a process started with ``exec``
    (glibc reads them when the process starts); 0 sets nothing. ``huge_pages``: the heap
    is given transparent huge pages (``glibc.malloc.hugetlb=1``, added to ``tunables``,
    the ``GLIBC_TUNABLES`` the process would otherwise get)."""
    env = {}
    if arena_max > 0:
        env["MALLOC_ARENA_MAX"] = str(arena_max)
    if mmap_threshold_kb > 0:
        threshold = min(mmap_threshold_kb, MAX_MMAP_THRESHOLD_KB) * 1024
        env["MALLOC_MMAP_THRESHOLD_"] = str(threshold)
    if huge_pages:
        env["GLIBC_TUNABLES"] = ":".join(t for t in (tunables, "glibc.malloc.hugetlb=1") if t)
    return env


def trim() -> bool:
    """``malloc_trim(0)``: give free heap pages back to the system; True if some were."""
    libc = _glibc()
    return bool(libc and libc.malloc_trim(0))


class Trimmer:
    """Trims a process's heap once it has been quiet for ``delay_s`` seconds after
    :meth:`touch`: one daemon thread, at most one trim per quiet period, so a busy worker
    never trims between requests."""

    def __init__(self, delay_s: float = 1.0) -> None:
        self._delay_s = delay_s
        self._touched = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.trims = 0

    def touch(self) -> None:
        """Something large may have been freed: trim after the next quiet ``delay_s``."""
        self._touched.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="malloc-trim", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            self._touched.wait()
            # Quiet period: every touch during it starts it again.
            while True:
                self._touched.clear()
                if not self._touched.wait(self._delay_s):
                    break
            trim()
            self.trims += 1
