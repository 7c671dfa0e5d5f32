"""Upload of a 24 MP JPEG against the floor of hashing, writing and fsyncing its bytes.

Run: ``.venv/bin/python -m pytest benchmarks/test_upload_bench.py -s`` (about a minute).

- ``floor``: in this process, SHA-256 of the file, written to a new file in the server's
  data directory, ``fsync`` of the file and of its directory: what storing an original
  durably cannot avoid.
- ``upload``: ``POST /sourceimages/{org}`` (multipart) of the same bytes to a real
  ``cropstack serve --workers 2``, one client: parsing, hashing, the decode check (JPEG at
  1/8 scale with ``fail_on=error``, in a render process), the blob write and fsync, the
  catalog row.

- ``check``: in this process, the server's check of the same bytes alone
  (``engine.probe.probe``: every entropy-coded byte decoded, at 1/8 scale, with
  ``fail_on=error``). The upload cannot answer before it: an upload is at least this
  plus what follows it (the link into place, the catalog row).

``UPLOAD_COUNT`` distinct files (default 8) per round, interleaved for ``UPLOAD_ROUNDS``
rounds (default 3), best round counts. The issue's goal: upload <= 2.5x the floor.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from benchmarks.test_load import send, sign_up
from benchmarks.test_w1_bench import sources
from engine.probe import configure, probe
from tests.realserver import running_server

COUNT = int(os.environ.get("UPLOAD_COUNT", "8"))
ROUNDS = int(os.environ.get("UPLOAD_ROUNDS", "3"))


def floor(data: bytes, directory: Path, name: str) -> None:
    """Hash ``data``, write it to ``directory/name`` and make it durable."""
    digest = hashlib.sha256(data).hexdigest()
    path = directory / f"{name}.{digest[:8]}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def test_upload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import benchmarks.test_w1_bench as w1

    w1.COUNT = COUNT * ROUNDS + 1
    configure(concurrency=1)  # as in a render process
    files = [data for data, *_ in sources()]
    with running_server(tmp_path, env={"CROPSTACK_SIGNUP": "true"}) as base:
        port = int(base.rsplit(":", 1)[1])
        tenant = sign_up(port, "up")
        floor_dir = tmp_path / "data" / "floor"
        floor_dir.mkdir()
        status, answer, _ = send(port, tenant.upload("warm.jpg", files.pop()))
        assert status == 200, answer
        best = {"floor": float("inf"), "check": float("inf"), "upload": float("inf")}
        for r in range(ROUNDS):
            batch = files[r * COUNT : (r + 1) * COUNT]
            start = time.perf_counter()
            for i, data in enumerate(batch):
                floor(data, floor_dir, f"{r}-{i}")
            best["floor"] = min(best["floor"], (time.perf_counter() - start) / COUNT)
            start = time.perf_counter()
            for data in batch:
                probe(data)
            best["check"] = min(best["check"], (time.perf_counter() - start) / COUNT)
            start = time.perf_counter()
            for i, data in enumerate(batch):
                status, answer, _ = send(port, tenant.upload(f"{r}-{i}.jpg", data))
                assert status == 200, answer
            best["upload"] = min(best["upload"], (time.perf_counter() - start) / COUNT)
    with capsys.disabled():
        size = sum(len(f) for f in files) / len(files) / 1e6
        print(f"\nupload of a 6000x4000 JPEG ({size:.1f} MB), best of {ROUNDS} rounds")
        for name, mean in best.items():
            print(f"{name:>8}: {mean * 1000:6.1f} ms   x{mean / best['floor']:.2f} of floor")
        print(json.dumps({k: round(v * 1000, 2) for k, v in best.items()}))
