"""Albums on the render host: ``/{org}/_albums/{album}/all.json`` and ``favorites.json``,
from the images' user metadata (``array:albums``, ``int:favorite``, ``int:hide``), on both
catalog backends. Public answers: what they list and show is checked as a stranger would
see it (no key)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from tests.conftest import Account, close_app
from tests.webapp.images import png
from tests.webapp.test_render import upload
from webapp import create_app

ALBUM = "Summer Trip"
FIELDS = {"hash", "short_hash", "name", "format", "mimetype", "width", "height", "favorite"}


def with_meta(account: Account, name: str, seed: int, meta: dict, **fields: str) -> dict:
    """Upload a distinct PNG named ``name`` with user metadata ``meta``."""
    return upload(
        account, png(30 + seed, 20, seed=seed), name, **{"meta_user[0]": json.dumps(meta)}, **fields
    )


def album_url(org: str, album: str, file: str = "all.json") -> str:
    return f"/{org}/_albums/{quote(album)}/{file}"


def error_of(response, status: int) -> None:  # noqa: ANN001
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json()["error"]["code"] == status


def test_album_lists_its_images_and_favorites(client, account):
    beach = with_meta(account, "beach.png", 1, {"array:albums": [ALBUM, "Beaches"]})
    sunset = with_meta(account, "sunset.png", 2, {"array:albums": [ALBUM], "int:favorite": 1})
    hidden = with_meta(account, "hidden.png", 3, {"array:albums": [ALBUM], "int:hide": 1})
    elsewhere = with_meta(account, "city.png", 4, {"array:albums": ["City"], "int:favorite": 1})
    secret = with_meta(
        account, "secret.png", 5, {"array:albums": [ALBUM]}, **{"options[0]": '{"protected":true}'}
    )
    gone = with_meta(account, "gone.png", 6, {"array:albums": [ALBUM]})
    not_favorite = with_meta(account, "dull.png", 7, {"array:albums": [ALBUM], "int:favorite": 0})
    assert account.request("DELETE", f"/sourceimages/acme/{gone['hash']}").status_code == 204

    answer = client.get(album_url("acme", ALBUM))  # no key: albums are public
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Cache-Control"] == "public, max-age=60"
    body = answer.get_json()
    assert body["album"] == ALBUM and body["total"] == 3
    assert body["items"] == body["images"]
    listed = {i["hash"]: i for i in body["items"]}
    # live, unprotected, not hidden images of this album only
    assert set(listed) == {beach["hash"], sunset["hash"], not_favorite["hash"]}
    for hidden_hash in (hidden["hash"], elsewhere["hash"], secret["hash"], gone["hash"]):
        assert hidden_hash not in answer.get_data(as_text=True)
    # only what a gallery needs; no user metadata or binary hash
    assert all(set(i) == FIELDS for i in body["items"])
    assert listed[beach["hash"]] == {
        "hash": beach["hash"], "short_hash": beach["short_hash"], "name": "beach.png",
        "format": "png", "mimetype": "image/png", "width": 31, "height": 20, "favorite": False,
    }  # fmt: skip
    assert listed[sunset["hash"]]["favorite"] is True
    assert listed[not_favorite["hash"]]["favorite"] is False
    # newest first (ties within a second by hash)
    created = {
        i["hash"]: account.request("GET", f"/sourceimages/acme/{i['hash']}").get_json()["created"]
        for i in body["items"]
    }
    order = [i["hash"] for i in body["items"]]
    assert order == sorted(order, key=lambda h: (_desc(created[h]), h))

    favorites = client.get(album_url("acme", ALBUM, "favorites.json")).get_json()
    assert favorites["total"] == 1 and [i["hash"] for i in favorites["images"]] == [sunset["hash"]]
    beaches = client.get(album_url("acme", "Beaches")).get_json()
    assert [i["hash"] for i in beaches["items"]] == [beach["hash"]]
    # an album without favorites still has its favorites.json (galleries fetch both)
    no_favorites = client.get(album_url("acme", "Beaches", "favorites.json"))
    assert no_favorites.status_code == 200
    assert no_favorites.get_json() == {"album": "Beaches", "total": 0, "items": [], "images": []}


def _desc(created: str) -> str:
    """A key that sorts ISO times newest first."""
    return "".join(chr(0x10FFFF - ord(c)) for c in created)


def test_album_follows_metadata_changes(client, account):
    image = with_meta(account, "a.png", 1, {"array:albums": [ALBUM]})
    first = client.get(album_url("acme", ALBUM))
    assert [i["hash"] for i in first.get_json()["items"]] == [image["hash"]]
    etag = first.headers["ETag"]
    assert client.get(album_url("acme", ALBUM), headers={"If-None-Match": etag}).status_code == 304
    meta = f"/sourceimages/acme/{image['hash']}/meta/user"
    assert account.request("PATCH", meta, data=json.dumps({"int:favorite": 1})).status_code == 204
    changed = client.get(album_url("acme", ALBUM), headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.get_json()["items"][0]["favorite"] is True
    # removed from the album: the album is gone
    response = account.request("PATCH", meta, data=json.dumps({"array:albums": None}))
    assert response.status_code == 204, response.get_data(as_text=True)
    error_of(client.get(album_url("acme", ALBUM)), 404)


def test_album_pages_and_cap(client, account):
    made = [with_meta(account, f"{n}.png", n, {"array:albums": ["Many"]}) for n in range(5)]
    whole = client.get(album_url("acme", "Many")).get_json()
    assert whole["total"] == 5 and len(whole["items"]) == 5
    order = [i["hash"] for i in whole["items"]]
    assert set(order) == {m["hash"] for m in made}
    first = client.get(album_url("acme", "Many") + "?limit=2").get_json()
    rest = client.get(album_url("acme", "Many") + "?limit=2&offset=2").get_json()
    last = client.get(album_url("acme", "Many") + "?limit=2&offset=4").get_json()
    assert first["total"] == rest["total"] == last["total"] == 5
    pages = [i["hash"] for page in (first, rest, last) for i in page["items"]]
    assert pages == order
    beyond = client.get(album_url("acme", "Many") + "?offset=10").get_json()
    assert beyond["items"] == [] and beyond["total"] == 5
    for bad in ("limit=1001", "limit=-1", "limit=x", "offset=100001", "offset=1e3"):
        error_of(client.get(album_url("acme", "Many") + "?" + bad), 400)


def test_unknown_albums_files_and_organizations_are_404(client, account):
    with_meta(account, "a.png", 1, {"array:albums": ["Real"]})
    error_of(client.get(album_url("acme", "Nope")), 404)
    error_of(client.get(album_url("acme", "Nope", "favorites.json")), 404)
    error_of(client.get(album_url("acme", "real")), 404)  # names are exact
    error_of(client.get(album_url("acme", "Real", "other.json")), 404)
    error_of(client.get(album_url("acme", "Real", "all.xml")), 404)
    error_of(client.get(album_url("nobody", "Real")), 404)
    error_of(client.get(album_url("acme", "x" * 1001)), 404)
    error_of(client.get("/acme/_albums/Re%00al/all.json"), 404)  # NUL: no album, no 500
    error_of(client.get("/acme/_albums/Real"), 404)
    error_of(client.get("/acme/_albums/a/b/all.json"), 404)
    error_of(client.get("/_albums/Real/all.json"), 404)  # no organization host
    # another organization's album of the same name is its own
    other = Account(client, "globex", "admin@globex.example")
    error_of(client.get(album_url("globex", "Real")), 404)
    with_meta(other, "b.png", 2, {"array:albums": ["Real"]})
    assert client.get(album_url("globex", "Real")).get_json()["total"] == 1
    assert client.get(album_url("acme", "Real")).get_json()["total"] == 1


def test_album_on_the_organization_host(tmp_path: Path, database_url: str):
    app = create_app(
        {"data_dir": str(tmp_path / "d"), "database_url": database_url, "render_domain": "r.test"}
    )
    try:
        client = app.test_client()
        account = Account(client, "acme", "admin@acme.example")
        image = with_meta(account, "a.png", 1, {"array:albums": [ALBUM]})
        answer = client.get(f"/_albums/{quote(ALBUM)}/all.json", headers={"Host": "acme.r.test"})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert [i["hash"] for i in answer.get_json()["images"]] == [image["hash"]]
        error_of(client.get("/_albums/x/all.json", headers={"Host": "nobody.r.test"}), 404)
    finally:
        close_app(app)
