"""Several nodes are one service: two real ``cropstack serve`` processes, each with its own
data directory (its own render cache), sharing one PostgreSQL catalog (tests/postgres.py)
and one S3 prefix (moto's server, tests/s3server.py), all on loopback.

What a user of two nodes behind a load balancer checks, request by request, with the
second request always going to the *other* node right after the first one answered:

* an upload on one node is found and renders (pixels) on the other;
* a metadata change — user metadata (read by a stack expression), dynamic metadata (a new
  hash, and ``keepHash`` under the same hash), a stack overwrite — is seen by the other
  node's next API answer and render, also when that node had cached the old render;
* a delete is a 404 on both nodes (API and render URLs), and a restore brings it back;
* the same file uploaded to both nodes at once ends as one image;
* purges (``DELETE /stacks/{org}/{stack}/cache``, ``…/{hash}/cache``, ``*``) on one node
  make the other stop answering its cached copy: a new ETag, no 304 for the old one, a
  cache miss in its metrics;
* a JWT made on one node authenticates on the other, and a URL signed with a signing key
  made on one node verifies on the other;
* ``cropstack gc`` on one node while the other uploads removes only the orphans, and
  every uploaded image still renders.

Start-up without the database or the store, and /healthz when either goes away, are
tested in test_catalog_server.py and test_s3_server.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyvips

from tests.engine.conftest import decode, red_centre, red_mask
from tests.postgres import PostgresForTests
from tests.realserver import REPO, running_server
from tests.s3server import BUCKET
from tests.webapp.test_s3_server import _objects
from webapp.signing import signature

pytestmark = pytest.mark.server

GREY, RED, BLUE = (128, 128, 128), (230, 20, 20), (20, 20, 230)


@dataclass
class Answer:
    """One HTTP answer: status, headers, body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type") == "application/json", (self.status, self.body)
        return json.loads(self.body)

    def error(self, status: int) -> str:
        """The message of a JSON error answer with ``status``."""
        assert self.status == status, (self.status, self.body[:300])
        error = self.json()["error"]
        assert error["code"] == status
        return str(error["message"])


def send(base: str, method: str, path: str, *, body: Any = None,
         headers: dict[str, str] | None = None) -> Answer:  # fmt: skip
    """One request over real HTTP (``body``: bytes as they are, else JSON)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw, got = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), exc.headers
    return Answer(status, {k.lower(): v for k, v in got.items()}, raw)


def image_bytes(width: int, height: int, squares: list[tuple[int, int, int, tuple]]) -> bytes:
    """A grey PNG with coloured squares ``(x, y, side, colour)``."""
    pixels = np.full((height, width, 3), GREY, dtype=np.uint8)
    for x, y, side, colour in squares:
        pixels[y : y + side, x : x + side] = colour
    return bytes(pyvips.Image.new_from_array(pixels, interpretation="srgb").pngsave_buffer())


def multipart(data: bytes, name: str = "upload.png") -> tuple[bytes, str]:
    boundary = "cropstack-nodes-test"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="filedata"; '
            f'filename="{name}"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def rgb(pixels: np.ndarray) -> np.ndarray:
    """Decoded pixels as (height, width, 3): grey images repeated on three channels."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[2] < 3:
        pixels = np.repeat(pixels[..., :1], 3, axis=2)
    return pixels[..., :3]


def colour_share(pixels: np.ndarray, colour: tuple[int, int, int]) -> float:
    """The fraction of pixels within 40 of ``colour`` on every channel."""
    near = np.all(np.abs(pixels[..., :3].astype(int) - np.array(colour)) < 40, axis=-1)
    return float(near.mean())


@dataclass
class Node:
    """One ``cropstack serve`` of the cluster."""

    name: str
    base: str
    data_dir: Path

    def metric(self, series: str) -> float:
        """The value of one Prometheus series (0 when not yet reported)."""
        text = send(self.base, "GET", "/metrics").body.decode()
        found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def cache(self) -> tuple[float, float]:
        """(hits, misses) of its render cache so far."""
        name = "cropstack_render_cache_requests_total"
        return self.metric(f'{name}{{result="hit"}}'), self.metric(f'{name}{{result="miss"}}')


