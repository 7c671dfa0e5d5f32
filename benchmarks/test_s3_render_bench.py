"""W1 through a node reading originals from S3 beside a node reading them from local disk.

Run: ``.venv/bin/python -m pytest benchmarks/test_s3_render_bench.py -s`` (part of
``./dev bench``).

W1 (docs/performance.md): 30 distinct ~500x500 fill + crop renders, cropped around a
subject area, of one 24 MP JPEG (the source of test_render_bench.py), each a URL no cache
has seen. Two real ``cropstack serve`` nodes run at once, each with one worker and the
render cache off, so every request reads the 6.3 MB original from its store:

- ``local``: originals in the data directory (the default);
- ``s3``: originals on an S3-compatible server (moto_server on loopback, the tests'
  server), ``CROPSTACK_BLOB_STORE=s3://...``.

Each round sends the 30 URLs to one node then the other (the order alternates between
rounds, so drift on a busy machine hits both alike), one request at a time. Prints the
mean per render for each node, their ratio, and how long a bare S3 GET of the original
takes (boto3, same server), which is what the ratio is made of. Both nodes must answer
the same bytes for every URL.
"""

from __future__ import annotations

import os
import statistics
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.test_render_bench import SUBJECT, make_source
from tests.realserver import running_server
from tests.s3server import BUCKET, moto_server

ROUNDS = 3
RENDERS = 30


def w1_paths(image_hash: str) -> list[str]:
    """The 30 W1 render paths: fill + crop to 485..514 x 500 around the subject area."""
    paths = []
    for i in range(RENDERS):
        width, height = 485 + i, 500
        paths.append(
            f"/bench/dynamic/resize-width-{width}-height-{height}-mode-fill--"
            f"crop-width-{width}-height-{height}/{image_hash}.jpg"
        )
    return paths


def prepare(data_dir: Path, blob_store: str, data: bytes) -> str:
    """Create the account, upload ``data`` and set the subject area; the image hash."""
    import io
    import json

    from webapp import create_app

    app = create_app({"data_dir": str(data_dir), "signup": True, "blob_store": blob_store,
                      "database_url": ""})  # fmt: skip
    client = app.test_client()
    user = client.post("/users", json={"email": "b@x.example", "organization": "bench"})
    headers = {"Api-Key": user.get_json()["api_key"]}
    uploaded = client.post("/sourceimages/bench", headers=headers,
                           data={"filedata": (io.BytesIO(data), "big.jpg")})  # fmt: skip
    image_hash = uploaded.get_json()["items"][0]["hash"]
    moved = client.put(f"/sourceimages/bench/{image_hash}/meta/dynamic/subject_area",
                       data=json.dumps(SUBJECT), headers=headers)  # fmt: skip
    app.extensions["cropstack.catalog"].close()
    return str(moved.get_json()["hash"])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto_server with the tests' bucket; the AWS variables point at it meanwhile."""
    import boto3

    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log) as endpoint, pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "bench")
        env.setenv("AWS_SECRET_ACCESS_KEY", "bench")
        env.setenv("AWS_REGION", "us-east-1")
        boto3.session.Session().client("s3").create_bucket(Bucket=BUCKET)
        yield f"s3://{BUCKET}/w1"


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        assert response.status == 200
        return response.read()


def test_w1_on_s3_beside_local_disk(
    s3: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_source()
    local_dir, s3_dir = tmp_path / "local", tmp_path / "s3"
    local_dir.mkdir()
    s3_dir.mkdir()
    local_hash = prepare(local_dir / "data", "", data)
    s3_hash = prepare(s3_dir / "data", s3, data)
    assert local_hash == s3_hash  # same bytes, same metadata: the same image
    paths = w1_paths(local_hash)
    env = {"CROPSTACK_RENDER_CACHE": "false", "CROPSTACK_ACCESS_LOG": "false"}
    clean = {k: v for k, v in os.environ.items() if k.startswith("CROPSTACK_")}
    for name in clean:  # the nodes' settings are exactly these
        os.environ.pop(name)
    try:
        with (
            running_server(local_dir, env={**env, "CROPSTACK_BLOB_STORE": ""},
                           workers=1) as local,
            running_server(s3_dir, env={**env, "CROPSTACK_BLOB_STORE": s3}, workers=1) as remote,
        ):  # fmt: skip
            nodes = {"local": local, "s3": remote}
            bodies: dict[str, dict[str, bytes]] = {"local": {}, "s3": {}}
            for base in nodes.values():  # warm-up: render processes started
                _fetch(base + paths[0].replace("485", "484"))
            times: dict[str, list[float]] = {"local": [], "s3": []}
            for round_ in range(ROUNDS):
                order = ["local", "s3"] if round_ % 2 == 0 else ["s3", "local"]
                for name in order:
                    for path in paths:
                        started = time.perf_counter()
                        body = _fetch(nodes[name] + path)
                        times[name].append(time.perf_counter() - started)
                        bodies[name][path] = body
            assert bodies["local"] == bodies["s3"]
    finally:
        os.environ.update(clean)
    get_ms = _get_ms(s3, s3_dir / "data", data)
    local_get_ms = _get_ms("", local_dir / "data", data)
    local_ms = statistics.mean(times["local"]) * 1000
    s3_ms = statistics.mean(times["s3"]) * 1000
    with capsys.disabled():
        print(f"\nW1: {RENDERS} distinct ~500x500 subject-area fill crops of a 24 MP JPEG "
              f"({len(data) / 1e6:.1f} MB), {ROUNDS} rounds, render cache off, one request "
              "at a time")  # fmt: skip
        for name, ms in (("local", local_ms), ("s3", s3_ms)):
            values = sorted(times[name])
            p95 = values[int(len(values) * 0.95) - 1] * 1000
            print(f"{name:>6}: mean {ms:6.1f} ms  median {statistics.median(values) * 1000:6.1f}"
                  f" ms  p95 {p95:6.1f} ms  ({len(values)} renders)")  # fmt: skip
        print(f"s3/local: x{s3_ms / local_ms:.2f}; reading the original alone (BlobStore.get, "
              f"SHA-256 included): s3 {get_ms:.1f} ms, local {local_get_ms:.1f} ms")  # fmt: skip


def _get_ms(location: str, data_dir: Path, data: bytes) -> float:
    """Mean time of the store's ``get`` of the original (read + SHA-256), 10 reads."""
    import hashlib

    from webapp.blobs import open_store

    store = open_store(location, data_dir)
    key = hashlib.sha256(data).hexdigest()
    started = time.perf_counter()
    for _ in range(10):
        assert len(store.get(key)) == len(data)
    return (time.perf_counter() - started) / 10 * 1000

