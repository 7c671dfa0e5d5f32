"""What counts as a cropstack data directory, and the refusal of one that is not.

A data directory holds ``catalog.db`` (and ``blobs/``, ``cache/``, ``tmp/``,
``metrics/``). Commands that read or serve one (``serve``, ``gc``, ``import``, ``keys``,
``orgs``) refuse a path without a catalog unless told to create one (``--init``): a
mistyped ``--data-dir`` must not silently serve an empty catalog, nor have ``gc`` make a
catalog in a random directory.
"""

from __future__ import annotations

import os
from pathlib import Path

CATALOG_FILE = "catalog.db"


class NotADataDir(Exception):
    """The path is not a data directory; the message says what to do."""


def is_data_dir(path: str | Path, *, catalog_elsewhere: bool = False) -> bool:
    """Whether ``path`` holds a catalog; with ``catalog_elsewhere`` (a PostgreSQL catalog,
    ``database_url``) any existing directory is one, as nothing of the catalog is in it."""
    if catalog_elsewhere:
        return Path(path).is_dir()
    return (Path(path) / CATALOG_FILE).is_file()


def require_data_dir(
    path: str | Path, *, init: bool = False, catalog_elsewhere: bool = False
) -> Path:
    """``path`` as a data directory: as it is when it holds a catalog (or exists, with
    ``catalog_elsewhere``); created (the directory; the catalog is created by whoever
    opens it) when ``init``; else ``NotADataDir`` naming the absolute path and ``--init``."""
    where = Path(path)
    if is_data_dir(where, catalog_elsewhere=catalog_elsewhere):
        return where
    shown = os.path.abspath(where)
    if init:
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NotADataDir(f"cannot create the data directory {shown}: {exc.strerror}") from exc
        return where
    if not where.exists():
        reason = "does not exist"
    elif not where.is_dir():
        reason = "is not a directory"
    else:
        reason = f"is not a cropstack data directory (no {CATALOG_FILE})"
    raise NotADataDir(
        f"{shown} {reason}; check --data-dir (or CROPSTACK_DATA_DIR), or pass --init to "
        "create a new data directory there"
    )
