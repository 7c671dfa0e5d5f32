"""The console's files as the web layer serves them (in-process; the browser tests are in
test_console_browser.py)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from webapp.routes.console import CONSOLE_DIR


def test_console_redirects_to_its_directory(client):
    response = client.get("/console")
    assert response.status_code == 301
    assert response.headers["Location"].endswith("/console/")


def test_index_is_html_with_a_same_origin_csp(client):
    response = client.get("/console/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp.split(";")[0]
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-cache"
    assert b'<script type="module" src="app.js">' in response.data


@pytest.mark.parametrize(
    ("name", "mimetype"),
    [("app.js", "text/javascript"), ("console.css", "text/css"), ("icon.svg", "image/svg+xml")],
)
def test_files_have_their_type_and_the_csp(client, name, mimetype):
    response = client.get(f"/console/{name}")
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_unchanged_file_answers_304(client):
    etag = client.get("/console/app.js").headers["ETag"]
    assert client.get("/console/app.js", headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "/console/nope.js",
        "/console/../webapp/app.py",
        "/console/%2e%2e/app.py",
        "/console/.hidden.js",
        "/console/sub/app.js",
        "/console/app.py",
        "/console/APP.js",
    ],
)
def test_anything_else_is_a_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]["code"] == 404


def test_console_is_a_reserved_organization_name(client, account):
    response = account.request("PUT", "/organizations/console", json={})
    assert response.status_code == 400, response.get_json()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_text += data


def test_html_has_no_inline_script_style_or_other_host():
    """What a ``default-src 'self'`` policy would block, checked in the source as well
    (the browser test checks that no violation is reported)."""
    parser = _Tags()
    parser.feed((CONSOLE_DIR / "index.html").read_text())
    assert parser.script_text.strip() == ""
    for tag, attrs in parser.tags:
        assert tag != "style"
        assert "style" not in attrs
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for attr in ("src", "href"):
            value = attrs.get(attr) or ""
            assert not re.match(r"^([a-z]+:)?//", value), (tag, value)


def test_scripts_build_no_markup_from_strings():
    """Names and metadata come from users: the scripts must set them as text, never as
    markup (innerHTML, outerHTML, insertAdjacentHTML, document.write) nor as code."""
    for path in CONSOLE_DIR.glob("*.js"):
        source = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, (path.name, sink)


def test_render_hosts_render_a_stack_called_console(tmp_path):
    """On ``{org}.{render_domain}`` the path belongs to renders, not to the console."""
    from tests.conftest import Account
    from tests.webapp.images import multipart, png
    from webapp import create_app

    app = create_app({"data_dir": str(tmp_path / "d"), "render_domain": "img.test"})
    client = app.test_client()
    account = Account(client, "acme", "admin@acme.example")
    form = multipart(png(40, 30))
    upload = account.request("POST", "/sourceimages/acme", data=form)
    image = upload.get_json()["items"][0]["hash"]
    stack = {"operations": [{"name": "resize", "options": {"width": 10}}]}
    assert account.request("PUT", "/stacks/acme/console", json=stack).status_code == 201
    rendered = client.get(f"/console/{image}.png", headers={"Host": "acme.img.test"})
    assert rendered.status_code == 200 and rendered.mimetype == "image/png"
    assert client.get("/console/", headers={"Host": "acme.img.test"}).status_code == 404
    assert client.get("/console/", headers={"Host": "api.example"}).mimetype == "text/html"
