"""``cropstack import DIR --organization O``: upload a folder into an organization.

Files are read from the local disk and stored by the same code an upload request runs
(``webapp.ingest``: the upload checks in render processes, the durable blob write, the
catalog row), so the server need not run, and may. Resumable: a file whose bytes the
organization already holds (same SHA-1, rokka's ``binary_hash``, on a live image) is
skipped before anything is stored, so a second run after an interruption only does
what is left. Hidden files and directories (``.name``) are left out; symbolic links are
not followed into directories.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from webapp.blobs import BlobStore
from webapp.catalog.interface import CatalogHandle
from webapp.errors import ApiError
from webapp.ingest import Upload, ingest
from webapp.settings import Settings
from webapp.uploadform import safe_name


@dataclass
class ImportReport:
    """What one run did: counts, bytes read, and each failure with its reason."""

    imported: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes_read: int = 0

    def summary(self) -> str:
        """One line for the operator."""
        return (
            f"imported {self.imported}, skipped {self.skipped} (already there), "
            f"failed {len(self.failed)}; {self.bytes_read / 1e6:.1f} MB read"
        )


def files_under(root: Path) -> Iterator[Path]:
    """Every regular, non-hidden file under ``root``, in a stable (sorted) order."""
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(directory) / name
            if not name.startswith(".") and path.is_file():
                yield path


def import_tree(
    root: Path,
    org_id: str,
    catalog: CatalogHandle,
    blobs: BlobStore,
    settings: Settings,
    *,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import every file under ``root`` into the organization ``org_id``; the report.

    A file that is not an image the server takes, or is larger than
    ``max_upload_bytes``, is a failure with the server's reason; the run goes on.
    ``progress`` is called after each file.
    """
    report = ImportReport()
    for path in files_under(root):
        relative = str(path.relative_to(root))
        try:
            size = path.stat().st_size
            if size > settings.max_upload_bytes:
                raise ApiError(413, f"larger than max_upload_bytes ({size} bytes)")
            data = path.read_bytes()
            report.bytes_read += len(data)
            sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
            if catalog.images.live_by_binary_hash(org_id, sha1):
                report.skipped += 1
            else:
                ingest(catalog, blobs, settings, org_id, [Upload(data, safe_name(path.name))])
                report.imported += 1
        except ApiError as exc:
            report.failed.append((relative, exc.message))
        except OSError as exc:
            report.failed.append((relative, exc.strerror or str(exc)))
        if progress is not None:
            progress(report)
    return report


class Progress:
    """A progress display: a tqdm bar on a terminal; on anything else (a log, a pipe) a
    plain line at every tenth of the files, since a bar's carriage returns garble logs."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.done = 0
        self._bar = None
        if stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="file", file=stream, dynamic_ncols=True)
        self._step = max(1, total // 10)

    def __call__(self, report: ImportReport) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.set_postfix(imported=report.imported, skipped=report.skipped,
                                  failed=len(report.failed), refresh=False)  # fmt: skip
            self._bar.update(1)
        elif self.done % self._step == 0 or self.done == self.total:
            print(f"import: {self.done}/{self.total} files; {report.summary()}",
                  file=self.stream, flush=True)  # fmt: skip

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
