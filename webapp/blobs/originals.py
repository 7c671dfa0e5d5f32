"""Reading the original of a catalogued image, with the log line an operator needs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from webapp.blobs import BlobStore, BlobUnavailable
from webapp.errors import OriginalUnavailable

log = logging.getLogger(__name__)


def read_original(store: BlobStore, image: Mapping[str, Any]) -> bytes:
    """The verified original of catalog row ``image`` (keys ``hash``, ``blob_key``).

    A missing or damaged blob is logged at ERROR with the image hash (an operator must
    restore it) and answered ``OriginalUnavailable`` (503). A store that cannot be reached
    raises ``StoreUnavailable`` (503, webapp/errors.py).
    """
    try:
        return store.get(image["blob_key"])
    except BlobUnavailable as exc:
        log.error(
            "original of image %s unavailable: blob %s %s",
            image["hash"],
            exc.key,
            exc.reason,
        )
        raise OriginalUnavailable(image["hash"]) from exc


def original_file(store: BlobStore, image: Mapping[str, Any]) -> tuple[str, str] | None:
    """(path, blob key) of catalog row ``image``'s original where a render process may
    read and verify it itself (``BlobStore.file_of``); None for a store of no files."""
    path = store.file_of(image["blob_key"])
    return None if path is None else (path, image["blob_key"])
