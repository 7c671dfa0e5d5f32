"""A render process: runs renders, upload checks and face detections sent over a pipe, one
at a time.

The web layer (webapp/renderpool.py) starts ``python -m engine.worker READ_FD WRITE_FD``
with these limits in the environment, then sends jobs; a job that passes its deadline is
ended by killing the whole process, which is the only way to stop libvips for certain (a
decode in progress does not look at libvips' kill flag). Each process:

- caps its address space at ``CROPSTACK_RENDER_MEMORY_MB`` (RLIMIT_AS): past it libvips'
  allocations fail and the job answers an error, the process survives;
- lowers its CPU priority by ``CROPSTACK_RENDER_NICE`` (the expensive lane), so expensive
  renders only use the cores cheap work leaves idle;
- configures libvips for one render at a time (cache off, ``CROPSTACK_VIPS_CONCURRENCY``
  threads, untrusted loaders blocked) and keeps decoded images in memory, never in
  temporary files (``VIPS_DISC_THRESHOLD``), so a render never writes to disk, except the
  font of a ``text`` operation, which libvips can only read from a file (engine/fonts.py:
  a private directory of this process, the file removed after the render);
- gives its freed heap pages back to the system once no job came for ``TRIM_IDLE_S``,
  and at once, before the reply, when a job left it above
  ``CROPSTACK_RENDER_RECYCLE_BYTES`` (``malloc_trim``, when ``CROPSTACK_RENDER_TRIM`` is
  1; webapp/allocator.py explains). Not after every job: the next job would fault every
  page in again (measured: 5 ms of system time per 24 MP render).

Wire format: a job is a pickled ``(kind, keyword arguments)`` followed by the image bytes as
a message of their own (no pickling copy of up to 150 MB), then, for a render that names
other sources (``resources``, engine/resources.py), one message per resource's bytes; a
reply is a pickled ``(ok|error, payload)``. Both ends are this code. An upload check may
instead name the file its bytes are in (``path``, webapp/uploadspool.py), sent with empty
image bytes: it reads the file itself, and 6 MB do not cross the pipe; so may a render
(``source_file``: a blob file and its key, webapp/blobs: read and verified here).
"""

from __future__ import annotations

import copyreg
import ctypes
import hashlib
import io
import os
import pickle
import resource
import select
import struct
import sys
import threading
import time
import traceback
from types import MappingProxyType
from typing import Any

import engine.errors as errors


def _proxy(mapping: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(mapping)


class _Pickler(pickle.Pickler):
    # Plans hold read-only mappings (MappingProxyType), which pickle cannot name.
    dispatch_table = {
        **copyreg.dispatch_table,
        MappingProxyType: lambda m: (_proxy, (dict(m),)),
    }


_LENGTH = struct.Struct("<Q")


def send_frame(fd: int, data: bytes) -> None:
    """Write one frame (8-byte length, then ``data``) to the pipe ``fd``, blocking."""
    _write_all(fd, memoryview(_LENGTH.pack(len(data))))
    _write_all(fd, memoryview(data))


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def recv_frame(fd: int) -> bytes:
    """Read one frame written by :func:`send_frame`; EOFError when the pipe closed first.

    Reads into one preallocated buffer (multiprocessing's Connection reads a 6 MB message
    six times slower, growing a buffer chunk by chunk).
    """
    (length,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size))
    return bytes(_read_exactly(fd, length))


def _read_exactly(fd: int, length: int) -> bytearray:
    buffer = bytearray(length)
    view, got = memoryview(buffer), 0
    while got < length:
        count = os.readv(fd, [view[got:]])
        if not count:
            raise EOFError("pipe closed")
        got += count
    return buffer


def dumps(kind: str, payload: Any) -> bytes:
    """One message: ``kind`` (``render``, ``probe``, ``font``, ``faces``, ``optimise``,
    ``ok``, ``error``) and its payload."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump((kind, payload))
    return buffer.getvalue()


def loads(message: bytes) -> tuple[str, Any]:
    """The ``(kind, payload)`` of a message made by :func:`dumps`."""
    kind, payload = pickle.loads(message)
    return kind, payload


def error_from(payload: tuple[str, str]) -> errors.EngineError:
    """The engine error an ``error`` reply names (RenderFailed if the name is unknown)."""
    name, message = payload
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.EngineError)):
        cls = errors.RenderFailed
    return cls(message)


def resource_frames(payload: dict[str, Any]) -> int:
    """How many messages of resource bytes follow a job's source bytes."""
    return len(payload.get("resources") or ())


