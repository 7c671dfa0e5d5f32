"""url[N] uploads: fetched from a local server when private addresses are allowed,
refused (with no connection made) when they are not."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.webapp.conftest import Member
from tests.webapp.images import png
from webapp import create_app
from webapp.remote import is_public_address

IMAGE = png(seed=77)


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        _Handler.hits.append(self.path)
        if self.path == "/image.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/image.png")
            self.end_headers()
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        elif self.path == "/text":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"not an image")
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.hits = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _member(tmp_path: Path, **settings: object) -> Member:
    app = create_app({"data_dir": str(tmp_path / "data"), **settings})
    return Member(app, app.test_client(), "acme", ["admin"])


def _post_url(member: Member, url: str, **fields: str):
    return member.request("POST", "/sourceimages/acme", data={"url[0]": url, **fields})


def test_fetch_and_follow_redirect(tmp_path, server):
    member = _member(tmp_path, remote_fetch_allow_private=True)
    response = _post_url(member, server + "/image.png", **{"meta_user[0]": '{"src": "url"}'})
    assert response.status_code == 200, response.get_data(as_text=True)
    image = response.get_json()["items"][0]
    assert image["name"] == "image.png" and image["size"] == len(IMAGE)
    assert image["user_metadata"] == {"src": "url"}
    redirected = _post_url(member, server + "/redirect")
    assert redirected.status_code == 200
    assert redirected.get_json()["items"][0]["hash"] == image["hash"]


def test_fetch_failures(tmp_path, server):
    member = _member(tmp_path, remote_fetch_allow_private=True, remote_fetch_max_redirects=3)
    assert _post_url(member, server + "/loop").status_code == 400
    assert _post_url(member, server + "/missing").status_code == 400
    assert _post_url(member, server + "/text").status_code == 422
    small = _member(tmp_path / "small", remote_fetch_allow_private=True, max_upload_bytes=600)
    assert _post_url(small, server + "/image.png").status_code == 413


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/x.png",
        "gopher://127.0.0.1/",
        "http://127.0.0.1:{port}/image.png",
        "http://localhost:{port}/image.png",
        "http://2130706433:{port}/image.png",
        "http://0x7f.1:{port}/image.png",
        "http://[::ffff:127.0.0.1]:{port}/image.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:7f00:1::]/",
        "http://10.0.0.1/",
        "http://0.0.0.0:{port}/image.png",
        "http:///nohost",
    ],
)
def test_private_and_odd_urls_are_refused_without_connecting(tmp_path, server, url):
    port = server.rsplit(":", 1)[1]
    member = _member(tmp_path)
    response = _post_url(member, url.format(port=port))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert _Handler.hits == []


def test_redirect_to_private_is_refused(tmp_path, server, monkeypatch):
    # The first hop is "public" (the check is patched for it only); its redirect to
    # 127.0.0.1 must be re-checked and refused.
    import webapp.remote

    calls = {"n": 0}
    real = webapp.remote.is_public_address

    def first_hop_public(address: str) -> bool:
        calls["n"] += 1
        return True if calls["n"] <= 2 else real(address)  # resolve + peer check of hop 1

    monkeypatch.setattr(webapp.remote, "is_public_address", first_hop_public)
    member = _member(tmp_path)
    response = _post_url(member, server + "/redirect")
    assert response.status_code == 400
    assert _Handler.hits == ["/redirect"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b::808:808", True),
        ("2002:7f00:1::", False),
        ("2002:808:808::", True),
        ("224.0.0.1", False),
        ("not an ip", False),
    ],
)
def test_is_public_address(address, public):
    assert is_public_address(address) is public


def test_files_and_urls_together_are_400(tmp_path, server):
    import io

    member = _member(tmp_path, remote_fetch_allow_private=True)
    response = member.request(
        "POST",
        "/sourceimages/acme",
        data={"url[0]": server + "/image.png", "filedata": (io.BytesIO(IMAGE), "a.png")},
    )
    assert response.status_code == 400
