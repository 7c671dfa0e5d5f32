"""Render URLs naming remote images (``-{path}-``, ``-{full URL}-``), fetched from a real
HTTP server on loopback, rendered through the real render processes and decoded.

Loopback is private: these apps set ``remote_fetch_allow_private``, except the one that
checks the SSRF guard refuses it. Runs on both catalog backends (tests/conftest.py).
"""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyvips
from flask import Flask

from tests.conftest import Account, close_app
from tests.realserver import running_server
from tests.webapp.catalogsql import database
from tests.webapp.livehttp import call, call_json
from webapp import create_app
from webapp.catalog import Catalog
from webapp.signing import signature

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 255, 0)


def flat(colour: tuple[int, int, int], width: int = 40, height: int = 20) -> bytes:
    """A PNG of one colour."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[...] = colour
    return bytes(pyvips.Image.new_from_array(arr, interpretation="srgb").pngsave_buffer())


def halves(left: tuple[int, int, int], right: tuple[int, int, int]) -> bytes:
    """A 40x20 PNG: the left half ``left``, the right half ``right``."""
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = left
    arr[:, 20:] = right
    return bytes(pyvips.Image.new_from_array(arr, interpretation="srgb").pngsave_buffer())


def pixels(body: bytes) -> np.ndarray:
    return pyvips.Image.new_from_buffer(body, "").numpy()


def near(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(int(pixel[i]) - colour[i]) <= tolerance for i in range(3))


class Origin:
    """What the loopback server serves: path -> (status, body, delay in seconds)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, bytes, float]] = {}
        self.redirects: dict[str, str] = {}
        self.hits: list[str] = []
        self.base = ""

    def serve(self, path: str, body: bytes, status: int = 200, delay: float = 0.0) -> str:
        self.files[path] = (status, body, delay)
        return self.base + path


@pytest.fixture
def origin() -> Iterator[Origin]:
    state = Origin()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            state.hits.append(self.path)
            if self.path in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, body, delay = state.files.get(self.path, (404, b"missing", 0.0))
            if delay:
                time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def make_app(tmp_path: Path, database_url: str) -> Iterator[Callable[..., Flask]]:
    """``make_app(**settings)``: an app on this test's catalog (one per test)."""
    made: list[Flask] = []

    def make(**settings: Any) -> Flask:
        app = create_app(
            {"data_dir": str(tmp_path / "data"), "database_url": database_url, **settings}
        )
        app.testing = True
        made.append(app)
        return app

    yield make
    for app in made:
        close_app(app)


@pytest.fixture
def acme(make_app: Callable[..., Flask]) -> Account:
    """An admin of ``acme`` on an app that may fetch from loopback, refreshing hourly."""
    app = make_app(remote_fetch_allow_private=True, remote_refresh_s=3600, remote_fetch_timeout=2)
    return Account(app.test_client(), "acme", "admin@acme.example")


def set_options(account: Account, **options: Any) -> None:
    response = account.request("PUT", "/organizations/acme/options", json=options)
    assert response.status_code == 200, response.get_json()