@dataclass
class Org:
    """An organization and an admin API key, used on any node."""

    name: str
    key: str
    user_id: str
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.headers = {"Api-Key": self.key}

    def call(self, node: Node, method: str, path: str, body: Any = None) -> Answer:
        return send(node.base, method, path.replace("{org}", self.name), body=body,
                    headers=self.headers)  # fmt: skip

    def upload(self, node: Node, data: bytes) -> dict[str, Any]:
        body, content_type = multipart(data)
        answer = send(node.base, "POST", f"/sourceimages/{self.name}", body=body,
                      headers={**self.headers, "Content-Type": content_type})  # fmt: skip
        assert answer.status == 200, answer.body[:300]
        return answer.json()["items"][0]

    def put_stack(self, node: Node, name: str, operations: list, **options: Any) -> None:
        query = "?overwrite=true" if options.pop("overwrite", False) else ""
        body = {"operations": operations, "options": options}
        answer = self.call(node, "PUT", f"/stacks/{{org}}/{name}{query}", body)
        assert answer.status in (200, 201), answer.body


@dataclass
class Cluster:
    """Two nodes on one catalog and one store."""

    a: Node
    b: Node
    database: str
    store: str
    env: dict[str, str]

    def new_org(self, name: str) -> Org:
        """A fresh organization (signed up on node A)."""
        answer = send(self.a.base, "POST", "/users",
                      body={"email": f"admin@{name}.example", "organization": name})  # fmt: skip
        assert answer.status == 200, answer.body
        user = answer.json()
        return Org(name, user["api_key"], user["id"])


