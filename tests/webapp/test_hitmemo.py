"""Render-cache hits answered before Flask (webapp/hitmemo.py): the same answers as the
render route, and every catalog change or purge seen by the very next request, also when
another process (another gunicorn worker) made it."""

from __future__ import annotations

import json
import re

from flask.testing import FlaskClient

from tests.conftest import Account
from tests.engine.conftest import decode, png, scene
from tests.realserver import running_server
from tests.webapp.test_render import upload
from webapp import create_app
from webapp.signing import signature

_ROUTE_RUNS: dict[int, int] = {}  # id(app) -> times the render route's view ran


def _counting(client: FlaskClient) -> FlaskClient:
    """``client`` whose app counts the runs of the render route's view."""
    app = client.application
    view = app.view_functions["render.render"]
    _ROUTE_RUNS[id(app)] = 0

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        _ROUTE_RUNS[id(app)] += 1
        return view(*args, **kwargs)

    app.view_functions["render.render"] = counted
    return client


def _early(client: FlaskClient, method: str, url: str, **headers: str):  # noqa: ANN201
    """(the answer, whether it came from the map of recent render URLs: the route's view
    did not run for it)."""
    before = _ROUTE_RUNS[id(client.application)]
    response = client.open(url, method=method, headers=headers)
    return response, _ROUTE_RUNS[id(client.application)] == before


def _headers(response) -> dict[str, str]:  # noqa: ANN001
    return {k: v for k, v in response.headers.items() if k != "Date"}


def _two_workers(tmp_path) -> tuple[FlaskClient, FlaskClient, Account, str]:  # noqa: ANN001
    """Two apps on one data directory, as two gunicorn workers are; an admin (through
    the second) and one uploaded 400x300 PNG."""
    config = {"data_dir": str(tmp_path / "data")}
    first, second = (_counting(create_app(config).test_client()) for _ in range(2))
    account = Account(second, "acme", "admin@acme.example")
    image = upload(account, png(scene(400, 300, square=(320, 220, 40))))["hash"]
    return first, second, account, image


def test_a_repeated_render_is_answered_early_with_the_routes_headers_and_bytes(tmp_path):
    first, second, _, image = _two_workers(tmp_path)
    url = f"/acme/dynamic/resize-width-100/{image}.png"
    rendered, early = _early(first, "GET", url)
    assert rendered.status_code == 200 and not early
    again, early = _early(first, "GET", url)
    assert early
    assert again.status_code == 200
    assert again.data == rendered.data
    assert _headers(again) == _headers(rendered)
    head, early = _early(first, "HEAD", url)
    assert early and head.status_code == 200 and head.data == b""
    assert _headers(head) == _headers(rendered)
    # 304: as the route answers it (the second worker has not seen this URL yet)
    etag = rendered.headers["ETag"]
    by_route, routed = _early(second, "GET", url, **{"If-None-Match": etag})
    not_modified, early = _early(first, "GET", url, **{"If-None-Match": etag})
    assert routed is False and early
    assert not_modified.status_code == by_route.status_code == 304
    assert _headers(not_modified) == _headers(by_route)
    assert not_modified.data == by_route.data == b""
    # another Accept or query is another request: the route answers it first
    assert not _early(first, "GET", url, Accept="image/webp")[1]
    assert not _early(first, "GET", url + "?v=1")[1]
    assert not _early(first, "GET", url, Host="other.test")[1]


