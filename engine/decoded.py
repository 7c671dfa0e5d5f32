"""Decoded JPEG sources kept on tmpfs, shared by every render process of a server.

A page with a ``srcset`` asks for several widths of one image at once; each render would
decode the same JPEG again (a 24 MP JPEG: 60-85 ms per decode, most of a render), and the
requests land on several web workers and render processes. Here a decode is kept as a
small pyramid of libvips ``.v`` files (raw pixels with a 64-byte header: opening one maps
it, reading it is nearly free) in one directory that every render process of the server
uses, so one decode serves every width, whichever process renders it.

- Key: the source's **content hash** (its blob key: the SHA-256 of the original's bytes,
  which the blob store checks on every read; 64 hex digits, anything else is never
  kept). Changed bytes are another key, so a purge, delete, re-upload or optimised
  source can never make a kept decode serve other pixels.
- Levels: one decode at 1/2 per side (1/1 for a render that needs the full size), then
  1/4 and 1/8 shrunk from it (box filter, a few ms), as ``{key}.{shrink}.v``. A render
  takes the smallest level that still has the pixels its own shrink-on-load would decode.
- When: a render of an image seen within ``SEEN_WINDOW_S`` seconds (by any process: a
  fixed table of ``_SEEN_SLOTS`` slots in the directory) *claims* the image: it holds the
  image's lock (``flock`` on one of ``_LOCK_STRIPES`` files), decodes wide straight into
  the wide level's file (under a temporary name, then ``rename``: published the moment
  the decode is whole, once the source's hash has matched), shrinks and publishes the
  smaller levels from it, and lets go. Renders of the image that arrive meanwhile wait
  (at most ``WAIT_S``) for the level they would have decoded themselves, and read it.
  The first render seen decodes only what it needs, streamed, and keeps nothing (a
  workload of distinct images pays a lookup and no CPU), unless another render of the
  image claimed it while the first one's bytes were being fetched: then it waits for
  that decode too, and a burst of widths decodes once.
- Bound: ``max_bytes`` of files in all (tmpfs pages are memory), at most ``max_files``
  levels, least recently used (file mtime, touched on each use) first out, enforced under
  a directory lock by whoever adds files; a pyramid over a third of the bound is never
  kept. A temporary file counts with the size it will have from the moment it is named;
  one older than ``_STALE_TEMP_S`` (its writer was killed) is removed.
- Trust: a level is served only if its header is libvips' own, its size and band format
  are the ones its name and the source's size imply, and the file is as long as its
  pixels; anything else is removed and the render decodes for itself.

A render process learns the directory and bound from ``CROPSTACK_KEPT_DIR`` and
``CROPSTACK_RENDER_KEPT_MB`` (unset or 0: off).
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import astuple, dataclass

import pyvips

from engine.dirwatch import DirectoryWatch
from engine.errors import KeptPending
from engine.geometry import Size

SEEN_WINDOW_S = 10.0  # a second render of an image within this makes its decode kept
WAIT_S = 5.0  # longest a render waits for another process decoding its image
WIDE_SHRINK = 2  # the JPEG shrink of a kept decode (1 when a render needs full size)
LEVELS = (2, 4, 8)  # the shrinks kept below a wide decode at 1/2
# Images share a lock file when their keys fall in one stripe: a render of one may wait
# for the claimed decode of another, at 1 chance in this many.
_LOCK_STRIPES = 1024
_SEEN_SLOTS = 4096
# A slot: 8 bytes of the key, when it was last seen, the shrink a process is decoding it
# at (0: none), since when.
_SEEN = struct.Struct("<8sdid")
_STALE_TEMP_S = 120.0
_COUNTERS = ("decodes", "kept", "served")
_POLL_S = 0.002
# Longest a waiting web worker sleeps between looks without a change seen in the directory
# (a safety net: every change it waits for wakes it, engine/dirwatch.py).
_WATCH_CAP_S = 0.05
_KEY = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"([0-9a-f]{64})\.([1248])\.v")
_VIPS_MAGIC = (b"\xb6\xa6\xf2\x08", b"\x08\xf2\xa6\xb6")
_HEADER = 64
_PAGE = 4096
# Metadata kept in a level file: the pixels' description. EXIF, XMP and ICC blobs of the
# source are not needed after the decode (it is sRGB already) and could be large.
_KEEP_FIELDS = frozenset(
    {"width", "height", "bands", "format", "coding", "interpretation", "xoffset", "yoffset",
     "xres", "yres"}
)  # fmt: skip


def _pages(nbytes: int) -> int:
    return -(-nbytes // _PAGE) * _PAGE


def pixel_bytes(size: Size, bands: int) -> int:
    """Bytes of an 8-bit image of ``size`` with ``bands`` bands in a level file."""
    return _pages(_HEADER + size.width * size.height * bands + _PAGE)


def level_size(source: Size, shrink: int) -> Size:
    """The size of level ``shrink`` of a source of ``source`` pixels (as the JPEG decoder
    and libvips' ``shrink`` round: up)."""
    return Size(-(-source.width // shrink), -(-source.height // shrink))


@dataclass
class _Claim:
    key: str
    fd: int  # the image's lock, held
    shrink: int  # the decode it keeps


class KeptDecodes:
    """The kept-decode directory of a server, as one render process uses it."""

    def __init__(self, directory: str, max_bytes: int, max_files: int = 256) -> None:
        self.directory = directory
        self.max_bytes = max(0, max_bytes)
        self.max_files = max(1, max_files)
        self._claim: _Claim | None = None
        self._first: str | None = None  # a first render seen, between its two jobs
        # Set for a job its web worker can wait for: a render that would wait here for a
        # level another process is making answers KeptPending instead, and its render
        # process serves the next job meanwhile (webapp/renderpool.py).
        self.defer = False
        self._ready = False
        # Called before a decode is published, in this process (raises to withhold it).
        self.before_publish: Callable[[], None] | None = None

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 and bool(self.directory)

    @staticmethod
    def valid_key(key: str | None) -> bool:
        return key is not None and _KEY.fullmatch(key) is not None

    # -- reading ------------------------------------------------------------------------

    def _path(self, key: str, shrink: int) -> str:
        return os.path.join(self.directory, f"{key}.{shrink}.v")

    def find(
        self, key: str, source: Size, need: Size, *, ideal: bool = False
    ) -> pyvips.Image | None:
        """The smallest kept level of ``key`` (a source of ``source`` pixels) with at least
        ``need`` pixels per side, or None. ``ideal``: only the smallest level that covers
        ``need`` at all (a render waiting for a claimed decode takes the level it would
        have decoded, not the wide one published before it). A level that fails its
        checks is removed."""
        if not self.enabled or not self.valid_key(key):
            return None
        for shrink in (_ideal(source, need),) if ideal else (8, 4, 2, 1):
            size = level_size(source, shrink)
            if not _covers(size, need):
                continue
            path = self._path(key, shrink)
            image = _open_level(path, size)
            if image is not None:
                try:
                    os.utime(path)  # least recently used goes first
                except OSError:
                    pass
                return image
        return None

    # -- claiming -----------------------------------------------------------------------

    def _setup(self) -> None:
        if not self._ready:
            os.makedirs(os.path.join(self.directory, "locks"), mode=0o700, exist_ok=True)
            self._ready = True

    def _lock_fd(self, key: str) -> int:
        stripe = zlib.crc32(key.encode()) % _LOCK_STRIPES
        path = os.path.join(self.directory, "locks", str(stripe))
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def prepare(
        self, key: str, source: Size, need: Size, wide: int
    ) -> pyvips.Image | None:
        """For a render that has no source bytes yet: a kept level of ``key`` that serves
        ``need``, also one that another process is decoding now (waited for, at most
        ``WAIT_S``); else None. Then, if ``key`` was seen within ``SEEN_WINDOW_S`` and a
        decode at shrink ``wide`` fits the bound, this process holds the image's claim
        (:meth:`claimed`) until :meth:`end_job`: it decodes wide and keeps. Else this is
        the first render seen, which decodes for itself unless another render claims the
        image while its bytes are fetched (:meth:`first_render_waits`).
        """
        if not self.enabled or not self.valid_key(key):
            return None
        try:
            return self._prepare(key, source, need, wide)
        except OSError:
            # the directory went away (removed by hand, tmpfs full): keep nothing now
            self.end_job(keep_claim=False)
            self._ready = False
            return None

    def _prepare(self, key: str, source: Size, need: Size, wide: int) -> pyvips.Image | None:
        found = self.find(key, source, need)
        if found is not None:
            return found
        self._setup()
        self.end_job(keep_claim=False)
        deadline = time.monotonic() + WAIT_S
        fd = self._lock_fd(key)
        try:
            while True:
                if _try_lock(fd):
                    found = self.find(key, source, need)
                    if found is not None:
                        break
                    now = time.time()
                    seen, decoding, since = self._slot(key)
                    if _serving(source, need, decoding, since, now):
                        fcntl.flock(fd, fcntl.LOCK_UN)  # wait for that decode, unlocked
                    elif now - seen <= SEEN_WINDOW_S and self._fits(source, wide):
                        self._mark(key, now, wide, now)  # seen before: decode wide
                        self._claim = _Claim(key, fd, wide)
                        return None
                    else:
                        # The first render seen: while its bytes are fetched, another render
                        # of the image may come and claim it (see first_render_waits).
                        self._mark(key, now, 0, 0.0)
                        self._first = key
                        break
                elif (found := self.find(key, source, need, ideal=True)) is not None:
                    break
                elif self.defer and self._making(key, source, need):
                    raise KeptPending(KeptPending.describe(_ideal(source, need)))
                if time.monotonic() > deadline:
                    break  # decode for itself
                time.sleep(_POLL_S)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # closing the descriptor lets the lock go
        return found

    def first_render_waits(self, key: str, source: Size, need: Size) -> pyvips.Image | None:
        """For the first render seen of ``key``, now with its bytes: the levels of a wide
        decode another process claimed meanwhile (waited for, at most ``WAIT_S``), when
        they cover ``need``; else None (it decodes for itself, keeping nothing)."""
        if self._first != key:
            return None
        try:
            _, decoding, since = self._slot(key)
            if not decoding or not _covers(level_size(source, decoding), need):
                return None
            fd = self._lock_fd(key)
        except OSError:
            return None
        try:
            deadline = since + WAIT_S
            while time.time() < deadline:
                found = self.find(key, source, need, ideal=True)
                if found is not None:
                    return found
                if _try_lock(fd):  # the claim ended: kept now, or never
                    return self.find(key, source, need)
                if self.defer:
                    raise KeptPending(KeptPending.describe(_ideal(source, need)))
                time.sleep(_POLL_S)
            return None
        finally:
            os.close(fd)

    def _making(self, key: str, source: Size, need: Size) -> bool:
        """Whether a process is making a decode of ``key`` whose levels serve ``need``."""
        _, decoding, since = self._slot(key)
        return _serving(source, need, decoding, since, time.time())

    def wait(self, key: str, level: int, seconds: float = WAIT_S) -> None:
        """Return once level ``level`` (a shrink) of ``key`` is kept, or no process is
        making a decode of ``key`` any more, or after ``seconds``: what a web worker does
        for a render that answered ``KeptPending`` before it sends the job again."""
        if not self.enabled or not self.valid_key(key) or level not in (1, 2, 4, 8):
            return
        path = self._path(key, level)
        deadline = time.monotonic() + seconds
        try:
            # Woken by the directory (a level renamed into place, the table of claims
            # rewritten when a claim ends), not by polling it: see engine/dirwatch.py.
            with DirectoryWatch(self.directory, _POLL_S) as watch:
                while (left := deadline - time.monotonic()) > 0:
                    if os.path.exists(path):
                        return
                    _, decoding, since = self._slot(key)
                    stale = since + WAIT_S - time.time()  # a claimer killed: no event
                    if not decoding or stale < 0:
                        return
                    watch.wait(min(left, stale, _WATCH_CAP_S))
        except OSError:
            return

    def claimed(self, key: str | None) -> int:
        """The shrink this process decodes ``key`` at and keeps (0: none)."""
        if self._claim is None or self._claim.key != key:
            return 0
        return self._claim.shrink

    def end_job(self, *, keep_claim: bool) -> None:
        """After a job: the claim lives on only across a ``SourceNeeded`` reply (the same
        job comes back with the bytes)."""
        if not keep_claim:
            self._first = None
        if self._claim is not None and not keep_claim:
            claim, self._claim = self._claim, None
            # Its decode is kept now, or never will be (its render failed, no room): the
            # renders waiting for it look at the files, or decode for themselves.
            try:
                seen, _, _ = self._slot(claim.key)
                self._mark(claim.key, seen, 0, 0.0)
            except OSError:
                pass
            os.close(claim.fd)

    def _slot(self, key: str) -> tuple[float, int, float]:
        """(when ``key`` was last seen, the shrink a process is decoding it at or 0, since
        when) from the fixed table; a slot of another key reads as never seen."""
        index = int(key[:8], 16) % _SEEN_SLOTS
        # read-only: closing a descriptor opened for writing wakes every waiter's
        # DirectoryWatch, and each of them reads the table when woken
        try:
            fd = os.open(os.path.join(self.directory, "seen"), os.O_RDONLY)
        except FileNotFoundError:
            return 0.0, 0, 0.0
        try:
            raw = os.pread(fd, _SEEN.size, index * _SEEN.size).ljust(_SEEN.size, b"\0")
        finally:
            os.close(fd)
        tag, seen, decoding, since = _SEEN.unpack(raw)
        if tag != key[8:16].encode():
            return 0.0, 0, 0.0
        return seen, decoding, since

    def _mark(self, key: str, seen: float, decoding: int, since: float) -> None:
        index = int(key[:8], 16) % _SEEN_SLOTS
        fd = os.open(os.path.join(self.directory, "seen"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, _SEEN.pack(key[8:16].encode(), seen, decoding, since), index * _SEEN.size)
        finally:
            os.close(fd)

    def _fits(self, source: Size, shrink: int) -> bool:
        """Whether the levels of a 3-band decode at ``shrink`` (and those below it, to 1/8)
        may be kept: together at most a third of the bound."""
        total = 0
        while shrink <= LEVELS[-1]:
            total += pixel_bytes(level_size(source, shrink), 3)
            shrink *= 2
        return total * 3 <= self.max_bytes

    # -- writing ------------------------------------------------------------------------

    def keep(
        self, key: str, source: Size, shrink: int, decode: Callable[[], pyvips.Image]
    ) -> dict[int, pyvips.Image]:
        """The decode of ``key`` at ``shrink`` and the levels below it down to 1/8 (by
        shrink): kept when this process holds the image's claim and they fit, else only the
        decode, in memory. ``decode()`` gives the decode lazily, read top to bottom. A kept
        decode is written by the decoder straight into its level file, published (renamed)
        the moment it is whole, so the widest renders waiting for it start at once; the
        smaller levels are box-shrunk from it and published after it. The claim ends here.
        """
        try:
            image = decode()
            fits = (image.width, image.height) == astuple(level_size(source, shrink))
            if self.claimed(key) and fits and image.format == "uchar":
                try:
                    levels = self._write(key, source, shrink, image)
                except (OSError, pyvips.Error):
                    # tmpfs full or gone, or a damaged source (decoded again below, where
                    # its error reaches the render)
                    self._ready = False
                    levels = None
                if levels is not None:
                    return levels
                image = decode()  # a sequential decode is read once
            return {shrink: image.copy_memory()}
        finally:
            self.end_job(keep_claim=False)  # renders waiting for these levels go on

    def _write(
        self, key: str, source: Size, shrink: int, image: pyvips.Image
    ) -> dict[int, pyvips.Image] | None:
        """Write ``image`` (lazy, at ``shrink``) and the levels below it; the levels (the
        wide one mapped from its file), or None when there is no room."""
        shrinks = [s for s in LEVELS if s > shrink]
        sizes = {s: pixel_bytes(level_size(source, s), image.bands) for s in [shrink, *shrinks]}
        if sum(sizes.values()) * 3 > self.max_bytes:
            return None
        temps = self._reserve(key, sizes)
        if temps is None:
            return None
        try:
            _strip(image).vipssave(temps[shrink])
            wide = _open_level(temps[shrink], level_size(source, shrink))
            if wide is None:
                return None
            if self.before_publish is not None:
                self.before_publish()  # e.g. the source's hash, computed meanwhile
            os.rename(temps[shrink], self._path(key, shrink))
            levels = {shrink: wide}
            for s in shrinks:
                levels[s] = _halve(levels[s // 2], level_size(source, s))
                _strip(levels[s]).vipssave(temps[s])
                os.rename(temps[s], self._path(key, s))
            return levels
        finally:
            for temp in temps.values():
                _remove(temp)

    def _reserve(self, key: str, sizes: dict[int, int]) -> dict[int, str] | None:
        """Under the directory lock: room for ``sizes`` (evicting least recently used
        levels), and the temporary names, created empty, that carry the reservation."""
        self._setup()
        fd = os.open(os.path.join(self.directory, "locks", "dir"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            incoming = sum(sizes.values())
            self._evict(incoming, len(sizes), skip=key)
            temps = {}
            for s, nbytes in sizes.items():
                temp = os.path.join(self.directory, f".tmp-{os.getpid()}-{nbytes}-{key}.{s}.v")
                with open(temp, "wb"):
                    pass
                temps[s] = temp
            return temps
        except OSError:
            return None
        finally:
            os.close(fd)

    def _evict(self, incoming: int, files: int, skip: str = "") -> None:
        """Remove stale temporary files, then least recently used levels, until
        ``incoming`` more bytes and ``files`` more levels fit. Call under the directory
        lock."""
        now = time.time()
        kept: list[tuple[float, int, str]] = []
        used = 0
        for entry in os.scandir(self.directory):
            name = entry.name
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if name.startswith(".tmp-"):
                if now - stat.st_mtime > _STALE_TEMP_S:
                    _remove(entry.path)
                    continue
                parts = name.split("-")
                reserved = int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else 0
                used += max(reserved, _pages(stat.st_size))
            elif _NAME.fullmatch(name):
                size = _pages(stat.st_size)
                used += size
                kept.append((stat.st_mtime, size, entry.path))
        kept.sort()
        count = len(kept)
        for _, size, path in kept:
            if used + incoming <= self.max_bytes and count + files <= self.max_files:
                break
            if os.path.basename(path).startswith(skip) and skip:
                continue  # the levels being replaced go by rename
            _remove(path)
            used -= size
            count -= 1
        if used + incoming > self.max_bytes:
            raise OSError("no room")

    def count(self, event: str) -> None:
        """Add one to the directory's counter of ``event`` (``decodes``: JPEG decodes of
        renders that could be kept, whether kept or not; ``kept``: of those, the claimed
        wide decodes; ``served``: renders served from a kept level)."""
        if not self.enabled:
            return
        offset = _COUNTERS.index(event) * 8
        try:
            self._setup()
            fd = os.open(os.path.join(self.directory, "counts"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            self._ready = False
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.pread(fd, 8, offset).ljust(8, b"\0")
            os.pwrite(fd, struct.pack("<Q", struct.unpack("<Q", raw)[0] + 1), offset)
        finally:
            os.close(fd)

    def counts(self) -> dict[str, int]:
        """The counters of :meth:`count` (0 before anything happened)."""
        try:
            with open(os.path.join(self.directory, "counts"), "rb") as fh:
                raw = fh.read().ljust(8 * len(_COUNTERS), b"\0")
        except FileNotFoundError:
            raw = bytes(8 * len(_COUNTERS))
        values = struct.unpack(f"<{len(_COUNTERS)}Q", raw[: 8 * len(_COUNTERS)])
        return dict(zip(_COUNTERS, values, strict=True))

    def usage(self) -> tuple[int, int]:
        """(bytes, levels) the directory holds now (temporary files' bytes included)."""
        used = count = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0, 0
        for entry in entries:
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
            if _NAME.fullmatch(entry.name):
                used += _pages(size)
                count += 1
            elif entry.name.startswith(".tmp-"):
                used += _pages(size)
        return used, count


def _ideal(source: Size, need: Size) -> int:
    """The smallest level (largest shrink) of a source of ``source`` pixels that serves
    ``need``."""
    return next(s for s in (8, 4, 2, 1) if s == 1 or _covers(level_size(source, s), need))


def _serving(source: Size, need: Size, decoding: int, since: float, now: float) -> bool:
    """Whether a decode at shrink ``decoding`` (0: none), begun at ``since`` (epoch
    seconds), is still under way at ``now`` and its levels serve ``need``."""
    return (
        bool(decoding)
        and _covers(level_size(source, decoding), need)
        and now - since <= WAIT_S
    )


def _covers(size: Size, need: Size) -> bool:
    return size.width >= need.width and size.height >= need.height


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _halve(image: pyvips.Image, size: Size) -> pyvips.Image:
    """``image`` shrunk to ``size`` (about half per side) by averaging 2x2 blocks, as the
    JPEG decoder's own DCT shrink roughly does; in memory."""
    out = image.shrink(image.width / size.width, image.height / size.height)
    if (out.width, out.height) != (size.width, size.height):
        out = out.embed(0, 0, size.width, size.height, extend="copy")
    return out.copy_memory()


def _strip(image: pyvips.Image) -> pyvips.Image:
    out = image.copy()
    for field in image.get_fields():
        if field not in _KEEP_FIELDS:
            out.remove(field)
    return out


_allowed = False


def _allow_level_files() -> None:
    """Let libvips open ``.v`` files, which blocking untrusted loaders forbids: only the
    file loader (level files named here), never from a buffer, so no client's upload can
    reach it (sources are always loaded from buffers)."""
    global _allowed
    if not _allowed:
        pyvips.operation_block_set("VipsForeignLoadVipsFile", False)
        _allowed = True


def _open_level(path: str, size: Size) -> pyvips.Image | None:
    """The level file at ``path`` if it is a whole libvips image of ``size``, 8-bit, 1-4
    bands; None (and the file removed when it exists but is wrong)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        head = os.pread(fd, _HEADER, 0)
        length = os.fstat(fd).st_size
    finally:
        os.close(fd)
    ok = len(head) == _HEADER and head[:4] in _VIPS_MAGIC
    if ok:
        little = head[:4] == _VIPS_MAGIC[0]  # VIPS_MAGIC_INTEL: fields little-endian
        width, height, bands = struct.unpack("<iii" if little else ">iii", head[4:16])
        ok = (width, height) == (size.width, size.height) and 1 <= bands <= 4
        ok = ok and length >= _HEADER + width * height * bands
    if ok:
        try:
            _allow_level_files()
            image = pyvips.Image.vipsload(path)
            ok = image.format == "uchar" and image.bands == bands
        except pyvips.Error:
            ok = False
    if not ok:
        _remove(path)
        return None
    return image


def _from_environment() -> KeptDecodes:
    kept_mb = int(os.environ.get("CROPSTACK_RENDER_KEPT_MB", "0") or 0)
    return KeptDecodes(os.environ.get("CROPSTACK_KEPT_DIR", ""), kept_mb * 2**20)


STORE = _from_environment()
