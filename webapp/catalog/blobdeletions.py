"""Blob deletions in progress: how ``cropstack gc`` and uploads on other nodes agree.

An upload writes its original to the blob store, then commits its row; a collection
deletes originals no row needs. Between a collection's last look at a blob and its
DELETE, an upload of the same bytes on another node may write them again and commit its
row, and the DELETE then takes the original of a committed row. S3 has no conditional
delete every compatible store supports, so the catalog settles it, with the write
transactions it already serialises across nodes:

* the collection marks a blob (table ``blob_deletions``, nodeschema.py) in a transaction
  that also checks that no row references it; deletes it; then removes the mark;
* an upload checks, in the transaction that commits its rows, that none of its blobs is
  marked. If one is, it commits nothing, waits for the mark to go (the DELETE is then
  done), writes its blobs again and retries.

Either the upload's transaction comes first (the collection sees the row and keeps the
blob) or the collection's does (the upload sees the mark and writes its bytes again after
the DELETE). A mark older than ``STALE_S`` belongs to a collection that was killed; it
is ignored by uploads and removed by the next collection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from webapp.catalog.database import Database

#: Seconds after which a mark is taken for a killed collection's. Longer than any one
#: DELETE can take with the store client's timeouts and retries (3 x (5 + 60) s).
STALE_S = 300.0


class BlobDeletions:
    """Marks of blobs being deleted (``webapp.catalog.interface.BlobDeletions``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def begin(self, blob_key: str) -> bool:
        """Mark ``blob_key`` as being deleted; False (no mark) when a row references it."""
        with self.db.transaction():
            referenced = self.db.row(
                "SELECT 1 FROM sourceimages WHERE blob_key = ? LIMIT 1", (blob_key,)
            )
            if referenced is not None:
                return False
            self.db.execute(
                "INSERT INTO blob_deletions (blob_key, started) VALUES (?, ?) "
                "ON CONFLICT (blob_key) DO UPDATE SET started = excluded.started",
                (blob_key, time.time()),
            )
        return True

    def end(self, blob_key: str) -> None:
        """Remove the mark of ``blob_key`` (its DELETE is done or was not sent)."""
        with self.db.transaction():
            self.db.execute("DELETE FROM blob_deletions WHERE blob_key = ?", (blob_key,))

    def in_progress(self, blob_keys: Sequence[str]) -> list[str]:
        """Which of ``blob_keys`` a collection is deleting now (marks younger than
        ``STALE_S``)."""
        if not blob_keys:
            return []
        marks = ", ".join("?" for _ in blob_keys)
        rows = self.db.rows(
            f"SELECT blob_key FROM blob_deletions WHERE blob_key IN ({marks}) AND started > ?",
            (*blob_keys, time.time() - STALE_S),
        )
        return sorted(str(r["blob_key"]) for r in rows)

    def clear_stale(self) -> int:
        """Remove marks of killed collections; how many."""
        with self.db.transaction():
            return self.db.execute(
                "DELETE FROM blob_deletions WHERE started <= ?", (time.time() - STALE_S,)
            )
