"""Render processes, in lanes, with admission and a deadline.

Every render and upload check runs in a separate process (``engine.worker``), never in
the web worker: only then can a job past its deadline be stopped for certain (the process
is killed; libvips cannot interrupt a decode), its memory be capped (RLIMIT_AS), and
expensive work be made to yield the CPU (nice). Each web worker process owns one pool:

- lane ``cheap``: ``render_concurrency`` processes, normal priority;
- lane ``expensive``: ``expensive_render_concurrency`` processes at ``render_nice``, for
  jobs whose estimated work (engine/cost.py) is above ``expensive_render_work``.

Admission: a job takes an idle process of its lane; when none is idle it waits at most
``render_queue_timeout`` seconds, and when ``render_queue_limit`` jobs already wait it does
not wait at all: either way the answer is 503 with ``Retry-After`` (rokka clients retry).
A job running past ``render_timeout`` seconds has its process killed; the client gets 503.
Processes start on first use, and are replaced after a kill, a crash, ``render_max_jobs``
jobs, or when their resident memory is above ``render_recycle_mb`` after a job (and after
the trim such a job is followed by, webapp/allocator.py: what stays is fragmentation;
kept decodes are files, engine/decoded.py).
"""

from __future__ import annotations

import atexit
import fcntl
import os
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from engine import worker
from engine.decoded import KeptDecodes
from engine.errors import KeptPending, RenderCrashed, RenderTimeout, SourceNeeded
from webapp import keptdecodes
from webapp.allocator import MAX_MMAP_THRESHOLD_KB, environment
from webapp.errors import ApiError
from webapp.metrics import BUSY, JOB_DURATION, QUEUE_WAIT
from webapp.settings import Settings

_PIPE_BYTES = 1024 * 1024
# Seconds a new render process may take to import and set up libvips (~0.2 s when idle).
_START_TIMEOUT_S = 30.0
# Where `python -m engine.worker` must find this checkout's packages.
_CODE_ROOT = str(Path(worker.__file__).resolve().parents[1])


class Busy(ApiError):
    """No render process became free in time: 503 with Retry-After."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message, headers={"Retry-After": "1"})


def _widen(pipe_fd: int) -> None:
    """Give a pipe a 1 MiB buffer (Linux's default ceiling; 64 KiB otherwise): a 6 MB source
    then crosses in a few writes, not a hundred context switches."""
    try:
        fcntl.fcntl(pipe_fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (AttributeError, OSError):
        pass  # not Linux, or over /proc/sys/fs/pipe-max-size: the default still works


def _readable(fd: int, timeout_s: float) -> bool:
    """Whether ``fd`` has data (or EOF) within ``timeout_s`` seconds. ``poll``, not
    ``select``: a worker with many sockets and catalog connections has descriptors past
    1024, which ``select`` refuses (ValueError)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout_s) * 1000))