def test_a_304_of_the_route_is_remembered_as_the_200_would_be(tmp_path):
    """Revalidating clients (each request with ``If-None-Match``) are answered early
    again after a catalog commit emptied the map: the route's 304 is remembered too,
    and the 200 that follows is the route's, headers and bytes."""
    first, _, account, image = _two_workers(tmp_path)
    for width, (url, name) in enumerate((
        (f"/acme/dynamic/resize-width-100/{image}.png", None),
        (f"/acme/dynamic/resize-width-90/options-autoformat-true/{image}.png", "webp"),
        (f"/acme/dynamic/resize-width-80/options-content_disposition-attachment/{image}.png",
         "png"),
    ), start=10):  # fmt: skip
        accept = {"Accept": "image/webp"} if name == "webp" else {}
        rendered, early = _early(first, "GET", url, **accept)
        assert rendered.status_code == 200 and not early
        etag = rendered.headers["ETag"]
        body = {"operations": [{"name": "resize", "options": {"width": width}}]}
        made = account.request("PUT", "/stacks/acme/other?overwrite=true", data=json.dumps(body))
        assert made.status_code in (200, 201)  # a commit: the map is emptied
        routed, early = _early(first, "GET", url, **accept, **{"If-None-Match": etag})
        assert routed.status_code == 304 and not early
        again, early = _early(first, "GET", url, **accept, **{"If-None-Match": etag})
        assert early and again.status_code == 304 and _headers(again) == _headers(routed)
        full, early = _early(first, "GET", url, **accept)
        assert early and full.status_code == 200 and full.data == rendered.data
        assert sorted(_headers(full).items()) == sorted(_headers(rendered).items())
        if name == "webp":
            assert full.headers["Content-Type"] == "image/webp"
        if name == "png":
            assert full.headers["Content-Disposition"].endswith('.png"')


def test_a_stack_change_in_another_worker_is_seen_at_once(tmp_path):
    first, _, account, image = _two_workers(tmp_path)

    def put_stack(width: int) -> None:
        body = {"operations": [{"name": "resize", "options": {"width": width}}]}
        path = "/stacks/acme/thumb?overwrite=true"
        assert account.request("PUT", path, data=json.dumps(body)).status_code in (200, 201)

    put_stack(60)
    url = f"/acme/thumb/{image}.png"
    assert decode(first.get(url).data).shape[1] == 60
    assert _early(first, "GET", url)[1]
    put_stack(30)  # through the other worker
    changed, early = _early(first, "GET", url)
    assert not early
    assert decode(changed.data).shape[1] == 30


def test_a_delete_in_another_worker_is_seen_at_once(tmp_path):
    first, _, account, image = _two_workers(tmp_path)
    url = f"/acme/dynamic/resize-width-50/{image}.png"
    etag = first.get(url).headers["ETag"]
    assert _early(first, "GET", url)[1]
    assert _early(first, "GET", url, **{"If-None-Match": etag})[1]
    assert account.request("DELETE", f"/sourceimages/acme/{image}").status_code == 204
    assert first.get(url).status_code == 404
    assert first.get(url, headers={"If-None-Match": etag}).status_code == 404


def test_a_metadata_change_in_another_worker_is_seen_at_once(tmp_path):
    first, _, account, image = _two_workers(tmp_path)
    url = f"/acme/dynamic/resize-width-50/{image}.png"
    assert first.get(url).status_code == 200
    assert _early(first, "GET", url)[1]
    area = {"x": 0, "y": 0, "width": 10, "height": 10}
    moved = account.request(
        "PUT", f"/sourceimages/acme/{image}/meta/dynamic/subject_area", data=json.dumps(area)
    )
    assert moved.status_code == 201
    assert not _early(first, "GET", url)[1]


def test_a_purge_in_another_worker_is_seen_at_once(tmp_path):
    first, second, account, image = _two_workers(tmp_path)
    url = f"/acme/dynamic/resize-width-50/{image}.png"
    body = first.get(url).data
    assert _early(first, "GET", url)[1]
    purge = account.request("DELETE", f"/sourceimages/acme/{image}/cache")
    assert purge.get_json()["items"] == [f"/acme/dynamic/{image}.png"]
    after, early = _early(first, "GET", url)
    assert not early  # rendered again: the cached file was gone
    assert after.status_code == 200 and after.data == body
    cache_root = second.application.extensions["cropstack.render_cache"].root
    assert list(cache_root.rglob("*.png"))


def test_protected_renders_always_go_through_the_route(tmp_path):
    first, _, account, image = _two_workers(tmp_path)
    stack = {"operations": [{"name": "noop"}], "options": {"protected": True}}
    assert account.request("PUT", "/stacks/acme/secret", data=json.dumps(stack)).status_code == 201
    key = account.request("GET", "/organizations/acme").get_json()["signing_keys"][0]["key"]
    path = f"/acme/secret/{image}.png"
    signed = f"{path}?sig={signature(path, key)}"
    for _ in range(3):
        response, early = _early(first, "GET", signed)
        assert response.status_code == 200 and not early
    assert first.get(path + "?sig=0000000000000000").status_code == 403


