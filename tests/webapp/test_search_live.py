"""Search answers around soft-deleted images, on both catalogs (docs/search.md).

The fast shapes of search count a single filter on its index and subtract the
soft-deleted matches, keep the PostgreSQL word index to live images and walk a user
field's value index for its sort. Each is checked here against the answer computed in
Python from the images the API lists, with none, few and many images soft-deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import close_app
from tests.webapp.catalogsql import database
from tests.webapp.conftest import Member
from tests.webapp.images import multipart, png
from webapp import create_app

N = 16
WORDS = ["harbour", "festival", "lantern", "meadow"]


def user_metadata(i: int) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "text:caption": f"{WORDS[i % 4]} at dusk number{i}",
        "array:labels": [WORDS[j] for j in range(4) if (i >> j) & 1],
        "array_text:notes": [f"{WORDS[i % 3]} note", "festival twice festival"],
    }
    if i % 3:
        meta["int:stock"] = (i * 5) % 11
    return meta


@pytest.fixture(scope="module")
def acme(tmp_path_factory, catalog_backend, request) -> Member:
    url = ""
    if catalog_backend == "postgresql":
        server = request.getfixturevalue("postgres")
        url = server.new_database()
        request.addfinalizer(lambda: server.drop(url))
    data_dir = tmp_path_factory.mktemp("search-live") / "data"
    app = create_app({"data_dir": str(data_dir), "database_url": url})
    request.addfinalizer(lambda: close_app(app))
    app.testing = True
    member = Member(app, app.test_client(), "acme", ["admin"])
    for i in range(N):
        fields: dict[str, Any] = {"meta_user[0]": user_metadata(i)}
        if i % 2:
            fields["meta_dynamic[0][version]"] = {"text": f"v{i % 4}"}
        name = f"{WORDS[(i + 1) % 4]}-{i}.png"
        response = member.request(
            "POST", "/sourceimages/acme", data=multipart(png(8, 8, seed=i), name, fields=fields)
        )
        assert response.status_code == 200, response.get_data(as_text=True)
    return member


def get(acme: Member, params: dict[str, Any]) -> dict[str, Any]:
    response = acme.request("GET", "/sourceimages/acme?" + urlencode(params))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def everything(acme: Member, params: dict[str, Any]) -> list[dict[str, Any]]:
    return get(acme, {**params, "limit": 2000})["items"]


def meta(image: dict[str, Any], key: str) -> Any:
    return image["user_metadata"].get(key)


def _words(text: str) -> set[str]:
    return set(text.split())


FILTERS: dict[str, tuple[dict[str, str], Callable[[dict[str, Any]], bool]]] = {
    "text word": (
        {"user:text:caption": "festival"},
        lambda x: "festival" in _words(meta(x, "text:caption")),
    ),
    "text prefix": (
        {"user:text:caption": "lant*"},
        lambda x: any(w.startswith("lant") for w in _words(meta(x, "text:caption"))),
    ),
    "array_text word (twice in one element)": (
        {"user:array_text:notes": "festival"},
        lambda x: any("festival" in _words(n) for n in meta(x, "array_text:notes")),
    ),
    "name_text": ({"name_text": "meadow"}, lambda x: x["name"].startswith("meadow-")),
    "array exact": (
        {"user:array:labels": "harbour"},
        lambda x: "harbour" in meta(x, "array:labels"),
    ),
    "int range": ({"user:int:stock": "[2,7]"}, lambda x: 2 <= (meta(x, "int:stock") or -1) <= 7),
    "dynamic str": (
        {"dynamic:str:version:text": "v1"},
        lambda x: x["dynamic_metadata"].get("version", {}).get("text") == "v1",
    ),
}


@pytest.fixture
def deleting(acme: Member) -> Iterator[Callable[[list[str]], None]]:
    """Soft-delete images by hash; every one is restored after the test."""
    deleted: list[str] = []

    def delete(hashes: list[str]) -> None:
        for image_hash in hashes:
            response = acme.request("DELETE", f"/sourceimages/acme/{image_hash}")
            assert response.status_code == 204
            deleted.append(image_hash)

    yield delete
    for image_hash in deleted:
        restored = acme.request("POST", f"/sourceimages/acme/{image_hash}/restore")
        assert restored.status_code == 200


def check_filters(acme: Member, live: list[dict[str, Any]], gone: list[dict[str, Any]]) -> None:
    """Every filter's total, live pages (by offset and by cursor) and ``deleted=true``
    list match the Python answer over ``live`` and ``gone`` images."""
    for name, (params, predicate) in FILTERS.items():
        expected = [x["hash"] for x in live if predicate(x)]  # live is in created desc order
        assert expected or len(live) < N // 2, name  # each filter matches something
        body = get(acme, {**params, "limit": 3})
        assert body["total"] == len(expected), name
        assert get(acme, {**params, "limit": 0})["total"] == len(expected), name
        seen, cursor = [], None
        for _ in range(N):
            page = get(acme, {**params, "limit": 3, **({"offset": cursor} if cursor else {})})
            seen += [x["hash"] for x in page["items"]]
            cursor = page.get("cursor")
            if not cursor or not page["items"]:
                break
        assert seen == expected, name
        by_offset = [
            x["hash"]
            for offset in range(0, len(expected), 2)
            for x in get(acme, {**params, "limit": 2, "offset": offset})["items"]
        ]
        assert by_offset == expected, name
        dead = sorted(x["hash"] for x in gone if predicate(x))
        assert sorted(x["hash"] for x in everything(acme, {**params, "deleted": "true"})) == dead


@pytest.mark.parametrize("how_many", [0, 1, 3, N - 2])
def test_filters_leave_soft_deleted_images_out(acme, deleting, how_many):
    """None, few (fewer than the matches: subtracted) and many (more than the matches:
    counted image by image) soft-deleted images."""
    images = everything(acme, {})
    assert len(images) == N
    gone = images[1 : 1 + how_many]
    deleting([x["hash"] for x in gone])
    live = [x for x in images if x not in gone]
    assert [x["hash"] for x in everything(acme, {})] == [x["hash"] for x in live]
    check_filters(acme, live, gone)


def test_restored_images_are_found_again(acme, deleting):
    images = everything(acme, {})
    gone = images[::3]
    deleting([x["hash"] for x in gone])
    for image in gone:
        restored = acme.request("POST", f"/sourceimages/acme/{image['hash']}/restore")
        assert restored.status_code == 200
    check_filters(acme, everything(acme, {}), [])


def test_word_index_follows_metadata_and_names_of_live_images(acme):
    images = everything(acme, {})
    target = images[2]["hash"]
    path = f"/sourceimages/acme/{target}/meta/user"
    before = acme.request("GET", path).get_json()
    try:
        patch = {"text:caption": "quokka parade", "array_text:notes": ["one quokka"]}
        assert acme.request("PATCH", path, data=json.dumps(patch)).status_code == 204
        for field in ("user:text:caption", "user:array_text:notes"):
            body = get(acme, {field: "quokka"})
            assert (body["total"], [x["hash"] for x in body["items"]]) == (1, [target])
        assert acme.request("DELETE", f"/sourceimages/acme/{target}").status_code == 204
        assert get(acme, {"user:text:caption": "quokka"})["total"] == 0
        deleted = everything(acme, {"user:text:caption": "quokka", "deleted": "true"})
        assert [x["hash"] for x in deleted] == [target]
        restored = acme.request("POST", f"/sourceimages/acme/{target}/restore")
        assert restored.status_code == 200
        assert get(acme, {"user:text:caption": "quokka"})["total"] == 1
        name = acme.request("PUT", f"/sourceimages/acme/{target}/name", data='"Wombat.png"')
        assert name.status_code == 204
        assert [x["hash"] for x in everything(acme, {"name_text": "wombat"})] == [target]
    finally:
        acme.request("PUT", path, data=json.dumps(before))
        acme.request("PUT", f"/sourceimages/acme/{target}/name", data=json.dumps(images[2]["name"]))
    assert get(acme, {"user:text:caption": "quokka"})["total"] == 0
    assert get(acme, {"name_text": "wombat"})["total"] == 0


def test_words_search_follows_created(acme):
    """A changed ``created`` (the word index keeps it for its pages) reorders the page."""
    images = everything(acme, {"user:text:caption": "festival"})
    assert len(images) >= 2
    last = images[-1]
    app = acme.client.application
    with database(app) as db:
        db.execute(
            "UPDATE sourceimages SET created = ? WHERE hash = ?",
            ("2099-01-01T00:00:00+00:00", last["hash"]),
        )
    try:
        again = everything(acme, {"user:text:caption": "festival"})
        assert [x["hash"] for x in again] == [last["hash"]] + [x["hash"] for x in images[:-1]]
    finally:
        with database(app) as db:
            db.execute(
                "UPDATE sourceimages SET created = ? WHERE hash = ?",
                (last["created"].replace("Z", "+00:00"), last["hash"]),
            )
    assert everything(acme, {"user:text:caption": "festival"}) == images


@pytest.mark.parametrize("sort", ["user:int:stock desc", "user:int:stock,size desc"])
def test_user_sort_pages_skip_soft_deleted_images(acme, deleting, sort):
    """The value index walk (images with the field), then the images without it."""
    images = everything(acme, {})
    deleting([images[0]["hash"], images[4]["hash"]])
    live = [x for x in images if x["hash"] not in (images[0]["hash"], images[4]["hash"])]
    holding = [x for x in live if meta(x, "int:stock") is not None]
    without = [x for x in live if meta(x, "int:stock") is None]
    if sort == "user:int:stock desc":
        holding.sort(key=lambda x: (meta(x, "int:stock"), x["hash"]), reverse=True)
        without.sort(key=lambda x: x["hash"], reverse=True)
    else:
        holding.sort(key=lambda x: (meta(x, "int:stock"), -x["size"], _rev(x["hash"])))
        without.sort(key=lambda x: (-x["size"], _rev(x["hash"])))
    expected = [x["hash"] for x in holding + without]
    assert [x["hash"] for x in everything(acme, {"sort": sort})] == expected
    seen, cursor = [], None
    for _ in range(N):
        page = get(acme, {"sort": sort, "limit": 3, **({"offset": cursor} if cursor else {})})
        seen += [x["hash"] for x in page["items"]]
        cursor = page.get("cursor")
        if not cursor or not page["items"]:
            break
    assert seen == expected
    for offset in range(0, len(expected) + 3, 3):
        page = get(acme, {"sort": sort, "limit": 3, "offset": offset})["items"]
        assert [x["hash"] for x in page] == expected[offset : offset + 3]


def _rev(text: str) -> tuple[int, ...]:
    """A key that sorts text in descending order inside an ascending sort."""
    return tuple(-ord(c) for c in text)


@pytest.mark.parametrize("length", [600, 681, 682, 700])
def test_very_long_words_are_stored_and_searched_without_error(acme, catalog_backend, length):
    """A word of ~2,000 UTF-8 bytes (PostgreSQL keeps lexemes up to 2,047 bytes, and the
    word index's scope prefix takes a few): the upload and every search of it answer,
    and the other words of the same text are found."""
    app = acme.client.application
    other = Member(app, acme.client, f"longword{length}", ["admin"])
    word = "字" * length  # 3 bytes each
    caption = f"{word} ordinary"
    response = other.request(
        "POST",
        f"/sourceimages/{other.org}",
        data=multipart(
            png(seed=length), "x.png", fields={"meta_user[0]": {"text:caption": caption}}
        ),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    image_hash = response.get_json()["items"][0]["hash"]

    def found(value: str) -> list[str]:
        query = urlencode({"user:text:caption": value})
        listed = other.request("GET", f"/sourceimages/{other.org}?{query}")
        assert listed.status_code == 200, listed.get_data(as_text=True)
        return [x["hash"] for x in listed.get_json()["items"]]

    assert found("ordinary") == [image_hash]
    if catalog_backend == "sqlite" or length <= 681:
        # FTS5 keeps every word; PostgreSQL keeps words up to 2,047 bytes, less the word
        # index's scope prefix (2-4 bytes here): 1,800 and 2,043 bytes.
        assert found(word) == found(f"ordinary {word}") == found(f"{word[:-1]}*") == [image_hash]
    elif length == 682:
        # 2,046 bytes: a lexeme PostgreSQL keeps, too long with the prefix: left out of
        # the word index (the upload still succeeds), so no search finds it.
        assert found(word) == found(f"ordinary {word}") == found(f"{word[:-1]}*") == []
    else:
        # 2,100 bytes: PostgreSQL leaves the word out of documents and queries alike.
        assert found(word) == found(f"{word[:-1]}*") == []
        assert found(f"ordinary {word}") == [image_hash]


def test_postgresql_word_index_migration_indexes_existing_catalogs(postgres):
    """A catalog written before the word index (migration 1 only) gets its live images'
    words indexed when migration 5 runs at start-up; soft-deleted images' words stay
    searchable with ``deleted=true``."""
    from webapp.catalog.migrations import MIGRATIONS
    from webapp.catalog.postgres import PostgresBackend
    from webapp.search import parse_search

    url = postgres.empty_database()
    backend = PostgresBackend(url)
    try:
        first = MIGRATIONS["postgresql"][0]
        assert first.version == 1
        with database(backend) as db:
            db.run_script(first.script)
            db.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied TEXT NOT NULL)"
            )
            db.execute("INSERT INTO schema_migrations VALUES (1, 'v1', '2026-01-01')")
            db.execute(
                "INSERT INTO organizations (id, name, display_name, billing_email, created) "
                "VALUES ('o', 'o', 'o', 'b@o.example', '2020-01-01T00:00:00+00:00')"
            )
            for image_hash, caption, deleted in (
                ("a" * 40, "quiet lake", None),
                ("b" * 40, "lake at night", "2026-01-01T00:00:00+00:00"),
            ):
                db.execute(
                    "INSERT INTO sourceimages (organization_id, hash, short_hash, binary_hash, "
                    "blob_key, name, format, mimetype, size, width, height, user_metadata, "
                    "created, deleted_at) VALUES ('o', ?, ?, ?, 'k', 'Old.png', 'png', "
                    "'image/png', 1, 1, 1, ?, '2020-01-01T00:00:00+00:00', ?)",
                    (image_hash, image_hash[:6], image_hash, json.dumps({"text:t": caption}),
                     deleted),
                )  # fmt: skip
                db.index_image("o", image_hash)
        assert 5 in backend.migrate()
        assert backend.migrate() == []
        catalog = backend.open()
        try:
            for params, found in (
                ([("user:text:t", "lake")], ["a" * 40]),
                ([("user:text:t", "lake"), ("deleted", "true")], ["b" * 40]),
                ([("name_text", "old")], ["a" * 40]),
            ):
                page = catalog.image_search.search(parse_search(params), "o", restore_cutoff="2000")
                assert [x.hash for x in page.images] == found
                assert page.total == 1
        finally:
            catalog.close()
    finally:
        backend.close()
        postgres.drop(url)
