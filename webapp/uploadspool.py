"""The file an uploaded file part is received into, and stored from by rename.

An upload's bytes are written once: the multipart parser writes each file part into a
``Spool``, a new file in the blob store's temporary directory (the same filesystem as the
blobs). The upload check's render process reads that file by its path, while a helper
thread of the web worker hashes it (SHA-256, the blob key; SHA-1, rokka's binary hash) and
``fsync``-s it (:func:`seal_in_background`): the decode takes one core, hashing and the
disk the other. Once the check has passed, the same file becomes the blob
(``LocalBlobStore.adopt``: a link, a rename and the directory's ``fsync``). Nothing is
copied into the web worker's memory, sent through a pipe or written a second time.

A spool's name is removed when the request ends (``close``), whatever happened; a blob
made from it keeps its own name. A worker killed mid-upload leaves a ``*.tmp`` file that
``cropstack gc`` sweeps (``LocalBlobStore.sweep_partial``) after its grace period.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

# Threads that fsync spools while their checks run, per web worker process. More uploads at
# once than this only queue their fsync (each upload waits for its own before storing).
_SYNC_THREADS = 4
_HASH_CHUNK = 1024 * 1024
_executor: tuple[int, ThreadPoolExecutor] | None = None
_executor_lock = threading.Lock()


class Spool:
    """A new file in ``directory`` receiving one uploaded file part (write, then read).

    ``sha256``/``sha1`` are the hex digests of every byte written, ``size`` their count.
    Offers what the multipart parser and ``FileStorage`` use (``write``, ``seek``,
    ``tell``, ``read``, ``close``).
    """

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / f"upload.{secrets.token_hex(12)}.tmp"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self._sha256 = ""
        self._sha1 = ""
        self._position = 0
        self.size = 0
        self.closed = False

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the file: the blob key (once :meth:`seal` has run)."""
        if not self._sha256:
            raise RuntimeError("spool not sealed")
        return self._sha256

    @property
    def sha1(self) -> str:
        """Hex SHA-1 of the file: rokka's ``binary_hash`` (once :meth:`seal` has run)."""
        if not self._sha1:
            raise RuntimeError("spool not sealed")
        return self._sha1

    def write(self, data: bytes) -> int:
        """Append ``data`` (writes only ever append: the parser writes each part in order)."""
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, self.size)
            self.size += written
            view = view[written:]
        self._position = self.size
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all when negative) from the current position."""
        left = max(0, self.size - self._position)
        count = left if size is None or size < 0 else min(size, left)
        data = os.pread(self._fd, count, self._position) if count else b""
        self._position += len(data)
        return data

    def read_all(self) -> bytes:
        """Every byte written (a copy in memory: only where bytes must be held)."""
        return os.pread(self._fd, self.size, 0) if self.size else b""

    def prefix(self, size: int) -> bytes:
        """The first ``size`` bytes (fewer if the file is shorter)."""
        return os.pread(self._fd, min(size, self.size), 0) if self.size else b""

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def flush(self) -> None:
        """Nothing is buffered here."""

    def fileno(self) -> int:
        return self._fd

    def seal(self) -> None:
        """Hash the file as it is (no more writes come) and make it durable (``fsync``);
        OSError as the disk reports it. Reads back from the page cache, on the helper
        thread, while the upload check decodes: off the request's critical path."""
        sha256 = hashlib.sha256()
        sha1 = hashlib.sha1()  # rokka's binary hash, never a key
        buffer = bytearray(_HASH_CHUNK)
        view = memoryview(buffer)
        offset = 0
        while offset < self.size:
            count = os.preadv(self._fd, [view[: min(_HASH_CHUNK, self.size - offset)]], offset)
            if not count:
                raise OSError(errno.EIO, "upload spool shorter than written")
            sha256.update(view[:count])
            sha1.update(view[:count])
            offset += count
        os.fsync(self._fd)
        self._sha256, self._sha1 = sha256.hexdigest(), sha1.hexdigest()

    def close(self) -> None:
        """Close the file and remove its name (a blob made from it keeps its own)."""
        if self.closed:
            return
        self.closed = True
        os.close(self._fd)
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # swept later with the other temporary files

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sync_executor() -> ThreadPoolExecutor:
    """This process's fsync threads (a fork starts without them, so it makes its own)."""
    global _executor
    with _executor_lock:
        if _executor is None or _executor[0] != os.getpid():
            _executor = (
                os.getpid(),
                ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="upload-fsync"),
            )
        return _executor[1]


def seal_in_background(spools: list[Spool]) -> Future[None]:
    """Start :meth:`Spool.seal` of ``spools``, one after another, on a helper thread; the
    caller must wait for the future before closing them (their descriptors are in use)."""

    def seal_all() -> None:
        for spool in spools:
            spool.seal()

    return _sync_executor().submit(seal_all)
