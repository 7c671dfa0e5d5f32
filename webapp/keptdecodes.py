"""Where a server's kept decodes live (engine/decoded.py), and their removal.

The directory is shared by every render process of every web worker of one server (one
data directory): on tmpfs (``/dev/shm``) when the machine has one, since its pages are
memory anyway and a kept decode is read by mapping it; else under the data directory.
``decoded_cache_dir`` names another parent directory (the server's own directory is
made inside it). ``cropstack serve`` removes it when it stops;
a directory in ``/dev/shm`` whose data directory no longer exists (a server killed, a
test's temporary data directory) is removed by the next server that starts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from webapp.settings import Settings

_SHM = Path("/dev/shm")
_PREFIX = "cropstack-kept-"
_OWNER = "datadir"  # a file in the directory: the data directory it belongs to


def directory_for(settings: Settings) -> str:
    """The kept-decode directory of the server of ``settings`` (not created)."""
    data = os.path.realpath(settings.data_dir)
    # Its own directory inside the parent: a server removes it when it stops.
    name = _PREFIX + hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    if settings.decoded_cache_dir:
        return os.path.join(settings.decoded_cache_dir, name)
    if _SHM.is_dir() and os.access(_SHM, os.W_OK):
        return str(_SHM / f"{_PREFIX}{os.getuid()}-{name[len(_PREFIX) :]}")
    return os.path.join(data, "kept-decodes")


def prepare(settings: Settings) -> str:
    """Create the directory (private to this user) and note its data directory; sweep
    orphaned ones. The directory, or "" when it cannot be made (nothing is kept then)."""
    where = directory_for(settings)
    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
        owner = os.path.join(where, _OWNER)
        if not os.path.exists(owner):
            Path(owner).write_text(os.path.realpath(settings.data_dir), encoding="utf-8")
    except OSError:
        return ""
    _sweep(keep=where)
    return where


def remove(settings: Settings) -> None:
    """Remove the server's kept decodes (when it stops: a kept decode is only a cache)."""
    shutil.rmtree(directory_for(settings), ignore_errors=True)


def _sweep(keep: str) -> None:
    """Remove this user's ``/dev/shm`` kept-decode directories whose data directory is
    gone: nothing can use them again, and tmpfs holds them in memory."""
    try:
        entries = list(os.scandir(_SHM))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(f"{_PREFIX}{os.getuid()}-") or entry.path == keep:
            continue
        try:
            data = Path(entry.path, _OWNER).read_text(encoding="utf-8")
        except OSError:
            continue  # being created, or not ours to judge
        if data and not os.path.isdir(data):
            shutil.rmtree(entry.path, ignore_errors=True)
