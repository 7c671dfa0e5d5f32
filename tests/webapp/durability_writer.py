"""A writer process for the durability tests (run as a script, not collected by pytest).

``python durability_writer.py DATA_DIR ORG_ID random`` uploads random small PNGs through
``webapp.ingest.ingest`` (the upload route's code path) until killed, printing "ready"
once initialised. ``… same N`` uploads one fixed image N times and exits 0.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from webapp.blobs import open_store  # noqa: E402
from webapp.catalog import open_backend  # noqa: E402
from webapp.ingest import Upload, ingest  # noqa: E402
from webapp.settings import load_settings  # noqa: E402


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def random_png(rng: random.Random) -> bytes:
    """A valid RGB PNG of random noise, 8-96 px square (uncompressible, up to ~28 KB)."""
    side = rng.randint(8, 96)
    raw = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw, 1))
        + _chunk(b"IEND", b"")
    )


def main() -> int:
    data_dir, org_id, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    settings = load_settings({"data_dir": data_dir})
    catalog = open_backend(settings).open()
    blobs = open_store(settings.blob_store, data_dir)
    rng = random.Random(os.getpid())
    if mode == "same":
        data = random_png(random.Random(1))
        for _ in range(int(sys.argv[4])):
            ingest(catalog, blobs, settings, org_id, [Upload(data=data, name="same.png")])
        return 0
    ingest(catalog, blobs, settings, org_id, [Upload(data=random_png(rng), name="warm.png")])
    print("ready", flush=True)
    while True:
        upload = Upload(data=random_png(rng), name="r.png")
        ingest(catalog, blobs, settings, org_id, [upload])


if __name__ == "__main__":
    sys.exit(main())
