"""Waiting for a change in one directory without polling it (Linux ``inotify``).

A web worker whose render answered ``KeptPending`` waits for a level file another process
is writing (engine/decoded.py). Polling the directory every 2 ms cost a srcset batch ~20 ms
of CPU and ~750 wake-ups (each a context switch that also preempted a render process on
a 2-core machine). A ``DirectoryWatch`` sleeps until a file in the directory is renamed
into place or closed after writing, the two ways the kept-decode directory changes what a
waiter looks at (a level published; the table of claims rewritten).

Bound: one inotify instance (a file descriptor) per waiting thread, for the wait only.
Where inotify is missing or its per-user instance limit is reached, ``wait`` sleeps
``fallback_s`` instead: the old polling, never an error.
"""

from __future__ import annotations

import ctypes
import os
import select
import time
from types import TracebackType

_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_LIBC: ctypes.CDLL | None
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
    _LIBC.inotify_init1.argtypes = [ctypes.c_int]
    _LIBC.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
except (OSError, AttributeError):
    _LIBC = None  # not Linux, or no inotify in this libc


class DirectoryWatch:
    """Use as a context manager around a loop that checks the directory, then calls
    :meth:`wait`. The watch starts before the first check, so a change between a check and
    the wait is not missed."""

    def __init__(self, directory: str, fallback_s: float) -> None:
        self.directory = directory
        self.fallback_s = fallback_s  # seconds slept per wait without inotify
        self._fd = -1
        self._poll: select.poll | None = None

    @property
    def watching(self) -> bool:
        """Whether waits are woken by the directory (else they sleep ``fallback_s``)."""
        return self._fd >= 0

    def __enter__(self) -> DirectoryWatch:
        if _LIBC is None:
            return self
        fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return self  # EMFILE (fs.inotify.max_user_instances) and the like: poll
        if _LIBC.inotify_add_watch(fd, os.fsencode(self.directory),
                                   _IN_CLOSE_WRITE | _IN_MOVED_TO) < 0:  # fmt: skip
            os.close(fd)
            return self
        self._fd = fd
        self._poll = select.poll()  # poll, not select: descriptors may be over 1024
        self._poll.register(fd, select.POLLIN)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def wait(self, seconds: float) -> None:
        """Return after a change in the directory (or one since the last wait), or after
        ``seconds`` (>= 0), whichever comes first; without a watch, after
        ``min(seconds, fallback_s)``."""
        seconds = max(0.0, seconds)
        if self._poll is None:
            time.sleep(min(seconds, self.fallback_s))
            return
        if self._poll.poll(seconds * 1000):
            try:
                while os.read(self._fd, 4096):
                    pass  # drain: every event means "look again"
            except BlockingIOError:
                pass