class RenderProcess:
    """One ``engine.worker`` child and the two pipes to it."""

    def __init__(self, env: dict[str, str]) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        for fd in (to_child_w, from_child_w):
            _widen(fd)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine.worker", str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=_CODE_ROOT,
            )
        except BaseException:
            os.close(to_child_w)  # no process: the parent's ends go too
            os.close(from_child_r)
            raise
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._jobs = to_child_w
        self._replies = from_child_r
        self._closed = False
        self._ready = False
        self.jobs_done = 0

    def _await_ready(self) -> None:
        """Wait for the child's "ready" frame (sent once its imports are done), at most
        ``_START_TIMEOUT_S``: the job deadline then measures the job alone."""
        if not _readable(self._replies, _START_TIMEOUT_S):
            self.kill()
            raise RenderCrashed("the render process did not start; retry later")
        kind, _ = worker.loads(worker.recv_frame(self._replies))
        if kind != "ready":
            self.kill()
            raise RenderCrashed("the render process did not start; retry later")
        self._ready = True

    @property
    def pid(self) -> int:
        return self.process.pid

    def run(
        self, message: bytes, blob: bytes, timeout_s: float, extra: Sequence[bytes] = ()
    ) -> Any:
        """Send one job (and its image bytes, then the ``extra`` resource bytes, unpickled,
        uncopied) and wait for its reply; the result, or the engine error it raised.

        Raises RenderTimeout (and kills the process) past ``timeout_s`` seconds, and
        RenderCrashed when the process died.
        """
        try:
            if not self._ready:
                self._await_ready()
            worker.send_frame(self._jobs, message)
            worker.send_frame(self._jobs, blob)
            for data in extra:
                worker.send_frame(self._jobs, data)
            if not _readable(self._replies, timeout_s):
                self.kill()
                raise RenderTimeout(
                    f"render took longer than {timeout_s:g} s and was stopped; retry later"
                )
            kind, payload = worker.loads(worker.recv_frame(self._replies))
        except (EOFError, OSError) as exc:
            self.kill()
            raise RenderCrashed("the render process stopped; retry later") from exc
        self.jobs_done += 1
        if kind == "error":
            raise worker.error_from(payload)
        return payload

    def alive(self) -> bool:
        return self.process.poll() is None

    def memory(self) -> tuple[int, int]:
        """(resident now, resident peak) of the process: VmRSS and VmHWM, bytes (0 if gone)."""
        found = {"VmRSS:": 0, "VmHWM:": 0}
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as fh:
                for line in fh:
                    key = line[:6]
                    if key in found:
                        found[key] = int(line.split()[1]) * 1024
        except OSError:
            pass
        return found["VmRSS:"], found["VmHWM:"]

    def kill(self) -> None:
        """Stop the process at once (SIGKILL) and close the pipes."""
        if self.alive():
            self.process.kill()
        self.process.wait()
        if not self._closed:
            # Once only: a closed descriptor number may already belong to another file.
            self._closed = True
            os.close(self._jobs)
            os.close(self._replies)


_T = TypeVar("_T")