@pytest.fixture(scope="module")
def cluster(
    postgres: PostgresForTests, s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    database = postgres.new_database()
    store = f"s3://{BUCKET}/nodes-{uuid.uuid4().hex[:12]}"
    env = {"CROPSTACK_DATABASE_URL": database, "CROPSTACK_BLOB_STORE": store}
    root = tmp_path_factory.mktemp("nodes")
    for name in ("a", "b"):
        (root / name).mkdir()
    try:
        with (
            running_server(root / "a", "--signup", env=env, workers=1) as a,
            running_server(root / "b", env=env, workers=1) as b,
        ):
            yield Cluster(
                Node("a", a, root / "a" / "data"), Node("b", b, root / "b" / "data"),
                database, store, env,
            )  # fmt: skip
    finally:
        postgres.drop(database)


def render(org: Org, node: Node, path: str, headers: dict[str, str] | None = None) -> Answer:
    """A render URL of ``org`` on ``node`` (``path`` after the organization)."""
    return send(node.base, "GET", f"/{org.name}/{path}", headers=headers)


def pixels(answer: Answer) -> np.ndarray:
    assert answer.status == 200, answer.body[:300]
    return decode(answer.body)


# -- uploads and renders ----------------------------------------------------------------------


def test_an_upload_on_one_node_renders_on_the_other(cluster: Cluster) -> None:
    org = cluster.new_org("upl")
    a, b = cluster.a, cluster.b
    made = org.upload(a, image_bytes(400, 300, [(40, 40, 60, RED)]))
    found = org.call(b, "GET", f"/sourceimages/{{org}}/{made['hash']}")
    assert found.status == 200 and found.json()["hash"] == made["hash"]
    out = pixels(render(org, b, f"dynamic/resize-width-200/{made['hash']}.png"))
    assert out.shape[:2] == (150, 200)
    cx, cy = red_centre(out)
    assert abs(cx - 35) < 2 and abs(cy - 35) < 2  # the square's centre (70, 70), halved
    assert red_mask(out).sum() == pytest.approx(30 * 30, rel=0.15)
    # and the other way round: B's upload renders on A
    other = org.upload(b, image_bytes(200, 100, [(150, 50, 20, BLUE)]))
    out = pixels(render(org, a, f"dynamic/noop/{other['hash']}.png"))
    assert out.shape[:2] == (100, 200) and colour_share(out[50:70, 150:170], BLUE) == 1.0


# -- metadata and stacks ----------------------------------------------------------------------


def test_user_metadata_changed_on_one_node_is_seen_by_the_other(cluster: Cluster) -> None:
    org = cluster.new_org("umeta")
    a, b = cluster.a, cluster.b
    image = org.upload(a, image_bytes(200, 100, [(0, 0, 10, RED)]))["hash"]
    resize = {"name": "resize", "expressions": {"width": "image.meta_user.w ?? 7"}}
    org.put_stack(a, "metaw", [resize])
    assert pixels(render(org, b, f"metaw/{image}.png")).shape[1] == 7
    assert pixels(render(org, b, f"metaw/{image}.png")).shape[1] == 7  # cached on B now
    change = org.call(a, "PUT", f"/sourceimages/{{org}}/{image}/meta/user", {"int:w": 20})
    assert change.status == 204, change.body
    seen = org.call(b, "GET", f"/sourceimages/{{org}}/{image}/meta/user")
    assert seen.status == 200 and seen.json() == {"int:w": 20}
    found = org.call(b, "GET", "/sourceimages/{org}?user:int:w=20")
    assert [i["hash"] for i in found.json()["items"]] == [image]
    assert pixels(render(org, b, f"metaw/{image}.png")).shape[1] == 20
    # and back, changed on B, seen on A
    assert org.call(b, "DELETE", f"/sourceimages/{{org}}/{image}/meta/user").status == 204
    assert pixels(render(org, a, f"metaw/{image}.png")).shape[1] == 7
    assert org.call(a, "GET", "/sourceimages/{org}?user:int:w=20").json()["items"] == []


def test_dynamic_metadata_changed_on_one_node_is_seen_by_the_other(cluster: Cluster) -> None:
    """A crop follows the subject area: set on A (a new hash), then moved on A under the
    same hash (``keepHash``) after B cached the render: B's next render follows it."""
    org = cluster.new_org("dmeta")
    a, b = cluster.a, cluster.b
    source = image_bytes(400, 300, [(300, 200, 40, RED), (20, 20, 40, BLUE)])
    plain = org.upload(a, source)["hash"]
    crop = "dynamic/crop-width-60-height-60"
    out = pixels(render(org, b, f"{crop}/{plain}.png"))
    assert colour_share(out, GREY) == 1.0  # the centre of the image: neither square
    red_area = {"x": 300, "y": 200, "width": 40, "height": 40}
    made = org.call(a, "PUT", f"/sourceimages/{{org}}/{plain}/meta/dynamic/subject_area",
                    red_area)  # fmt: skip
    assert made.status == 201, made.body
    subject = made.json()["hash"]
    assert subject != plain
    seen = org.call(b, "GET", f"/sourceimages/{{org}}/{subject}")
    assert seen.status == 200 and seen.json()["dynamic_metadata"]["subject_area"]["x"] == 300
    for _ in range(2):  # rendered, then answered from B's cache
        out = pixels(render(org, b, f"{crop}/{subject}.png"))
        assert colour_share(out[12:48, 12:48], RED) == 1.0
    blue_area = {"x": 20, "y": 20, "width": 40, "height": 40}
    moved = org.call(
        a, "PUT", f"/sourceimages/{{org}}/{subject}/meta/dynamic/subject_area?keepHash=true",
        blue_area,
    )  # fmt: skip
    assert moved.status == 200 and moved.json()["hash"] == subject, moved.body
    out = pixels(render(org, b, f"{crop}/{subject}.png"))
    assert colour_share(out[12:48, 12:48], BLUE) == 1.0 and colour_share(out, RED) == 0.0


def test_a_stack_changed_on_one_node_renders_changed_on_the_other(cluster: Cluster) -> None:
    org = cluster.new_org("stk")
    a, b = cluster.a, cluster.b
    image = org.upload(a, image_bytes(200, 100, [(0, 0, 100, RED)]))["hash"]
    org.put_stack(a, "look", [{"name": "resize", "options": {"width": 50}}])
    for _ in range(2):  # rendered, then from B's cache
        out = pixels(render(org, b, f"look/{image}.png"))
        assert out.shape[:2] == (25, 50) and colour_share(out[:, :25], RED) == 1.0
    new = [{"name": "resize", "options": {"width": 40}}, {"name": "grayscale"}]
    org.put_stack(a, "look", new, overwrite=True)
    shown = org.call(b, "GET", "/stacks/{org}/look").json()
    assert [o["name"] for o in shown["stack_operations"]] == ["resize", "grayscale"]
    out = rgb(pixels(render(org, b, f"look/{image}.png")))
    assert out.shape[:2] == (20, 40)
    spread = out.max(axis=-1).astype(int) - out.min(axis=-1)
    assert spread.max() <= 2 and not red_mask(out).any()  # grey now, not red
    # deleted on A: B's next render of it is a 404
    assert org.call(a, "DELETE", "/stacks/{org}/look").status == 204
    render(org, b, f"look/{image}.png").error(404)
    org.call(b, "GET", "/stacks/{org}/look").error(404)


def test_a_delete_on_one_node_is_a_404_on_every_node(cluster: Cluster) -> None:
    org = cluster.new_org("del")
    a, b = cluster.a, cluster.b
    image = org.upload(a, image_bytes(60, 40, [(0, 0, 20, RED)]))["hash"]
    url = f"dynamic/noop/{image}.png"
    assert render(org, b, url).status == 200  # cached on B
    assert org.call(a, "DELETE", f"/sourceimages/{{org}}/{image}").status == 204
    for node in (a, b):
        org.call(node, "GET", f"/sourceimages/{{org}}/{image}").error(404)
        render(org, node, url).error(404)
        assert org.call(node, "GET", "/sourceimages/{org}").json()["items"] == []
        org.call(node, "DELETE", f"/sourceimages/{{org}}/{image}").error(404)
    restored = org.call(b, "POST", f"/sourceimages/{{org}}/{image}/restore")
    assert restored.status == 200, restored.body
    assert org.call(a, "GET", f"/sourceimages/{{org}}/{image}").status == 200
    assert render(org, a, url).status == 200


def test_one_file_uploaded_to_both_nodes_at_once_is_one_image(cluster: Cluster) -> None:
    org = cluster.new_org("same")
    a, b = cluster.a, cluster.b
    data = image_bytes(300, 200, [(100, 50, 80, BLUE)])
    start = threading.Barrier(8)

    def upload(node: Node) -> str:
        start.wait(30)
        for _attempt in range(10):
            body, content_type = multipart(data)
            answer = send(node.base, "POST", f"/sourceimages/{org.name}", body=body,
                          headers={**org.headers, "Content-Type": content_type})  # fmt: skip
            if answer.status != 503:  # busy: retry, as clients do
                assert answer.status == 200, answer.body[:300]
                return str(answer.json()["items"][0]["hash"])
            time.sleep(0.5)
        raise AssertionError("still 503 after 10 attempts")

    with ThreadPoolExecutor(max_workers=8) as pool:
        hashes = list(pool.map(upload, [a, b] * 4))
    assert len(set(hashes)) == 1
    for node in (a, b):
        listed = org.call(node, "GET", "/sourceimages/{org}").json()
        assert listed["total"] == 1 and [i["hash"] for i in listed["items"]] == hashes[:1]
    assert hashlib.sha256(data).hexdigest() in _objects(cluster.store)


# -- purges -----------------------------------------------------------------------------------


def test_purges_on_one_node_reach_the_other(cluster: Cluster) -> None:
    org = cluster.new_org("purge")
    a, b = cluster.a, cluster.b
    image = org.upload(a, image_bytes(120, 80, [(10, 10, 30, RED)]))["hash"]
    org.put_stack(a, "thumb", [{"name": "resize", "options": {"width": 40}}])
    org.put_stack(a, "other", [{"name": "resize", "options": {"width": 30}}])
    thumb, dynamic = f"thumb/{image}.png", f"dynamic/resize-width-20/{image}.png"

    def cached_on_b(url: str) -> str:
        """Render on B until B answers from its cache; the ETag."""
        first = render(org, b, url)
        assert first.status == 200
        hits, misses = b.cache()
        again = render(org, b, url)
        assert again.headers["etag"] == first.headers["etag"] and again.body == first.body
        assert b.cache() == (hits + 1, misses)
        etag = first.headers["etag"]
        assert render(org, b, url, {"If-None-Match": etag}).status == 304
        return etag

    def forgotten_on_b(url: str, old_etag: str) -> str:
        """B no longer answers its cached copy: the old ETag is not matched, the render
        is a cache miss, and the bytes are the same render. The new ETag."""
        hits, misses = b.cache()
        fresh = render(org, b, url, {"If-None-Match": old_etag})
        assert fresh.status == 200 and fresh.headers["etag"] != old_etag
        assert b.cache() == (hits, misses + 1)
        return fresh.headers["etag"]

    tags = {url: cached_on_b(url) for url in (thumb, dynamic)}
    # a stack purge on A: B forgets that stack's renders, not the other ones
    assert org.call(a, "DELETE", "/stacks/{org}/thumb/cache").json() == {"status": "ok"}
    tags[thumb] = forgotten_on_b(thumb, tags[thumb])
    assert render(org, b, dynamic, {"If-None-Match": tags[dynamic]}).status == 304
    # a purge of another stack changes nothing for this one
    assert org.call(a, "DELETE", "/stacks/{org}/other/cache").status == 200
    assert render(org, b, thumb, {"If-None-Match": tags[thumb]}).status == 304
    # an image purge on A: every render of the image, through any stack
    assert org.call(a, "DELETE", f"/sourceimages/{{org}}/{image}/cache").status == 200
    tags = {url: forgotten_on_b(url, tag) for url, tag in tags.items()}
    # every stack (dynamic included) on A
    assert org.call(a, "DELETE", "/stacks/{org}/*/cache").status == 200
    tags = {url: forgotten_on_b(url, tag) for url, tag in tags.items()}
    # and A itself agrees with B on what is current
    for url, tag in tags.items():
        assert render(org, a, url, {"If-None-Match": tag}).status == 304
    # the dynamic stack alone, purged on B, reaches A too
    assert org.call(b, "DELETE", "/stacks/{org}/dynamic/cache").status == 200
    assert render(org, a, dynamic, {"If-None-Match": tags[dynamic]}).status == 200
    assert render(org, a, thumb, {"If-None-Match": tags[thumb]}).status == 304


# -- tokens and signed URLs ----------------------------------------------------------------------


def test_tokens_and_signed_urls_verify_on_every_node(cluster: Cluster) -> None:
    org = cluster.new_org("tok")
    a, b = cluster.a, cluster.b
    made = org.call(a, "GET", "/user/apikeys/token")
    assert made.status == 200, made.body
    token = made.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    for node in (b, a):
        user = send(node.base, "GET", "/user", headers=bearer)
        assert user.status == 200 and user.json()["user_id"] == org.user_id, user.body
    renewed = send(b.base, "GET", "/user/apikeys/token", headers=bearer)
    assert renewed.status == 200
    again = {"Authorization": f"Bearer {renewed.json()['token']}"}
    assert send(a.base, "GET", "/user", headers=again).status == 200
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    send(b.base, "GET", "/user", headers={"Authorization": f"Bearer {forged}"}).error(401)

    # A URL signed with a signing key added on A verifies on B; the old key still works
    # until it is dropped on B, then on neither node.
    image = org.upload(a, image_bytes(60, 40, [(0, 0, 20, RED)]))["hash"]
    org.put_stack(a, "secret", [{"name": "noop"}], protected=True)
    added = org.call(a, "POST", "/organizations/{org}/signing_keys")
    assert added.status in (200, 201), added.body
    keys = [k["key"] for k in added.json()["signing_keys"]]
    assert len(keys) == 2
    path = f"/{org.name}/secret/{image}.png"
    render(org, b, f"secret/{image}.png").error(403)
    for key in keys:
        assert send(b.base, "GET", f"{path}?sig={signature(path, key)}").status == 200
    dropped = org.call(b, "DELETE", "/organizations/{org}/signing_keys")
    assert dropped.status == 200, dropped.body
    left = [k["key"] for k in dropped.json()["signing_keys"]]
    assert len(left) == 1
    gone = next(k for k in keys if k not in left)
    for node in (a, b):
        send(node.base, "GET", f"{path}?sig={signature(path, gone)}").error(403)
        assert send(node.base, "GET", f"{path}?sig={signature(path, left[0])}").status == 200


# -- garbage collection -----------------------------------------------------------------------


def test_gc_on_one_node_while_the_other_uploads_loses_nothing(cluster: Cluster) -> None:
    """Orphans (originals whose upload died before its row) older than the grace period
    are removed by ``cropstack gc`` on A while B keeps uploading new images and copies of
    images it has; afterwards every image renders on both nodes and only the orphans are
    gone from the store."""
    from webapp.blobs import open_store

    org = cluster.new_org("gc")
    a, b = cluster.a, cluster.b
    grace_s = 4.0
    store = open_store(cluster.store, str(a.data_dir))
    orphans = {store.put(image_bytes(50, 50, [(n, n, 10, RED)])).key for n in range(1, 6)}
    kept = org.upload(b, image_bytes(80, 60, [(5, 5, 20, BLUE)]))
    time.sleep(grace_s + 1.5)  # the orphans (and kept's original) are past the grace now

    uploaded: list[str] = [kept["hash"]]
    done = threading.Event()
    failures: list[BaseException] = []

    def keep_uploading() -> None:
        try:
            for n in range(12):
                uploaded.append(org.upload(b, image_bytes(64, 48, [(n, 2, 8, BLUE)]))["hash"])
                # and the bytes of an image the catalog has (an old original) again
                again = org.upload(b, image_bytes(80, 60, [(5, 5, 20, BLUE)]))
                assert again["hash"] == kept["hash"]
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            done.set()

    env = {**os.environ, **cluster.env}
    argv = [sys.executable, "-m", "webapp.cli", "gc", "--data-dir", str(a.data_dir),
            "--grace", str(grace_s)]  # fmt: skip
    removed = runs = 0
    uploader = threading.Thread(target=keep_uploading)
    uploader.start()
    try:
        while not done.is_set() or runs < 2:
            result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                                    timeout=120)  # fmt: skip
            assert result.returncode == 0, result.stderr
            runs += 1
            removed += int(re.search(r"removed (\d+) blobs", result.stdout).group(1))
    finally:
        uploader.join(120)
    assert not failures, failures
    assert removed == len(orphans)  # the orphans, nothing an upload wrote
    listed = _objects(cluster.store)
    assert not orphans & listed
    assert len(set(uploaded)) == 13
    for i, image in enumerate(sorted(set(uploaded))):
        node = (a, b)[i % 2]
        out = pixels(render(org, node, f"dynamic/noop/{image}.png"))
        assert colour_share(out, BLUE) > 0


