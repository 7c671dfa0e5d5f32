"""A bounded disk cache of rendered outputs, shared by every worker process.

An entry is keyed by the organization, the stack name, the image hash and the render
plan's cache identity (``RenderPlan.canonical()``: everything that changes the output,
including the format), so overwriting a stack changes the plan and makes its old entries
unreachable, and deleting an image or stack makes its renders unreachable because the
render route answers 404 before looking here. Purges remove the files:
``cache/<org_id>/<stack>/<image hash>/<key>.<ext>``.

Bound: the bytes of all entries (each rounded up to 4 KiB blocks) stay within
``max_bytes``. A counter file, ``cache/.usage``, holds the bytes written so far; a writer
reserves its entry's bytes in it (under ``flock``) *before* the file appears. A write that
would pass the bound first evicts, under a second lock (``cache/.evict``) that at most one
process holds: it walks the tree, deletes the least recently used entries (oldest mtime
first) down to 90 % of the bound and writes the measured total back. A writer that finds
an eviction running elsewhere does not wait: it skips storing (the render is answered
anyway). The counter only ever over-estimates between evictions (purges, files removed
by hand, failed writes), which makes the next eviction come early, never late.

Recency: a hit sets the entry's mtime to now when it is older than a minute, so reads
cost one ``open``/``fstat``/``read`` and, at most once a minute per entry, one ``utime``.

Faults: nothing here raises to the caller on an I/O error. ``get`` answers a miss;
``put`` logs (at most once per pause) and stops trying for ``PAUSE_S`` seconds in this
process, so a full or read-only disk costs one failed write per pause, not one per render.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from webapp.metrics import CACHE_EVICTIONS, CACHE_REQUESTS

log = logging.getLogger(__name__)

BLOCK = 4096  # bytes; entries are accounted in whole blocks, as the filesystem stores them
LOW_WATER = 0.9  # an eviction frees space down to this fraction of the bound
TOUCH_AFTER_S = 60.0  # a hit refreshes an entry's mtime at most this often
PAUSE_S = 30.0  # after a failed write, this process stores nothing for this long
STALE_TMP_S = 600.0  # a temporary file this old belongs to a killed writer: removed
MAX_ENTRY_FRACTION = 10  # an entry larger than max_bytes / 10 is not stored
_USAGE = ".usage"
_EVICT = ".evict"


def footprint(size: int) -> int:
    """Bytes an entry of ``size`` bytes is accounted for: whole 4 KiB blocks, at least one."""
    return max(1, -(-size // BLOCK)) * BLOCK


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Where one render lives: ``digest`` is the SHA-256 of everything that shapes it."""

    org_id: str
    stack: str
    image_hash: str
    digest: str
    ext: str

    @classmethod
    def build(cls, *, org_id: str, stack: str, image_hash: str, plan: str, ext: str) -> CacheKey:
        """A key from the render's inputs; ``plan`` is ``RenderPlan.canonical()``."""
        digest = hashlib.sha256(f"{image_hash}\n{plan}".encode()).hexdigest()
        return cls(org_id, stack, image_hash, digest, ext)

    @property
    def etag(self) -> str:
        """A strong ETag, known before rendering (renders are deterministic)."""
        return f'"{self.digest[:32]}"'


