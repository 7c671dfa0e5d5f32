"""Render answers on the open internet: the bounded cache, what keys it, and the headers
that keep active content inert (docs/render.md "Headers" and "The render cache")."""

from __future__ import annotations

import io
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from tests.conftest import Account
from tests.engine.conftest import decode, png, scene
from tests.realserver import running_server
from webapp import create_app
from webapp.rendercache import RenderCache

ORIGINAL_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

# An SVG that runs script when a browser opens it as a document.
SCRIPT_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10">'
    b'<script type="text/javascript">alert(document.domain)</script>'
    b'<rect width="20" height="10" fill="red" onload="alert(1)"/></svg>'
)


def upload(account: Account, data: bytes, name: str) -> str:
    form = {"filedata": (io.BytesIO(data), name)}
    response = account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"][0]["hash"]


def put_stack(account: Account, name: str, body: dict) -> None:
    response = account.request("PUT", f"/stacks/{account.org}/{name}", data=json.dumps(body))
    assert response.status_code == 201, response.get_data(as_text=True)


def cache_files(cache: RenderCache) -> list:
    return [p for p in cache.root.rglob("*") if p.is_file() and not p.name.startswith(".")]


@pytest.fixture
def image(account: Account) -> str:
    return upload(account, png(scene(120, 90)), "scene.png")


def test_unused_variables_change_neither_etag_nor_cache_entry(client, account, image, app):
    base = f"/{account.org}/dynamic/resize-width-40/{image}.png"
    first = client.get(base)
    assert first.status_code == 200
    junk = [
        base + "?v=" + quote(json.dumps({"x": 1})),
        base + "?v=" + quote(json.dumps({"utm": "campaign-7", "n": 3.5})),
        f"/{account.org}/dynamic/resize-width-40/v-foo-bar--v-a-b/{image}.png",
    ]
    for url in junk:
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["ETag"] == first.headers["ETag"]
        assert response.data == first.data
        assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert len(cache_files(app.extensions["cropstack.render_cache"])) == 1
    # What does change the output still changes the key.
    other = client.get(f"/{account.org}/dynamic/resize-width-41/{image}.png")
    assert other.headers["ETag"] != first.headers["ETag"]
    assert len(cache_files(app.extensions["cropstack.render_cache"])) == 2


def test_preview_stacks_are_never_cached(client, account, image, app):
    put_stack(
        account, "_preview_thumb", {"operations": [{"name": "resize", "options": {"width": 30}}]}
    )
    put_stack(account, "_preview_orig", {"operations": [], "options": {"source_file": True}})
    put_stack(account, "thumb", {"operations": [{"name": "resize", "options": {"width": 30}}]})
    cache = app.extensions["cropstack.render_cache"]
    for _ in range(2):
        preview = client.get(f"/{account.org}/_preview_thumb/{image}.png")
        assert preview.status_code == 200
        assert preview.headers["Cache-Control"] == "no-store"
        assert decode(preview.data).shape[1] == 30
    assert cache_files(cache) == []
    original = client.get(f"/{account.org}/_preview_orig/{image}.png")
    assert original.status_code == 200 and original.headers["Cache-Control"] == "no-store"
    kept = client.get(f"/{account.org}/thumb/{image}.png")
    assert kept.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert len(cache_files(cache)) == 1


def test_every_render_and_download_answer_is_nosniff(client, account, image):
    put_stack(account, "orig", {"operations": [], "options": {"source_file": True}})
    rendered = client.get(f"/{account.org}/dynamic/resize-width-20/{image}.png")
    answers = {
        "render": rendered,
        "render 304": client.get(
            f"/{account.org}/dynamic/resize-width-20/{image}.png",
            headers={"If-None-Match": rendered.headers["ETag"]},
        ),
        "render HEAD": client.head(f"/{account.org}/dynamic/resize-width-20/{image}.png"),
        "render 404": client.get(f"/{account.org}/dynamic/noop/{'0' * 40}.png"),
        "render 400": client.get(f"/{account.org}/dynamic/resize-width-0/{image}.png"),
        "source_file": client.get(f"/{account.org}/orig/{image}.png"),
        "download": account.request("GET", f"/sourceimages/{account.org}/{image}/download"),
    }
    for name, response in answers.items():
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
    assert answers["render 304"].status_code == 304