def _run(kind: str, blob: bytes, payload: dict[str, Any], extra: list[bytes]) -> Any:
    from engine.fonts import probe_font
    from engine.pipeline import render
    from engine.probe import probe
    from engine.resources import join

    if kind == "render":
        resources = join(payload.pop("resources", None) or {}, extra)
        stored = payload.pop("source_file", None)
        if stored is not None:
            return _render_file(stored, resources, payload)
        return render(source=blob, resources=resources, **payload)
    if kind == "probe":
        path = payload.pop("path", None)
        if path is not None:
            blob = _read_file(path)
        return probe(blob, **payload)
    if kind == "font":
        return probe_font(blob, **payload)
    if kind == "optimise":
        from engine.conversion import optimise_source

        return optimise_source(blob, **payload)
    if kind == "faces":
        return _faces(blob, payload)
    if kind == "release":  # the bytes of a claimed render never came: let the claim go
        return None
    raise ValueError(f"unknown job {kind!r}")


def _render_file(stored: tuple[str, str], resources: Any, payload: dict[str, Any]) -> Any:
    """A render whose source is the blob file ``stored`` names, (path, SHA-256 hex of its
    bytes): a kept decode of it serves when there is one (engine/decoded.py, and the
    image's claim is taken here when it is due), else the file is read and verified here
    (6 MB that never cross the pipe). ``SourceNeeded`` when the file is missing or its
    bytes are not the key's: the web worker then reads it through the blob store, which
    logs and answers a damaged original. With ``kept_defer``: ``KeptPending`` where the
    render would wait for a kept level another process is making (its web worker waits
    instead, engine/decoded.py)."""
    from engine.decoded import STORE

    kept = payload.pop("kept", None)
    # KeptPending rather than waiting here for a level another process is making
    STORE.defer = bool(payload.pop("kept_defer", False))
    try:
        return _render_stored(stored, resources, payload, kept)
    finally:
        STORE.defer = False


def _render_stored(
    stored: tuple[str, str], resources: Any, payload: dict[str, Any], kept: Any
) -> Any:
    from engine.decoded import STORE
    from engine.pipeline import render

    if kept is not None and payload.get("source_key"):
        try:
            return render(source=b"", resources=resources, kept_only=True, **kept, **payload)
        except errors.KeptPending:
            raise
        except errors.SourceNeeded:
            pass  # nothing kept serves it: decode from the file (the claim stays)
    path, sha256 = stored
    try:
        blob = _read_file(path)
    except OSError as exc:
        raise errors.SourceNeeded("the original's file cannot be read here") from exc
    # Hashed on another thread while libvips renders (both release the GIL): the check
    # costs the render no time when a core is free; nothing leaves before it passed, not
    # this render's answer, nor a decode kept for other renders (engine/decoded.py).
    digest = _Digest(blob)
    STORE.before_publish = lambda: _verify(blob, sha256, digest)
    try:
        rendered = render(source=blob, resources=resources, **payload)
    except errors.EngineError:
        _verify(blob, sha256, digest)  # a damaged file is the store's failure, not the render's
        raise
    finally:
        STORE.before_publish = None
    _verify(blob, sha256, digest)
    return rendered


class _Digest(threading.Thread):
    """The SHA-256 of some bytes, computed on a thread of its own."""

    def __init__(self, data: bytes) -> None:
        super().__init__(name="sha256", daemon=True)
        self._data = data
        self.hexdigest = ""
        try:
            self.start()
        except RuntimeError:  # no thread under the address-space cap: hash here instead
            self.run()

    def join(self, timeout: float | None = None) -> None:
        if self.ident is not None:
            super().join(timeout)

    def run(self) -> None:
        self.hexdigest = hashlib.sha256(self._data).hexdigest()


def _verify(blob: bytes, sha256: str, digest: _Digest | None = None) -> None:
    """``SourceNeeded`` unless ``blob`` hashes to ``sha256`` (by ``digest`` when given)."""
    if digest is not None:
        digest.join()
    found = digest.hexdigest if digest is not None else hashlib.sha256(blob).hexdigest()
    if found != sha256:
        raise errors.SourceNeeded("the original's file does not match its key")


def _read_file(path: str) -> bytes:
    """The bytes of the file at ``path`` (an upload the web layer received, or a blob of
    the local store), read whole: the loaders still see only a buffer, never a path
    (engine/probe.py)."""
    with open(path, "rb", buffering=0) as fh:
        return fh.read()  # one read into a bytes object of the file's size