class RenderCache:
    """Rendered bytes under ``root``, at most ``max_bytes`` of them (0: store nothing).

    Safe for concurrent readers, writers and evictors in several processes and threads:
    files appear by atomic rename, and a file vanishing under any operation is a miss.
    """

    def __init__(self, root: str | Path, max_bytes: int = 1 << 30) -> None:
        self.root = Path(root)
        self.max_bytes = max(0, int(max_bytes))
        self._paused_until = 0.0
        self._pause_lock = threading.Lock()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            # A read-only data directory still serves whatever the cache holds.
            log.warning("render cache %s not writable: %s", self.root, exc)

    # -- paths -------------------------------------------------------------------------

    def _dir(self, org_id: str, stack: str, image_hash: str) -> Path:
        # stack names are validated ([a-z0-9_-]) and hashes hex before they get here;
        # the guard keeps a future caller from escaping the cache root.
        for part in (org_id, stack, image_hash):
            if not _safe(part):
                raise ValueError(f"unsafe cache path part: {part!r}")
        return self.root / org_id / stack / image_hash

    def _path(self, key: CacheKey) -> Path:
        return self._dir(key.org_id, key.stack, key.image_hash) / f"{key.digest}.{key.ext}"

    # -- reads -------------------------------------------------------------------------

    def get(self, key: CacheKey) -> bytes | None:
        """The cached bytes, or None (missing, evicted meanwhile, or unreadable)."""
        return self.read(self.path_of(key))

    def path_of(self, key: CacheKey) -> str:
        """Where the render of ``key`` is (or would be) kept."""
        return str(self._path(key))

    def read(self, path: str) -> bytes | None:
        """The cached bytes at ``path`` (from :meth:`path_of`), or None, as :meth:`get`:
        counted as a hit or a miss, its recency refreshed now and then. For a caller that
        keeps the path (webapp/hitmemo.py: building it is a fifth of a memo hit)."""
        try:
            # os-level: Python's buffered file would add a tty check, a seek and objects
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                stat = os.fstat(fd)
                body = os.read(fd, stat.st_size)
                while len(body) < stat.st_size:  # files are renamed in whole, never grow
                    more = os.read(fd, stat.st_size - len(body))
                    if not more:
                        break
                    body += more
            finally:
                os.close(fd)
            mtime = stat.st_mtime
        except OSError:
            CACHE_REQUESTS.labels("miss").inc()
            return None
        CACHE_REQUESTS.labels("hit").inc()
        if time.time() - mtime > TOUCH_AFTER_S:
            try:
                os.utime(path)  # recency for LRU; mtime, since atime is often not kept
            except OSError:
                pass  # evicted meanwhile, or a read-only disk: recency is best effort
        return body

    def peek(self, key: CacheKey, prefix: int = 16) -> tuple[bytes, int] | None:
        """The first ``prefix`` bytes of the cached render and its length in bytes, or
        None when it is not cached; not counted as a hit or a miss, recency unchanged."""
        try:
            with open(self._path(key), "rb") as fh:
                return fh.read(prefix), os.fstat(fh.fileno()).st_size
        except OSError:
            return None

    # -- writes ------------------------------------------------------------------------

    def put(self, key: CacheKey, body: bytes) -> bool:
        """Store ``body`` if the bound allows; True if stored. Never raises on I/O errors.

        A concurrent writer of the same key is harmless (same bytes, atomic rename).
        """
        size = footprint(len(body))
        if self.max_bytes == 0 or size > self.max_bytes // MAX_ENTRY_FRACTION:
            return False
        if time.monotonic() < self._paused_until:
            return False
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.{size}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not self._reserve(size, tmp):
                return False
            with open(tmp, "r+b") as fh:
                fh.write(body)
            os.replace(tmp, path)
        except OSError as exc:
            # The reserved bytes stay counted: an over-estimate, corrected by the next walk.
            self._pause(exc)
            return False
        finally:
            _unlink_quietly(tmp)
        return True

    def _reserve(self, size: int, tmp: Path) -> bool:
        """Count ``size`` bytes in the usage counter and create ``tmp`` (empty), in one
        critical section, so an eviction that reads the counter also sees the file."""
        with self._locked(_USAGE) as fd:
            total = _read_counter(fd)
            if total is not None and total + size <= self.max_bytes:
                _create(tmp)
                _write_counter(fd, total + size)
                return True
        return self._evict_then_reserve(size, tmp)

    def _evict_then_reserve(self, size: int, tmp: Path) -> bool:
        with self._locked(_EVICT, wait=False) as evict_fd:
            if evict_fd is None:
                return False  # another process is evicting; do not wait for it
            with self._locked(_USAGE) as fd:
                before = _read_counter(fd) or 0
            measured, candidates = self._scan()
            target = int(self.max_bytes * LOW_WATER) - size
            for _mtime, entry_size, entry in sorted(candidates):
                if measured <= target:
                    break
                _unlink_quietly(entry)
                CACHE_EVICTIONS.inc()
                measured -= entry_size
                _remove_empty_dirs(entry.parent, stop=self.root)
            with self._locked(_USAGE) as fd:
                # Reservations made while we walked may or may not be in ``measured``;
                # counting them again can only over-estimate.
                added = max(0, (_read_counter(fd) or 0) - before)
                total = measured + added
                if total + size > self.max_bytes:
                    _write_counter(fd, total)
                    return False
                _create(tmp)
                _write_counter(fd, total + size)
                return True

    def _scan(self) -> tuple[int, list[tuple[float, int, Path]]]:
        """(bytes accounted on disk, [(mtime, bytes, path)] of the entries).

        Temporary files count with the size their name declares (they are being
        written); stale ones are removed.
        """
        total = 0
        entries: list[tuple[float, int, Path]] = []
        now = time.time()
        for path in _files(self.root):
            if path.name.startswith("."):
                declared = _declared_size(path.name)
                try:
                    stale = now - path.stat().st_mtime > STALE_TMP_S
                except FileNotFoundError:
                    stale = False  # renamed into place meanwhile: still count it
                if stale:
                    _unlink_quietly(path)
                else:
                    total += declared
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entry = footprint(stat.st_size)
            total += entry
            entries.append((stat.st_mtime, entry, path))
        return total, entries

    @contextmanager
    def _locked(self, name: str, *, wait: bool = True) -> Iterator[int | None]:
        """An exclusive ``flock`` on ``root/name``; yields None if ``wait`` is False and
        another holder has it."""
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield None
                return
            yield fd
        finally:
            os.close(fd)  # closing releases the lock

    def _pause(self, exc: OSError) -> None:
        with self._pause_lock:
            if time.monotonic() < self._paused_until:
                return
            self._paused_until = time.monotonic() + PAUSE_S
        reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else str(exc)
        log.warning(
            "render cache write failed (%s); renders are answered but not stored for %.0f s",
            reason,
            PAUSE_S,
        )

    # -- purges ------------------------------------------------------------------------

    def purge_stack(self, org_id: str, stack: str) -> None:
        """Forget every render of ``stack`` in the organization."""
        if _safe(org_id) and _safe(stack):
            _rmtree(self.root / org_id / stack)

    def purge_image(self, org_id: str, image_hash: str) -> list[tuple[str, str]]:
        """Forget every render of one image, through any stack; the distinct
        ``(stack, extension)`` pairs that were cached, sorted."""
        if not (_safe(org_id) and _safe(image_hash)):
            return []
        org_dir = self.root / org_id
        try:
            stack_dirs = list(org_dir.iterdir())
        except FileNotFoundError:
            return []
        purged: set[tuple[str, str]] = set()
        for stack_dir in stack_dirs:
            image_dir = stack_dir / image_hash
            try:
                names = os.listdir(image_dir)
            except (FileNotFoundError, NotADirectoryError):
                continue
            purged.update((stack_dir.name, n.rpartition(".")[2]) for n in names if "." in n)
            _rmtree(image_dir)
        return sorted(purged)

    def counted_bytes(self) -> int | None:
        """The usage counter shared by every process, bytes (an over-estimate between
        evictions, see above); None before the first store or when unreadable."""
        try:
            fd = os.open(self.root / _USAGE, os.O_RDONLY)
        except OSError:
            return None
        try:
            return _read_counter(fd)
        finally:
            os.close(fd)

    def usage(self) -> int:
        """Bytes the entries take now, measured by walking the tree (for tests and ops)."""
        return self._scan()[0]