def test_hits_answered_early_are_logged_and_do_not_recycle_the_worker(tmp_path):
    import urllib.request

    from benchmarks.test_load import send, sign_up, uploaded_hash

    with running_server(
        tmp_path, "--max-requests", "20", workers=1, env={"CROPSTACK_SIGNUP": "true"}
    ) as base:
        port = int(base.rsplit(":", 1)[1])
        tenant = sign_up(port, "memo")
        image = uploaded_hash(send(port, tenant.upload("a.png", png(scene(200, 100))))[1])
        url = f"{base}/memo/dynamic/resize-width-40/{image}.png"
        bodies = {urllib.request.urlopen(url).read() for _ in range(60)}
        assert len(bodies) == 1
    log = (tmp_path / "server.log").read_text()
    lines = [json.loads(x) for x in log.splitlines() if x.startswith('{"time"')]
    renders = [x for x in lines if x["route"] == "render"]
    assert len(renders) == 60
    assert {(x["status"], x["org"], x["bytes"]) for x in renders} == {(200, "memo", len(*bodies))}
    # one worker served all 60 (max-requests 20 would have recycled it twice)
    assert len({x["pid"] for x in renders}) == 1
    assert not re.search(r"Autorestarting worker", log)


def test_answers_given_early_count_as_deliveries_from_the_cache(tmp_path):
    from webapp.usagecounter import counter_of

    first, _, _, image = _two_workers(tmp_path)
    counter = counter_of(first.application)
    url = f"/acme/dynamic/resize-width-100/{image}.png"
    first.get(url)
    before = counter.pending()
    response, early = _early(first, "GET", url)
    assert early and counter.pending() == before + 1
    _, early = _early(first, "HEAD", url)  # HEAD and 304 deliver no image
    assert early and counter.pending() == before + 1
    _, early = _early(first, "GET", url, **{"If-None-Match": response.headers["ETag"]})
    assert early and counter.pending() == before + 1


def test_requests_with_long_headers_are_not_remembered(tmp_path):
    """The client chooses Host, path, query and Accept: past MAX_IDENTITY_BYTES a request
    is answered by the route every time, so 10,000 entries stay small."""
    from webapp.hitmemo import MAX_IDENTITY_BYTES

    first, _, _, image = _two_workers(tmp_path)
    url = f"/acme/dynamic/resize-width-40/{image}.png"
    long_accept = "image/png;q=0.9, " + "x/y;q=0.1, " * (MAX_IDENTITY_BYTES // 10)
    for _ in range(2):
        answer, early = _early(first, "GET", url, Accept=long_accept)
        assert answer.status_code == 200 and not early
    assert _early(first, "GET", url)[1] is False  # the short form: first time, routed
    assert _early(first, "GET", url)[1] is True  # then remembered


def test_a_commit_changes_the_version_every_request_thread_reads(tmp_path):
    """Each thread reads ``data_version`` on its own connection (no shared lock); after a
    commit by any connection, no thread is handed a number given out before it, whether
    that thread read before the commit or never did."""
    import sqlite3
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from webapp.hitmemo import CatalogVersion

    path = str(tmp_path / "catalog.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x)")
    version = CatalogVersion(path)
    together = threading.Barrier(4)

    def read_on_each_thread(_: int) -> int | None:
        together.wait(timeout=10)  # all four pool threads read, not one of them four times
        return version.read()

    with ThreadPoolExecutor(4) as warm:  # the same four threads (connections) each round
        given = set(warm.map(read_on_each_thread, range(4)))
        for round_ in range(5):
            writer.execute("INSERT INTO t VALUES (?)", (round_,))
            seen = set(warm.map(read_on_each_thread, range(4)))
            with ThreadPoolExecutor(2) as new:  # and threads that never read before
                seen |= set(new.map(lambda _: version.read(), range(2)))
            assert None not in seen and not seen & given, (seen, given)
            given |= seen
    assert version.read() == version.read()  # no commit: the same number