class _Queue:
    """Bounded waiting on a condition: at most ``limit`` waiters, each at most ``wait_s``.

    Shared by the render lanes and the upload gate, so both answer alike: 503 at once past
    the waiters' limit, 503 after ``wait_s`` seconds when nothing freed.
    """

    def __init__(self, cond: threading.Condition, limit: int, what: str, label: str) -> None:
        self._cond = cond
        self._limit = limit
        self._what = what
        self._label = label  # the ``queue`` label of the metrics (webapp/metrics.py)
        self._waiting = 0

    def crowded(self) -> bool:
        """Whether one more waiter would reach the limit."""
        return self._waiting + 1 >= self._limit

    def take(
        self, attempt: Callable[[], _T | None], wait_s: float, recheck_s: float | None = None
    ) -> _T:
        """``attempt()``'s first non-None result; call with the condition held.
        ``recheck_s``: also try again that often without a notification (for an attempt
        whose answer changes with time)."""
        got = attempt()
        if got is not None:
            QUEUE_WAIT.labels(self._label).observe(0.0)
            return got
        if self._waiting >= self._limit:
            BUSY.labels(self._label, "queue_full").inc()
            raise Busy(f"Too many {self._what} waiting, retry shortly")
        started = time.monotonic()
        deadline = started + wait_s
        self._waiting += 1
        try:
            while (got := attempt()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    BUSY.labels(self._label, "wait_timeout").inc()
                    raise Busy(f"Too many {self._what} in progress, retry shortly")
                self._cond.wait(left if recheck_s is None else min(left, recheck_s))
            QUEUE_WAIT.labels(self._label).observe(time.monotonic() - started)
            return got
        finally:
            self._waiting -= 1


@dataclass(frozen=True, slots=True)
class LaneConfig:
    """How many processes a lane has, their niceness, and how many jobs may wait."""

    name: str
    size: int
    nice: int
    queue_limit: int


class Lane:
    """A fixed number of render processes shared by the threads of one web worker."""

    def __init__(
        self, config: LaneConfig, env: dict[str, str], max_jobs: int = 0, recycle_bytes: int = 0
    ) -> None:
        self.config = config
        self._max_jobs = max_jobs  # 0: never replaced for its age
        self._recycle_bytes = recycle_bytes  # 0: never replaced for its size
        self._env = {**env, "CROPSTACK_RENDER_NICE": str(config.nice)}
        self._cond = threading.Condition()
        self._idle: list[RenderProcess] = []
        self._free_slots = config.size  # slots with no process started yet
        self._queue = _Queue(self._cond, config.queue_limit, "renders", config.name)
        self._all: set[RenderProcess] = set()
        self.peak_bytes = 0  # the largest VmHWM a process of this lane reached after a job

    def _take(self) -> RenderProcess | Literal["start"] | None:
        """An idle process, "start" when a new one may be started, None when none is free."""
        while self._idle:
            process = self._idle.pop()
            if process.alive():
                return process
            # Died while idle (killed from outside): its place starts a new one.
            process.kill()
            self._all.discard(process)
            self._free_slots += 1
        if self._free_slots > 0:
            self._free_slots -= 1
            return "start"
        return None

    def acquire(self, wait_s: float) -> RenderProcess:
        """A process of this lane for one job; ``Busy`` (503) when none frees in time."""
        with self._cond:
            taken = self._queue.take(self._take, wait_s)
            if isinstance(taken, RenderProcess):
                return taken
        try:
            process = RenderProcess(self._env)
        except OSError as exc:
            # Out of processes or memory for a moment: the client retries, as for a full lane.
            self._give_back_slot()
            BUSY.labels(self.config.name, "start_failed").inc()
            raise Busy("No render process could be started, retry shortly") from exc
        with self._cond:
            self._all.add(process)
        return process

    def release(self, process: RenderProcess) -> None:
        """Return ``process`` after a job; a dead, worn or bloated one is replaced later."""
        resident, peak = process.memory()
        self.peak_bytes = max(self.peak_bytes, peak)
        worn = (0 < self._max_jobs <= process.jobs_done) or (
            0 < self._recycle_bytes < resident
        )
        if not process.alive() or worn:
            process.kill()
            with self._cond:
                self._all.discard(process)
            self._give_back_slot()
            return
        with self._cond:
            self._idle.append(process)
            self._cond.notify()

    def _give_back_slot(self) -> None:
        with self._cond:
            self._free_slots += 1
            self._cond.notify()

    def pids(self) -> list[int]:
        with self._cond:
            return [p.pid for p in self._all if p.alive()]

    def close(self) -> None:
        """Kill every process; the lane stays usable (a busy process's slot comes back when
        its job ends, an idle one's at once)."""
        with self._cond:
            processes, self._all = list(self._all), set()
            self._free_slots += len(self._idle)
            self._idle = []
        for process in processes:
            process.kill()


class Gate:
    """At most ``size`` holders at once, at most half of them (at least one) for one key
    (an organization), at most ``queue_limit`` waiting; 503 past any of them.

    The per-key share keeps one tenant's uploads from taking every place of a worker.
    """

    def __init__(self, size: int, queue_limit: int) -> None:
        self._size = max(1, size)
        self._per_key = max(1, self._size // 2)
        self._queue_limit = queue_limit
        self._held: dict[str, int] = {}
        self._cond = threading.Condition()
        self._queue = _Queue(self._cond, queue_limit, "uploads", "upload")

    def _free(self, key: str) -> bool | None:
        if sum(self._held.values()) < self._size and self._held.get(key, 0) < self._per_key:
            return True
        return None

    @contextmanager
    def admitted(self, wait_s: float, key: str) -> Iterator[None]:
        """Hold a place for ``key`` during the block; ``Busy`` (503) when none frees within
        ``wait_s`` seconds, or at once when ``queue_limit`` callers already wait."""
        with self._cond:
            self._queue.take(lambda: self._free(key), wait_s)
            self._held[key] = self._held.get(key, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]
                self._cond.notify_all()


class RenderPool:
    """The lanes of one web worker process (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": _CODE_ROOT,
            "CROPSTACK_RENDER_MEMORY_MB": str(settings.render_memory_mb),
            "CROPSTACK_VIPS_CONCURRENCY": str(max(1, settings.vips_concurrency)),
            # A render process is single-job: more malloc arenas only keep more freed pages
            # (webapp/allocator.py; glibc reads these when the process starts). Its mmap
            # threshold is glibc's highest, not ``malloc_mmap_threshold_kb``: libvips'
            # buffers of a few MB, mapped and unmapped on every job, were faulted in again
            # each time (16 ms of system time per 24 MP render); its heap is trimmed when
            # it is idle instead (engine/worker.py).
            **environment(
                settings.malloc_arena_max,
                MAX_MMAP_THRESHOLD_KB,
                huge_pages=settings.malloc_huge_pages,
                tunables=os.environ.get("GLIBC_TUNABLES", ""),
            ),
            "CROPSTACK_RENDER_TRIM": "1" if settings.malloc_trim else "0",
            "CROPSTACK_RENDER_RECYCLE_BYTES": str(max(0, settings.render_recycle_mb) << 20),
            # Decoded images stay in memory (bounded by the budgets and RLIMIT_AS), never in
            # temporary files: libvips reads this when it starts, before any import here.
            "VIPS_DISC_THRESHOLD": "4g",
            "CROPSTACK_RENDER_KEPT_MB": "0",
            "CROPSTACK_KEPT_DIR": "",
        }
        limit = max(0, settings.render_queue_limit)
        recycling = {
            "max_jobs": max(0, settings.render_max_jobs),
            "recycle_bytes": max(0, settings.render_recycle_mb) * 1024 * 1024,
        }
        # Decoded JPEG sources are kept in files shared by every render process of the
        # server (engine/decoded.py, webapp/keptdecodes.py).
        if settings.decoded_cache_mb > 0:
            directory = keptdecodes.prepare(settings)
            if directory:
                env["CROPSTACK_KEPT_DIR"] = directory
                env["CROPSTACK_RENDER_KEPT_MB"] = str(settings.decoded_cache_mb)
        self.lanes = {
            "cheap": Lane(
                LaneConfig("cheap", max(1, settings.render_concurrency), 0, limit),
                env,
                **recycling,
            ),
            "expensive": Lane(
                LaneConfig(
                    "expensive",
                    max(1, settings.expensive_render_concurrency),
                    max(0, settings.render_nice),
                    limit,
                ),
                env,
                **recycling,
            ),
        }
        # Reading an upload's body (multipart parsing, a copy of up to max_upload_bytes)
        # happens in the web worker: bounded here, so uploads cannot take a worker's memory
        # and every thread at once.
        self.uploads = Gate(settings.upload_concurrency, limit)
        self._settings = settings
        # The kept decodes as this web worker waits for a level (KeptPending): the files'
        # names and the table of claims, no pixels.
        self._kept = KeptDecodes(
            env["CROPSTACK_KEPT_DIR"], int(env["CROPSTACK_RENDER_KEPT_MB"]) * 2**20
        )

    def run(
        self,
        lane: str,
        kind: str,
        blob: bytes | Callable[[], bytes],
        payload: dict[str, Any],
        extra: Sequence[bytes] = (),
        kept: dict[str, Any] | None = None,
        source_file: tuple[str, str] | None = None,
    ) -> Any:
        """Run one job in ``lane``: ``render`` (``blob`` is the source) or ``probe`` (``blob``
        is the data), with the other ``engine`` keyword arguments in ``payload``; ``extra``
        are the bytes of a render's resources, in the order of ``payload["resources"]``.
        ``blob`` may be a function that reads the bytes: the render is then first sent
        without them (``kept_only``, with the ``kept`` keyword arguments added: the
        source's ``info``), since a decode kept by any render process may serve it
        (engine/decoded.py); they are read and sent only when none does (``SourceNeeded``).
        ``source_file`` (a render's blob file and its SHA-256, ``BlobStore.file_of``): the
        render process looks for a kept decode and else reads and verifies the file
        itself, in one job; ``blob`` is read and sent only when the file did not serve.

        Raises ``Busy`` (503) when not admitted, RenderTimeout/RenderCrashed (503) when the
        job passed its deadline or its process died, or the engine error the job raised.
        """
        message = worker.dumps(kind, payload)
        chosen = self.lanes[lane]
        process: RenderProcess | None = chosen.acquire(self._settings.render_queue_timeout)
        started = time.monotonic()
        timeout = self._settings.render_timeout
        try:
            if source_file is not None and kind == "render":
                job = {**payload, "source_file": source_file, "kept": kept}
                try:
                    if self._kept.enabled and payload.get("source_key"):
                        deferred = worker.dumps(kind, {**job, "kept_defer": True})
                        try:
                            return process.run(deferred, b"", timeout, extra)
                        except KeptPending as pending:
                            # Another process makes the kept level this render needs: its
                            # process serves other renders (a srcset's widest, which need
                            # the first level published) while this one waits for it.
                            chosen.release(process)
                            process = None
                            left = timeout - (time.monotonic() - started)
                            self._kept.wait(payload["source_key"], pending.level, max(0.0, left))
                            process = chosen.acquire(self._settings.render_queue_timeout)
                            # the wait counts against the job's deadline, as it did in-process
                            timeout = max(0.1, timeout - (time.monotonic() - started))
                    return process.run(worker.dumps(kind, job), b"", timeout, extra)
                except SourceNeeded:
                    pass  # missing or damaged here: the blob store reads it, and says so
            elif callable(blob):
                if kind == "render":
                    bare = worker.dumps(kind, {**payload, **(kept or {}), "kept_only": True})
                    try:
                        return process.run(bare, b"", timeout, extra)
                    except SourceNeeded:
                        pass  # nothing kept serves it: send the bytes
            if callable(blob):
                try:
                    blob = blob()
                except BaseException:
                    # The process may hold the image's claim (it would decode and keep it):
                    # other renders of the image must not wait for it.
                    process.run(worker.dumps("release", {}), b"", timeout)
                    raise
            return process.run(message, blob, timeout, extra)
        except (RenderTimeout, RenderCrashed) as exc:
            reason = "deadline" if isinstance(exc, RenderTimeout) else "crashed"
            BUSY.labels(lane, reason).inc()
            raise Busy(exc.message) from exc
        finally:
            JOB_DURATION.labels(kind, lane).observe(time.monotonic() - started)
            if process is not None:
                chosen.release(process)

    def pids(self) -> list[int]:
        """Process ids of the live render processes (for tests and metrics)."""
        return [pid for lane in self.lanes.values() for pid in lane.pids()]

    def peak_bytes(self) -> int:
        """The largest resident peak (VmHWM) any render process reached after a job, bytes."""
        return max(lane.peak_bytes for lane in self.lanes.values())

    def close(self) -> None:
        for lane in self.lanes.values():
            lane.close()


_pools: OrderedDict[tuple[Any, ...], RenderPool] = OrderedDict()
_MAX_POOLS = 4
_pools_lock = threading.Lock()
# The settings that shape a pool; apps that agree on them (tests build many) share one.
_POOL_SETTINGS = (
    "render_concurrency",
    "expensive_render_concurrency",
    "render_nice",
    "render_queue_limit",
    "render_queue_timeout",
    "render_timeout",
    "render_memory_mb",
    "vips_concurrency",
    "upload_concurrency",
    "decoded_cache_mb",
    "decoded_cache_dir",
    "data_dir",
    "render_recycle_mb",
    "render_max_jobs",
    "malloc_arena_max",
    "malloc_mmap_threshold_kb",
    "malloc_trim",
    "malloc_huge_pages",
)


def pool_for(settings: Settings) -> RenderPool:
    """This process's pool for ``settings`` (one per web worker; a fork gets a new one).

    A web worker has one app, so one pool; a process that builds many apps with their own
    data directories (the tests) keeps the ``_MAX_POOLS`` used last and closes the others,
    or their idle render processes and pipes would pile up (descriptors past 1024, GBs).
    """
    key = (os.getpid(), *(getattr(settings, name) for name in _POOL_SETTINGS))
    evicted: list[RenderPool] = []
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = RenderPool(settings)
            mine = [k for k in _pools if k[0] == key[0]]
            evicted = [_pools.pop(k) for k in mine[: max(0, len(mine) - _MAX_POOLS)]]
        else:
            _pools.move_to_end(key)
    for old in evicted:
        old.close()  # still usable if something holds it: it starts processes anew
    return pool


@atexit.register
def _close_all() -> None:
    with _pools_lock:
        pools = [p for key, p in _pools.items() if key[0] == os.getpid()]
        _pools.clear()
    for pool in pools:
        pool.close()