def test_an_upload_of_bytes_gc_is_deleting_keeps_its_original(cluster: Cluster) -> None:
    """The race a collection has with an upload of the very bytes it is deleting: the
    store is slow to delete (the DELETE reaches it 3 s late, through a proxy), and B
    uploads those bytes after A's collection sent its DELETE and before the store ran it.
    The upload waits for the delete and writes its original again: it renders on both
    nodes, and its original is in the store."""
    from tests.s3server import FaultProxy
    from webapp.blobs import open_store

    org = cluster.new_org("race")
    a, b = cluster.a, cluster.b
    data = image_bytes(70, 50, [(30, 20, 16, BLUE)])
    store = open_store(cluster.store, str(a.data_dir))
    orphan = store.put(data).key  # an upload that died before its row, long ago
    time.sleep(2.5)
    with FaultProxy(os.environ["AWS_ENDPOINT_URL"]) as proxy:
        proxy.delete_delay_s = 3.0
        env = {**os.environ, **cluster.env, "AWS_ENDPOINT_URL": proxy.endpoint}
        argv = [sys.executable, "-m", "webapp.cli", "gc", "--data-dir", str(a.data_dir),
                "--grace", "1"]  # fmt: skip
        gc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert proxy.delete_held.wait(60), "the collection sent no DELETE"
            made = org.upload(b, data)  # its PUT reaches the store before the DELETE does
            out, err = gc.communicate(timeout=120)
        finally:
            if gc.poll() is None:
                gc.kill()
                gc.wait()
    assert gc.returncode == 0, err
    assert "removed 1 blobs" in out  # the orphan was deleted, and written again since
    assert orphan in _objects(cluster.store)
    for node in (a, b):
        out_pixels = pixels(render(org, node, f"dynamic/noop/{made['hash']}.png"))
        assert colour_share(out_pixels[20:36, 30:46], BLUE) == 1.0
    download = org.call(a, "GET", f"/sourceimages/{{org}}/{made['hash']}/download")
    assert download.status == 200 and download.body == data