def _safe(part: str) -> bool:
    return bool(part) and "/" not in part and not part.startswith(".")


def _files(root: Path) -> Iterator[Path]:
    """Every file at depth 4 (``org/stack/image/file``); vanishing directories are skipped."""
    for org in _subdirs(root):
        for stack in _subdirs(org):
            for image in _subdirs(stack):
                try:
                    with os.scandir(image) as it:
                        names = [e.name for e in it if e.is_file(follow_symlinks=False)]
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for name in names:
                    yield image / name


def _subdirs(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as it:
            return [
                Path(e.path)
                for e in it
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _declared_size(name: str) -> int:
    """The size a temporary file's name declares (``.<entry>.<token>.<size>.tmp``)."""
    parts = name.split(".")
    try:
        return int(parts[-2])
    except (IndexError, ValueError):
        return BLOCK


def _create(path: Path) -> None:
    """Create ``path`` empty; its directory is created (again) if an eviction removed it."""
    for attempt in range(3):
        try:
            open(path, "xb").close()
            return
        except FileNotFoundError:
            if attempt == 2:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)


def _read_counter(fd: int) -> int | None:
    """The counter's bytes, or None when the file is new or unreadable (forces a walk)."""
    raw = os.pread(fd, 32, 0)
    try:
        return int(raw.decode("ascii"))
    except ValueError:
        return None


def _write_counter(fd: int, value: int) -> None:
    data = str(max(0, value)).encode("ascii")
    os.pwrite(fd, data.ljust(32), 0)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.debug("could not remove %s: %s", path, exc)


def _remove_empty_dirs(path: Path, *, stop: Path) -> None:
    """Remove ``path`` and its parents up to (not including) ``stop`` while empty."""
    while path != stop and stop in path.parents:
        try:
            path.rmdir()
        except OSError:
            return  # not empty (a writer is using it) or gone: either is fine
        path = path.parent


def _rmtree(path: Path) -> None:
    """Remove a tree. Entries vanishing meanwhile (an eviction) and entries appearing
    meanwhile (a render finishing now; a purged stack's old plan is unreachable anyway)
    are fine; other errors (a read-only disk) are raised, so a purge does not claim a
    success it did not have."""
    for _ in range(5):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            if not path.exists():
                return
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