def _faces(blob: bytes, payload: dict[str, Any]) -> Any:
    import pyvips

    from engine.faces import MIN_ADDRESS_SPACE_MB, detect_faces, detector_fits

    if not detector_fits():
        print(f"face detection needs render_memory_mb >= {MIN_ADDRESS_SPACE_MB}", file=sys.stderr)
        raise errors.RenderCrashed(
            "face detection is unavailable: render processes have too little memory for the "
            "detector on this server"
        )
    try:
        return detect_faces(blob, **payload)
    except pyvips.Error as exc:
        first = (str(exc).splitlines() or ["undecodable image"])[0]
        raise errors.RenderFailed(f"face detection failed: {first}") from exc
    except ImportError as exc:  # a broken install: the operator's problem, logged for them
        print(f"face detection: OpenCV could not be loaded: {exc}", file=sys.stderr)
        raise errors.RenderCrashed(
            "face detection is unavailable: the render process could not load its detector"
        ) from exc


def _limit() -> None:
    memory_mb = int(os.environ.get("CROPSTACK_RENDER_MEMORY_MB", "0"))
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    nice = int(os.environ.get("CROPSTACK_RENDER_NICE", "0"))
    if nice > 0:
        os.nice(nice)


def _orphan_watch(parent: int) -> None:
    """End this process when its web worker is gone (killed -9 while a job runs here)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


# Seconds without a job after which a render process trims its heap.
TRIM_IDLE_S = 1.0


def _quiet(fd: int, seconds: float) -> bool:
    """Whether no job arrives on ``fd`` within ``seconds``."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return not poller.poll(seconds * 1000)


def _resident_bytes() -> int:
    """This process's resident memory, bytes (0 where /proc has no statm)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _trim() -> None:
    """Give the job's freed heap pages back to the system (glibc ``malloc_trim``; the
    ``malloc_trim`` setting). Elsewhere than glibc: nothing."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim  # noqa: B018
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc.malloc_trim(0)


_libc: Any = None


def main(argv: list[str]) -> int:
    """Serve jobs from fd ``argv[0]``, answering on fd ``argv[1]``, until the pipe closes."""
    threading.Thread(target=_orphan_watch, args=(os.getppid(),), daemon=True).start()
    _limit()
    from engine.decoded import STORE
    from engine.probe import configure

    configure(concurrency=max(1, int(os.environ.get("CROPSTACK_VIPS_CONCURRENCY", "1"))))
    jobs, replies = int(argv[0]), int(argv[1])
    trim = os.environ.get("CROPSTACK_RENDER_TRIM") == "1"
    recycle_bytes = int(os.environ.get("CROPSTACK_RENDER_RECYCLE_BYTES", "0"))
    untrimmed = False  # a job ran since the last trim
    # Imports and libvips are ready: the parent starts a job's deadline only from here, so
    # a process started on a busy machine never spends a render's time budget importing.
    send_frame(replies, dumps("ready", os.getpid()))
    while True:
        if untrimmed and _quiet(jobs, TRIM_IDLE_S):
            _trim()
            untrimmed = False
        try:
            kind, payload = loads(recv_frame(jobs))
            blob = recv_frame(jobs)  # the image bytes travel unpickled, after the job
            extra = [recv_frame(jobs) for _ in range(resource_frames(payload))]
        except EOFError:
            return 0
        claim = False  # a claimed image's decode (engine/decoded.py) outlives only SourceNeeded
        try:
            reply = dumps("ok", _run(kind, blob, payload, extra))
        except errors.SourceNeeded as exc:
            claim = True
            reply = dumps("error", (type(exc).__name__, exc.message))
        except errors.EngineError as exc:
            reply = dumps("error", (type(exc).__name__, exc.message))
        except MemoryError:
            reply = dumps("error", ("RenderCrashed", "render ran out of memory"))
        except Exception:  # a bug: logged, answered as a failed render, process kept
            traceback.print_exc()
            reply = dumps("error", ("RenderCrashed", "render failed unexpectedly"))
        STORE.end_job(keep_claim=claim)
        del blob, extra  # the job's buffers are free pages now
        untrimmed = trim
        if trim and 0 < recycle_bytes < _resident_bytes():
            # The web worker reads this process's resident size when the reply arrives,
            # to replace it past ``render_recycle_mb``: it must see what a trim leaves.
            _trim()
            untrimmed = False
        send_frame(replies, reply)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
