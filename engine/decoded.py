"""Decoded sources kept by a render process for the next renders of the same image.

A page with a ``srcset`` asks for several widths of one image at once; each render would
decode the same JPEG again (a 24 MP JPEG: 60-85 ms per decode, most of a render). A render
process that is handed the image's hash (``render(source_key=...)``) keeps the decoded,
shrunk, sRGB pixels here, and a later render of the same image whose decode would be no
larger takes them instead of decoding (webapp/renderpool.py sends the jobs of one image
to the process that last rendered it).

The first render of an image decodes as small as its own output allows, as without this
cache (a workload of distinct images pays nothing but a copy of the small decode). When a
second render of the same image needs more pixels than are kept, it decodes at
``WIDE_SHRINK`` (1/2 per side, for a JPEG) so that the widths still to come (up to half
the source's) are served from one decode.

Bound: ``max_bytes`` of pixels in all (``CROPSTACK_RENDER_KEPT_MB`` of the process,
0 = off, the default outside render processes); least recently used first out. An image
larger than a third of the bound is never kept. Only JPEG sources (the format whose
decoder shrinks; others decode whole anyway) and still renders.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import pyvips

from engine.geometry import Size

WIDE_SHRINK = 2  # the JPEG shrink of a decode kept for the widths still to come
_BYTES_PER_SAMPLE = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "float": 4}


def _bytes(image: pyvips.Image) -> int:
    sample = _BYTES_PER_SAMPLE.get(str(image.format), 8)
    return image.width * image.height * image.bands * sample


class DecodedSources:
    """At most ``max_bytes`` of decoded images, by source key (LRU)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, max_bytes)
        self._entries: OrderedDict[str, pyvips.Image] = OrderedDict()
        self._lock = threading.Lock()
        self.used = 0  # bytes held
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def get(self, key: str, need: Size) -> pyvips.Image | None:
        """The kept decode of ``key`` when it has at least ``need`` pixels per side."""
        with self._lock:
            image = self._entries.get(key)
            if image is None or image.width < need.width or image.height < need.height:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return image

    def holds(self, key: str) -> bool:
        """Whether a (possibly too small) decode of ``key`` is kept: the image is being
        rendered at several sizes."""
        with self._lock:
            return key in self._entries

    def fits(self, size: Size, bands: int = 4) -> bool:
        """Whether an 8-bit decode of ``size`` may be kept at all."""
        return size.width * size.height * bands * 3 <= self.max_bytes

    def put(self, key: str, image: pyvips.Image) -> pyvips.Image:
        """Keep ``image`` (it must be in memory) under ``key``, if it fits; ``image``."""
        size = _bytes(image)
        if size * 3 > self.max_bytes:
            return image
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.used -= _bytes(old)
            self._entries[key] = image
            self.used += size
            while self.used > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self.used -= _bytes(dropped)
        return image

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.used = 0


CACHE = DecodedSources(int(os.environ.get("CROPSTACK_RENDER_KEPT_MB", "0") or 0) * 2**20)
