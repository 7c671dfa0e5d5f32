"""What ``cropstack serve`` says when it starts: one JSON line naming where the data lives.

A mistyped ``--data-dir`` is then visible at once in the log, with every setting that
differs from its default (values of settings whose name suggests a secret are masked).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from webapp.settings import SETTINGS, Settings

_SECRET = re.compile(r"secret|password|token|credential|(^|_)key$")


def non_default(settings: Settings) -> dict[str, Any]:
    """Every setting whose value differs from its default: name -> value (secrets masked)."""
    changed: dict[str, Any] = {}
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        if value != setting.parse(setting.default):
            changed[setting.name] = "***" if _SECRET.search(setting.name) else value
    return changed


def _store_location(settings: Settings) -> str:
    """Where originals live: ``s3://bucket/prefix`` or ``filesystem:<directory>``."""
    location = settings.blob_store
    if location.startswith("s3://"):
        return location
    return "filesystem:" + os.path.abspath(location or settings.data_dir)


def _catalog_location(settings: Settings, data_dir: str) -> str:
    """Where the catalog is: the SQLite file, or the PostgreSQL database (no password)."""
    if settings.database_url:
        from webapp.catalog.postgres import describe

        return "postgresql:" + describe(settings.database_url)
    return "sqlite:" + os.path.join(data_dir, "catalog.db")


def startup_line(settings: Settings, *, bind: str, workers: int, threads: int) -> str:
    """The start-up line of ``cropstack serve`` (JSON, one line)."""
    data_dir = os.path.abspath(settings.data_dir)
    line = {
        "event": "start",
        "bind": bind,
        "data_dir": data_dir,
        "catalog": _catalog_location(settings, data_dir),
        "blob_store": _store_location(settings),
        "workers": workers,
        "threads": threads,
        "signup": "on" if settings.signup else "off",
        "non_default_settings": non_default(settings),
        "pid": os.getpid(),
    }
    return json.dumps(line, default=str, separators=(",", ":"))


def prepare_metrics_dir(data_dir: str | Path) -> Path:
    """Create (or empty) ``<data_dir>/metrics`` for the workers' metric files; return it.

    Emptied at each start: counters begin at zero with the server, as Prometheus expects
    of a restarted target. A private temporary directory when the data directory is
    read-only. Imports nothing of prometheus_client: the caller must set
    ``PROMETHEUS_MULTIPROC_DIR`` before that is first imported (it reads it once).
    """
    path = Path(data_dir) / "metrics"
    try:
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(mode=0o700)
    except OSError:
        path = Path(tempfile.mkdtemp(prefix="cropstack-metrics-"))
    return path
