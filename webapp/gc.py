"""Garbage collection: purge expired soft-deleted images, then unreferenced blobs.

Blobs are shared by every organization, so a blob is removed only when no row of any
organization (soft-deleted rows still inside the restore window included) references
it, and only when it is older than the grace period — an upload writes its blob before
its row commits, and must not lose the blob in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from webapp.catalog import open_backend
from webapp.catalog.images import restore_cutoff
from webapp.settings import Settings
from webapp.storage import BlobStore


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one collection removed: rows past the restore window, blobs, tmp files."""

    purged_rows: int
    removed_blobs: int
    removed_tmp: int


def collect(settings: Settings, *, grace_s: float | None = None) -> GcReport:
    """Run one collection over ``settings.data_dir``; ``grace_s`` overrides the setting."""
    data_dir = Path(settings.data_dir)
    backend = open_backend(settings)
    catalog = backend.open()
    try:
        purged = catalog.images.purge_expired(restore_cutoff(settings.restore_days))
        store = BlobStore(data_dir)
        grace = settings.blob_gc_grace_s if grace_s is None else grace_s
        removed = store.gc(catalog.images.blob_referenced, grace_s=grace)
        tmp = store.sweep_tmp()
    finally:
        catalog.close()
        backend.close()
    return GcReport(purged_rows=purged, removed_blobs=removed, removed_tmp=tmp)