def error_of(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["error"]["code"] == status
    return body["error"]["message"]


def open_catalog(account: Account) -> Catalog:
    return account.client.application.extensions["cropstack.catalog"].open()


def test_path_form_is_fetched_once_and_stored_as_its_own_image(acme: Account, origin: Origin):
    source = halves(RED, BLUE)
    origin.serve("/base/2017/06/photo.png", source)
    set_options(acme, remote_basepath=origin.base + "/base/")
    url = "/acme/dynamic/resize-width-20/-2017/06/photo.png-/some-seo.png"
    first = acme.client.get(url)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.headers["Content-Type"] == "image/png"
    out = pixels(first.data)
    assert out.shape[:2] == (10, 20)
    assert near(out[5, 2], RED) and near(out[5, 17], BLUE)
    # Stored once: the next render (without the slug, another stack) does not fetch again.
    again = acme.client.get("/acme/dynamic/-2017/06/photo.png-.png")
    assert again.status_code == 200 and pixels(again.data).shape[:2] == (20, 40)
    assert origin.hits == ["/base/2017/06/photo.png"]
    # The image is in the catalog with a hash of its own: an upload of the same bytes differs.
    listed = acme.request("GET", "/sourceimages/acme").get_json()
    assert listed["total"] == 1
    remote = listed["items"][0]
    assert remote["name"] == "photo.png" and (remote["width"], remote["height"]) == (40, 20)
    upload = {"filedata": (io.BytesIO(source), "a.png")}
    uploaded = acme.request("POST", "/sourceimages/acme", data=upload).get_json()["items"][0]
    assert uploaded["binary_hash"] == remote["binary_hash"]
    assert uploaded["hash"] != remote["hash"]


def test_basepath_without_trailing_slash_and_encoded_names(acme: Account, origin: Origin):
    origin.serve("/base/dir/a%20b%25.png", flat(GREEN))
    set_options(acme, remote_basepath=origin.base + "/base")
    response = acme.client.get("/acme/dynamic/-dir/a%20b%25.png-.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert near(pixels(response.data)[3, 3], GREEN)
    assert origin.hits == ["/base/dir/a%20b%25.png"]


def test_full_url_form_and_the_whitelist(acme: Account, origin: Origin):
    full = origin.serve("/x/green.png", flat(GREEN))
    path = f"/acme/dynamic/resize-width-8/-{full}-.png"
    # remote_fullurl_allow is off: not found, nothing fetched
    assert "remote_fullurl_allow" in error_of(acme.client.get(path), 404)
    set_options(acme, remote_fullurl_allow=True, remote_fullurl_whitelist=[r"\.example$"])
    assert "whitelist" in error_of(acme.client.get(path), 403)
    assert origin.hits == []
    # rokka's form (a host pattern) and a whole-URL pattern both allow it
    for pattern in (r"^127\.0\.0\.1$", "^" + origin.base.replace(".", r"\.") + "/x/"):
        set_options(acme, remote_fullurl_whitelist=[r"\.example$", pattern])
        response = acme.client.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        out = pixels(response.data)
        assert out.shape[1] == 8 and near(out[2, 2], GREEN)
    userinfo = path.replace("http://", "http://cdn.example@")
    assert "user information" in error_of(acme.client.get(userinfo), 403)
    set_options(acme, remote_fullurl_whitelist=[])
    assert "whitelist" in error_of(acme.client.get(path), 403)
    set_options(acme, remote_fullurl_whitelist=None)
    # a proxy that merges slashes sends https:/host: still the same URL, already stored
    merged = path.replace("http://", "http:/")
    assert acme.client.get(merged).status_code == 200
    assert origin.hits == ["/x/green.png"]
    # the path form is still off (no remote_basepath)
    assert "remote_basepath" in error_of(acme.client.get("/acme/dynamic/-x/green.png-.png"), 404)


def test_whitelist_patterns_run_in_linear_time(acme: Account, origin: Origin):
    """A pattern that backtracks exponentially in Python's re, against a URL an anonymous
    client crafted, still answers at once: patterns run on RE2."""
    set_options(acme, remote_fullurl_allow=True, remote_fullurl_whitelist=[r"(a+)+$"])
    crafted = f"/acme/dynamic/resize-width-8/-{origin.base}/{'a' * 80}!-.png"
    answers: list[Any] = []
    worker = threading.Thread(target=lambda: answers.append(acme.client.get(crafted)))
    worker.start()
    worker.join(60)  # re would need about 2**80 steps: it would never come back
    assert answers, "the whitelist match did not finish"
    assert "whitelist" in error_of(answers[0], 403)
    assert origin.hits == []


@pytest.mark.parametrize("pattern", [r"(?=cdn)", r"(a)\1", "(unclosed"])
def test_whitelist_patterns_must_be_re2(acme: Account, pattern: str):
    response = acme.request(
        "PUT", "/organizations/acme/options", json={"remote_fullurl_whitelist": [pattern]}
    )
    assert "RE2" in error_of(response, 400)
    stack = {
        "operations": [{"name": "resize", "options": {"width": 10}}],
        "options": {"remote_fullurl_whitelist": [pattern]},
    }
    assert "remote_fullurl_whitelist" in error_of(
        acme.request("PUT", "/stacks/acme/badpattern", json=stack), 400
    )


def test_stack_options_enable_remote_images_and_urls_cannot(acme: Account, origin: Origin):
    origin.serve("/stackbase/b.png", flat(BLUE))
    stack = {
        "operations": [{"name": "resize", "options": {"width": 10}}],
        "options": {"remote_basepath": origin.base + "/stackbase/"},
    }
    assert acme.request("PUT", "/stacks/acme/remote", json=stack).status_code == 201
    response = acme.client.get("/acme/remote/-b.png-.png")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert pixels(response.data).shape[1] == 10 and near(pixels(response.data)[2, 2], BLUE)
    # the dynamic stack has only the organization's options: none
    error_of(acme.client.get("/acme/dynamic/-b.png-.png"), 404)
    # a render URL may not switch remote fetching on
    error_of(
        acme.client.get(f"/acme/dynamic/o-remote_fullurl_allow-true/-{origin.base}/b-.png"), 400
    )
    bad = {"operations": [], "options": {"remote_fullurl_whitelist": ["(unclosed"]}}
    error_of(acme.request("PUT", "/stacks/acme/bad", json=bad), 400)


def test_protected_stacks_fetch_only_for_signed_urls(acme: Account, origin: Origin):
    origin.serve("/p/photo.png", flat(RED))
    options = {"protected": True, "remote_basepath": origin.base + "/p/"}
    stack = {"operations": [{"name": "noop"}], "options": options}
    assert acme.request("PUT", "/stacks/acme/secret", json=stack).status_code == 201
    path = "/acme/secret/-photo.png-.png"
    error_of(acme.client.get(path), 403)
    assert origin.hits == []  # refused before any fetch
    key = acme.request("GET", "/organizations/acme").get_json()["signing_keys"][0]["key"]
    signed = acme.client.get(f"{path}?sig={signature(path, key)}")
    assert signed.status_code == 200 and near(pixels(signed.data)[3, 3], RED)
    assert origin.hits == ["/p/photo.png"]


def test_own_render_urls_follow_the_remote_options(make_app: Callable[..., Flask]):
    # No remote option is set: the organization's own render host is no exception (else
    # any anonymous client could store images in every organization, one per URL, and
    # make the server connect to its own ports).
    account = Account(make_app(render_domain="render.test").test_client(), "acme", "a@b.example")
    for own in (
        "/acme/dynamic/-http://acme.render.test/dynamic/abcdef.png-.png",
        "/acme/dynamic/-http://acme.render.test:8025/dynamic/abcdef.png-.png",
    ):
        assert "remote_fullurl_allow" in error_of(account.client.get(own), 404)
    # Switched on, it is fetched like any URL (and fails: .test names never resolve) ...
    set_options(account, remote_fullurl_allow=True)
    own = "/acme/dynamic/-http://acme.render.test/dynamic/abcdef.png-.png"
    assert "cannot be resolved" in error_of(account.client.get(own), 502)
    # ... but never a chain of remote fetches.
    chained = "/acme/dynamic/-http://acme.render.test/dynamic/-x.png-.png-.png"
    assert "names a remote image" in error_of(account.client.get(chained), 404)
    assert account.request("GET", "/sourceimages/acme").get_json()["total"] == 0


def test_redirects_must_satisfy_the_whitelist(acme: Account, origin: Origin):
    origin.serve("/allowed/ok.png", flat(GREEN))
    origin.serve("/elsewhere/x.png", flat(RED))
    origin.redirects["/allowed/moved.png"] = origin.base + "/elsewhere/x.png"
    origin.redirects["/allowed/inside.png"] = origin.base + "/allowed/ok.png"
    pattern = "^" + origin.base.replace(".", r"\.") + "/allowed/"
    set_options(acme, remote_fullurl_allow=True, remote_fullurl_whitelist=[pattern])
    moved = f"/acme/dynamic/-{origin.base}/allowed/moved.png-.png"
    assert "whitelist" in error_of(acme.client.get(moved), 403)
    assert "/elsewhere/x.png" not in origin.hits
    inside = acme.client.get(f"/acme/dynamic/-{origin.base}/allowed/inside.png-.png")
    assert inside.status_code == 200 and near(pixels(inside.data)[3, 3], GREEN)


def test_refresh_keeps_protection_and_user_metadata(acme: Account, origin: Origin):
    origin.serve("/base/photo.png", flat(RED))
    set_options(acme, remote_basepath=origin.base + "/base/")
    path = "/acme/dynamic/-photo.png-.png"
    assert acme.client.get(path).status_code == 200
    plain = acme.request("GET", "/sourceimages/acme").get_json()["items"][0]
    put = acme.request("PUT", f"/sourceimages/acme/{plain['hash']}/options/protected", data="true")
    assert put.status_code == 201, put.get_data(as_text=True)
    secret = put.get_json()["hash"]
    meta = acme.request("PATCH", f"/sourceimages/acme/{secret}/meta/user", json={"int:hide": 1})
    assert meta.status_code in (200, 204), meta.get_data(as_text=True)
    error_of(acme.client.get(path), 403)  # the URL now names the protected image
    catalog = open_catalog(acme)
    try:
        org_id = catalog.accounts.org_by_name("acme").id
        url = origin.base + "/base/photo.png"
        expire = "2000-01-01T00:00:00+00:00"
        # unchanged bytes: the protected image stays, its metadata too
        catalog.remote_images.postpone(org_id, url, expire)
        error_of(acme.client.get(path), 403)
        assert catalog.remote_images.get(org_id, url).hash == secret
        # new bytes: a new image, still protected, with the owner's user metadata
        origin.serve("/base/photo.png", flat(BLUE))
        catalog.remote_images.postpone(org_id, url, expire)
        error_of(acme.client.get(path), 403)
        newest = catalog.remote_images.get(org_id, url).hash
        assert newest not in (secret, plain["hash"])
        fresh = acme.request("GET", f"/sourceimages/acme/{newest}").get_json()
        assert fresh["protected"] is True and fresh["user_metadata"] == {"int:hide": 1}
        assert len(origin.hits) == 3
    finally:
        catalog.close()


def test_ssrf_guard_refuses_loopback(make_app: Callable[..., Flask], origin: Origin):
    account = Account(make_app().test_client(), "acme", "admin@acme.example")
    full = origin.serve("/img.png", flat(RED))
    set_options(account, remote_fullurl_allow=True, remote_basepath=origin.base + "/")
    for path in (f"/acme/dynamic/-{full}-.png", "/acme/dynamic/-img.png-.png"):
        assert "private" in error_of(account.client.get(path), 403)
    assert origin.hits == []
    assert account.request("GET", "/sourceimages/acme").get_json()["total"] == 0


def test_remote_failures_are_json_errors_and_store_nothing(acme: Account, origin: Origin):
    origin.serve("/base/broken.png", b"oops", status=500)
    origin.serve("/base/text.png", b"not an image at all")
    origin.serve("/base/slow.png", flat(RED), delay=4.0)
    set_options(acme, remote_basepath=origin.base + "/base/", remote_fullurl_allow=True)
    assert "HTTP 404" in error_of(acme.client.get("/acme/dynamic/-missing.png-.png"), 404)
    assert "HTTP 500" in error_of(acme.client.get("/acme/dynamic/-broken.png-.png"), 502)
    error_of(acme.client.get("/acme/dynamic/-text.png-.png"), 422)
    assert "timed out" in error_of(acme.client.get("/acme/dynamic/-slow.png-.png"), 504)
    # a host that does not resolve (.invalid never does, RFC 6761)
    error_of(acme.client.get("/acme/dynamic/-http://nothing.invalid/x.png-.png"), 502)
    assert acme.request("GET", "/sourceimages/acme").get_json()["total"] == 0


def test_a_refresh_due_by_time_alone_is_not_hidden_by_remembered_answers(
    make_app: Callable[..., Flask], origin: Origin
):
    # No catalog change between the two renders: only the clock makes the record due,
    # so a render URL of a remote image is never answered from webapp/hitmemo.py.
    app = make_app(remote_fetch_allow_private=True, remote_refresh_s=1)
    account = Account(app.test_client(), "acme", "a@b.example")
    origin.serve("/base/photo.png", flat(RED))
    set_options(account, remote_basepath=origin.base + "/base/")
    path = "/acme/dynamic/-photo.png-.png"
    for _ in range(3):
        assert near(pixels(account.client.get(path).data)[5, 5], RED)
    origin.serve("/base/photo.png", flat(BLUE))
    time.sleep(2.1)  # past the 1 s expiry, stored at whole seconds
    assert near(pixels(account.client.get(path).data)[5, 5], BLUE)


def test_expired_images_are_fetched_again(acme: Account, origin: Origin):
    origin.serve("/base/photo.png", flat(RED))
    set_options(acme, remote_basepath=origin.base + "/base/")
    path = "/acme/dynamic/-photo.png-.png"
    first = acme.client.get(path)
    assert first.status_code == 200 and near(pixels(first.data)[5, 5], RED)
    origin.serve("/base/photo.png", flat(BLUE))
    # within remote_refresh_s: the stored image
    assert near(pixels(acme.client.get(path).data)[5, 5], RED)
    assert len(origin.hits) == 1
    catalog = open_catalog(acme)
    try:
        org_id = catalog.accounts.org_by_name("acme").id
        url = origin.base + "/base/photo.png"
        record = catalog.remote_images.get(org_id, url)
        assert record is not None and record.expires is not None
        old_hash = record.hash
        catalog.remote_images.postpone(org_id, url, "2000-01-01T00:00:00+00:00")
        refreshed = acme.client.get(path)
        assert refreshed.status_code == 200 and near(pixels(refreshed.data)[5, 5], BLUE)
        assert refreshed.headers["ETag"] != first.headers["ETag"]
        new = catalog.remote_images.get(org_id, url)
        assert new is not None and new.hash != old_hash and new.expires > "2026"
        assert len(origin.hits) == 2
        # a refresh that fails keeps serving the stored image, and waits another period
        origin.serve("/base/photo.png", b"down", status=503)
        catalog.remote_images.postpone(org_id, url, "2000-01-01T00:00:00+00:00")
        stale = acme.client.get(path)
        assert stale.status_code == 200 and near(pixels(stale.data)[5, 5], BLUE)
        assert catalog.remote_images.get(org_id, url).expires > "2001"
        assert len(origin.hits) == 3
    finally:
        catalog.close()


def test_records_without_expiry_follow_remote_refresh_s(
    make_app: Callable[..., Flask], origin: Origin
):
    # Fetched while refresh was off (the default, as rokka): never fetched again ...
    never = Account(make_app(remote_fetch_allow_private=True).test_client(), "acme", "a@b.example")
    origin.serve("/base/photo.png", flat(RED))
    set_options(never, remote_basepath=origin.base + "/base/")
    path = "/acme/dynamic/-photo.png-.png"
    assert near(pixels(never.client.get(path).data)[5, 5], RED)
    catalog = open_catalog(never)
    try:
        org_id = catalog.accounts.org_by_name("acme").id
        url = origin.base + "/base/photo.png"
        record = catalog.remote_images.get(org_id, url)
        assert record is not None and record.expires is None
        origin.serve("/base/photo.png", flat(BLUE))
        old = "2000-01-01T00:00:00+00:00"
        catalog.remote_images.put(org_id, url, record.hash, fetched=old, expires=None)
        assert near(pixels(never.client.get(path).data)[5, 5], RED)
        # ... until refresh is switched on: then due remote_refresh_s after its fetch
        later = make_app(remote_fetch_allow_private=True, remote_refresh_s=60).test_client()
        assert near(pixels(later.get(path).data)[5, 5], BLUE)
        assert catalog.remote_images.get(org_id, url).expires is not None
    finally:
        catalog.close()
    assert len(origin.hits) == 2


def test_deleted_remote_images_are_fetched_again(acme: Account, origin: Origin):
    origin.serve("/base/photo.png", flat(GREEN))
    set_options(acme, remote_basepath=origin.base + "/base/")
    path = "/acme/dynamic/-photo.png-.png"
    assert acme.client.get(path).status_code == 200
    image = acme.request("GET", "/sourceimages/acme").get_json()["items"][0]
    assert acme.request("DELETE", f"/sourceimages/acme/{image['hash']}").status_code == 204
    again = acme.client.get(path)
    assert again.status_code == 200 and near(pixels(again.data)[3, 3], GREEN)
    assert len(origin.hits) == 2


def test_subject_area_on_a_remote_image(acme: Account, origin: Origin):
    origin.serve("/base/halves.png", halves(RED, BLUE))
    set_options(acme, remote_basepath=origin.base + "/base/")
    path = "/acme/dynamic/crop-width-20-height-20/-halves.png-.png"
    plain = pixels(acme.client.get(path).data)
    assert near(plain[10, 2], RED) and near(plain[10, 17], BLUE)  # centre crop
    image = acme.request("GET", "/sourceimages/acme").get_json()["items"][0]
    area = {"x": 20, "y": 0, "width": 20, "height": 20}
    put = acme.request(
        "PUT",
        f"/sourceimages/acme/{image['hash']}/meta/dynamic/subject_area?deletePrevious=true",
        data=json.dumps(area),
    )
    assert put.status_code == 201, put.get_data(as_text=True)
    # the remote URL now renders the image with the subject area: the blue half
    cropped = pixels(acme.client.get(path).data)
    assert near(cropped[10, 2], BLUE) and near(cropped[10, 17], BLUE)
    assert len(origin.hits) == 1


def test_repository_contract(acme: Account):
    catalog = open_catalog(acme)
    try:
        org_id = catalog.accounts.org_by_name("acme").id
        long_url = "https://images.example/" + "x" * 3000 + ".png"  # past a b-tree entry
        assert catalog.remote_images.get(org_id, long_url) is None
        made = catalog.remote_images.put(
            org_id, long_url, "a" * 40, fetched="2026-01-01T00:00:00+00:00", expires=None
        )
        assert catalog.remote_images.get(org_id, long_url) == made
        assert not made.expired("2999-01-01T00:00:00+00:00")
        catalog.remote_images.put(
            org_id, "https://b.example/1", "b" * 40, fetched="2026-01-01T00:00:00+00:00",
            expires="2026-02-01T00:00:00+00:00",
        )  # fmt: skip
        record = catalog.remote_images.get(org_id, "https://b.example/1")
        assert record is not None and record.expired("2026-02-01T00:00:00+00:00")
        assert not record.expired("2026-01-31T23:59:59+00:00")
        # replacing keeps one record per URL
        catalog.remote_images.put(
            org_id, long_url, "c" * 40, fetched="2026-03-01T00:00:00+00:00", expires=None
        )
        assert catalog.remote_images.get(org_id, long_url).hash == "c" * 40
        assert catalog.remote_images.repoint(org_id, "c" * 40, "d" * 40) == 1
        assert catalog.remote_images.urls_of(org_id, "d" * 40) == [long_url]
        assert catalog.remote_images.postpone(org_id, long_url, "2030-01-01T00:00:00+00:00")
        assert not catalog.remote_images.postpone(org_id, "https://none.example/", None)
        # other organizations see nothing
        catalog.accounts.signup("admin@globex.example", "globex")
        globex = catalog.accounts.org_by_name("globex").id
        assert catalog.remote_images.get(globex, long_url) is None
        assert catalog.remote_images.repoint(globex, "d" * 40, "e" * 40) == 0
    finally:
        catalog.close()


@pytest.mark.server
@pytest.mark.sqlite_only
def test_real_server_renders_both_forms(tmp_path: Path, origin: Origin, catalog_backend: str):
    """Through gunicorn: the ``//`` of a full URL in the path arrives as sent."""
    full = origin.serve("/base/photo.png", halves(GREEN, RED))
    env = {"CROPSTACK_REMOTE_FETCH_ALLOW_PRIVATE": "true"}
    with running_server(tmp_path, "--signup", env=env) as base:
        status, user = call_json(
            base,
            "POST",
            "/users",
            body=json.dumps({"email": "a@b.example", "organization": "acme"}).encode(),
        )
        assert status == 200, user
        options = {"remote_basepath": origin.base + "/base", "remote_fullurl_allow": True}
        status, _ = call_json(
            base, "PUT", "/organizations/acme/options", user["api_key"],
            body=json.dumps(options).encode(), headers={"Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 200
        for path in (f"/acme/dynamic/-{full}-/seo.png", "/acme/dynamic/-photo.png-.png"):
            status, headers, body = call(base, "GET", path)
            assert status == 200, body[:300]
            out = pixels(body)
            assert near(out[10, 2], GREEN) and near(out[10, 37], RED)
        status, headers, body = call(base, "GET", "/acme/dynamic/-nothing.png-.png")
        assert status == 404 and json.loads(body)["error"]["code"] == 404
    # one fetch per URL: the full URL and the path form name the same URL here
    assert origin.hits == ["/base/photo.png", "/base/nothing.png"]


def test_migration_2_upgrades_a_version_1_catalog(acme: Account):
    """A catalog of the release before remote images (version 1 only) gains the table at
    the next start-up, and keeps its images."""
    app = acme.client.application
    uploaded = acme.request(
        "POST", "/sourceimages/acme", data={"filedata": (io.BytesIO(flat(RED)), "a.png")}
    ).get_json()["items"][0]
    with database(app) as db:
        db.execute("DROP TABLE remote_images")
        db.execute("DELETE FROM schema_migrations WHERE version = 2")
    assert app.extensions["cropstack.catalog"].migrate() == [2]
    assert app.extensions["cropstack.catalog"].migrate() == []
    catalog = open_catalog(acme)
    try:
        org_id = catalog.accounts.org_by_name("acme").id
        assert catalog.images.get_exact(org_id, uploaded["hash"]) is not None
        catalog.remote_images.put(
            org_id, "https://a.example/x", uploaded["hash"], fetched="2026-01-01T00:00:00+00:00",
            expires=None,
        )  # fmt: skip
        assert catalog.remote_images.get(org_id, "https://a.example/x").hash == uploaded["hash"]
    finally:
        catalog.close()
