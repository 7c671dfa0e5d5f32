"""Garbage collection: purge expired soft-deleted images and ``_preview*`` stacks older
than ``preview_stack_days``, then unreferenced blobs.

Blobs are shared by every organization, so a blob is removed only when no row of any
organization (soft-deleted rows still inside the restore window included) references
it, and only when its write time is older than the grace period — an upload writes its
blob before its row commits, and must not lose the blob in between. The write time is
the store's (webapp/blobs), renewed by every ``put``, also of bytes already stored; and
the delete keeps a blob written since the collection began, and each delete is marked in
the catalog while it runs, so an upload of the same bytes racing with a collection (on any
node) keeps its blob (webapp/catalog/blobdeletions.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from webapp.blobs import BlobStore, open_store
from webapp.catalog import open_backend
from webapp.catalog.images import restore_cutoff
from webapp.settings import Settings

if TYPE_CHECKING:
    from webapp.catalog.interface import BlobDeletions


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one collection removed: rows past the restore window, blobs, tmp files."""

    purged_rows: int
    removed_blobs: int
    removed_tmp: int
    removed_previews: int = 0


def collect(settings: Settings, *, grace_s: float | None = None) -> GcReport:
    """Run one collection over ``settings.data_dir``; ``grace_s`` overrides the setting."""
    data_dir = Path(settings.data_dir)
    backend = open_backend(settings)
    catalog = backend.open()
    try:
        purged = catalog.images.purge_expired(restore_cutoff(settings.restore_days))
        previews = catalog.stacks.purge_previews(restore_cutoff(settings.preview_stack_days))
        store = open_store(settings.blob_store, data_dir)
        grace = settings.blob_gc_grace_s if grace_s is None else grace_s
        catalog.blob_deletions.clear_stale()  # marks of a collection that was killed
        removed = remove_unreferenced(
            store, catalog.images.blob_referenced, grace_s=grace, deletions=catalog.blob_deletions
        )
        tmp = store.sweep_partial()
    finally:
        catalog.close()
        backend.close()
    return GcReport(
        purged_rows=purged, removed_blobs=removed, removed_tmp=tmp, removed_previews=previews
    )


def remove_unreferenced(
    store: BlobStore,
    referenced: Callable[[str], bool],
    *,
    grace_s: float,
    deletions: BlobDeletions | None = None,
) -> int:
    """Delete the blobs of ``store`` that ``referenced(key)`` says no row needs and that
    were last written more than ``grace_s`` seconds ago; the number removed.

    ``referenced`` is asked only for old blobs, and the delete itself keeps a blob that an
    upload wrote or confirmed after this collection began (its row may commit after the
    ``referenced`` check). With the catalog's ``deletions``, each delete is marked there
    first (after checking again, in that transaction, that no row references the blob),
    so an upload of the same bytes on any node that commits meanwhile writes them again
    after the delete (webapp/catalog/blobdeletions.py).
    """
    cutoff = time.time() - grace_s
    removed = 0
    for info in list(store.list()):
        if info.written_at >= cutoff or referenced(info.key):
            continue
        if deletions is not None and not deletions.begin(info.key):
            continue  # a row referencing it committed since
        try:
            if store.delete(info.key, unless_written_since=cutoff):
                removed += 1
        finally:
            if deletions is not None:
                deletions.end(info.key)
    return removed