def test_an_svg_with_script_is_served_sandboxed(client, account):
    svg = upload(account, SCRIPT_SVG, "evil.svg")
    put_stack(account, "orig", {"operations": [], "options": {"source_file": True}})
    original = client.get(f"/{account.org}/orig/{svg}.png")
    assert original.status_code == 200
    assert original.data == SCRIPT_SVG  # the original, byte for byte, but inert:
    assert original.headers["Content-Type"].startswith("image/svg+xml")
    assert original.headers["Content-Security-Policy"] == ORIGINAL_CSP
    assert original.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Disposition" not in original.headers  # inline, for <img src>
    again = client.get(
        f"/{account.org}/orig/{svg}.png", headers={"If-None-Match": original.headers["ETag"]}
    )
    assert again.status_code == 304
    assert again.headers["Content-Security-Policy"] == ORIGINAL_CSP

    download = account.request("GET", f"/sourceimages/{account.org}/{svg}/download")
    assert download.status_code == 200 and download.data == SCRIPT_SVG
    assert download.headers["Content-Security-Policy"] == ORIGINAL_CSP
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["X-Content-Type-Options"] == "nosniff"

    # Rendered, the SVG is rasterised: pixels, no script.
    rendered = client.get(f"/{account.org}/dynamic/noop/{svg}.png")
    assert rendered.status_code == 200 and rendered.headers["Content-Type"] == "image/png"
    assert b"<script" not in rendered.data


def test_many_distinct_renders_keep_the_cache_under_its_bound(tmp_path):
    bound = 96 * 1024
    app = create_app({"data_dir": str(tmp_path / "d"), "render_cache_max_bytes": bound})
    client: FlaskClient = app.test_client()
    account = Account(client, "acme", "admin@acme.example")
    image = upload(account, png(scene(400, 300)), "scene.png")
    cache = app.extensions["cropstack.render_cache"]
    for width in range(60, 140):  # 80 renders of ~4-9 KiB each, several times the bound
        response = client.get(f"/acme/dynamic/resize-width-{width}/{image}.png")
        assert response.status_code == 200
        assert decode(response.data).shape[1] == width
        assert cache.usage() <= bound
    assert len(cache_files(cache)) > 5  # it does cache, within the bound


def test_a_zero_bound_caches_nothing(tmp_path):
    app = create_app({"data_dir": str(tmp_path / "d"), "render_cache_max_bytes": 0})
    client = app.test_client()
    account = Account(client, "acme", "admin@acme.example")
    image = upload(account, png(scene(50, 40)), "scene.png")
    assert client.get(f"/acme/dynamic/resize-width-20/{image}.png").status_code == 200
    assert cache_files(app.extensions["cropstack.render_cache"]) == []


@pytest.mark.server
def test_gunicorn_workers_share_the_bound(tmp_path):
    """Two worker processes, six client threads, many distinct renders: every answer is
    a 200 and the cache ends within its bound."""
    bound = 64 * 1024
    app = create_app({"data_dir": str(tmp_path / "data")})
    account = Account(app.test_client(), "acme", "admin@acme.example")
    image = upload(account, png(scene(300, 200)), "scene.png")
    app.extensions["cropstack.catalog_anchor"].close()
    env = {"CROPSTACK_RENDER_CACHE_MAX_BYTES": str(bound)}
    with running_server(tmp_path, env=env, workers=2) as base:

        def fetch(width: int) -> int:
            url = f"{base}/acme/dynamic/resize-width-{width}/{image}.png"
            with urllib.request.urlopen(url, timeout=30) as response:
                assert decode(response.read()).shape[1] == width
                return response.status

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(fetch, [40 + i % 90 for i in range(180)]))
    assert statuses == [200] * 180
    cache = RenderCache(tmp_path / "data" / "cache", max_bytes=bound)
    assert 0 < cache.usage() <= bound
