"""Search over source images (docs/search.md), checked against results computed here.

One module-wide catalog of small PNGs with a known mix of user, dynamic and static
metadata; every query's answer is compared with the same filter/sort applied to the
Python list of the uploaded images.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import close_app
from tests.webapp.catalogsql import database
from tests.webapp.conftest import Member
from tests.webapp.images import multipart, png
from webapp import create_app
from webapp.catalog import SqliteBackend
from webapp.catalog.migrations import MIGRATIONS

COLORS = ["red", "green", "blue", "Red"]
LABELS = ["mountain", "lake", "city", "snow"]
CAPTIONS = [
    "Dogs running on the beach",
    "A quiet mountain lake",
    "Old city at night",
    "Running shoes and a dog",
    "Snow over the lake",
]
NAMES = ["plan_a.png", "planxa.png", "50%_off.png", "50xxoff.png", "Photo one.png"]
BASE = datetime(2020, 3, 1, tzinfo=UTC)
N = 26


def user_metadata(i: int) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "double:price": i * 1.5,
        "date:shot": f"2020-01-{i + 1:02d}T10:00:00Z",
        "array:labels": [LABELS[j] for j in range(4) if (i >> j) & 1],
        "text:caption": CAPTIONS[i % 5],
        "array_text:notes": ["first note", f"note number {i}"],
        "latlon:where": f"47.{i},8.5",
    }
    if i % 5:
        meta["color"] = COLORS[i % 4]
    if i % 6:
        meta["int:n"] = (i * 7) % 10 - 3  # duplicates and negatives
    return meta


@pytest.fixture(scope="module")
def world(tmp_path_factory, catalog_backend, request):
    """(member of acme, the images as the API answers them, after metadata), on the
    module's catalog backend."""
    url = ""
    if catalog_backend == "postgresql":
        server = request.getfixturevalue("postgres")
        url = server.new_database()
        request.addfinalizer(lambda: server.drop(url))
    data_dir = tmp_path_factory.mktemp("search") / "data"
    app = create_app({"data_dir": str(data_dir), "database_url": url})
    request.addfinalizer(lambda: close_app(app))
    app.testing = True
    client = app.test_client()
    acme = Member(app, client, "acme", ["admin"])
    Member(app, client, "globex", ["admin"])
    fields_by_hash = {}
    for i in range(N):
        fields: dict[str, Any] = {"meta_user[0]": user_metadata(i)}
        if i % 3 == 0:
            fields["meta_dynamic[0][subject_area]"] = {"x": i, "y": 1, "width": 10 + i, "height": 5}
        if i % 4 == 0:
            fields["meta_dynamic[0][version]"] = {"text": f"v{i % 8}"}
        if i % 2:
            fields["meta_static[0]"] = {"camera": {"model": f"cam{i % 3}", "iso": 100 * i}}
        name = NAMES[i] if i < len(NAMES) else f"image-{i}.png"
        response = acme.request(
            "POST",
            "/sourceimages/acme",
            data=multipart(png(8, 6 + i % 4, seed=i), name, fields=fields),
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        fields_by_hash[response.get_json()["items"][0]["hash"]] = i
    # Spread creation times (pairs share a second, to exercise the hash tie-break).
    with database(app) as db:
        for image_hash, i in fields_by_hash.items():
            created = (BASE + timedelta(hours=i // 2)).isoformat()
            db.execute("UPDATE sourceimages SET created = ? WHERE hash = ?", (created, image_hash))
    # globex has an image too: it must never appear in acme's searches.
    other = Member(app, client, "globex", ["admin"])
    response = other.request(
        "POST",
        "/sourceimages/globex",
        data=multipart(png(seed=999), fields={"meta_user[0]": {"color": "red"}}),
    )
    assert response.status_code == 200
    images = get_all(acme, {})
    assert len(images) == N
    return acme, images


def get(acme: Member, params: dict[str, Any] | list[tuple[str, str]]):
    query = urlencode(params)
    return acme.request("GET", f"/sourceimages/acme?{query}")


def get_all(acme: Member, params: dict[str, Any]) -> list[dict[str, Any]]:
    response = get(acme, {**params, "limit": 2000})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["total"] == len(body["items"])
    return body["items"]


def hashes(items: list[dict[str, Any]]) -> list[str]:
    return [item["hash"] for item in items]


def default_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda x: (x["created"], x["hash"]), reverse=True)


def um(image: dict[str, Any], key: str) -> Any:
    return image["user_metadata"].get(key)


def jd(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- filters: every field and type --------------------------------------------------------

FILTERS: list[tuple[str, str, Callable[[dict[str, Any]], bool]]] = [
    ("user:str:color", "red", lambda x: um(x, "color") == "red"),
    ("user:str:color", "Red", lambda x: um(x, "color") == "Red"),
    ("user:str:color", "re*", lambda x: (um(x, "color") or "").startswith("re")),
    ("user:str:color", "[green,red]", lambda x: "green" <= (um(x, "color") or "") <= "red"),
    ("user:int:n", "4", lambda x: um(x, "int:n") == 4),
    ("user:int:n", "-3", lambda x: um(x, "int:n") == -3),
    ("user:int:n", "[0,4]", lambda x: um(x, "int:n") is not None and 0 <= um(x, "int:n") <= 4),
    ("user:int:n", "{0,4}", lambda x: um(x, "int:n") is not None and 0 < um(x, "int:n") < 4),
    ("user:int:n", "[0,4}", lambda x: um(x, "int:n") is not None and 0 <= um(x, "int:n") < 4),
    ("user:int:n", "[3,}", lambda x: um(x, "int:n") is not None and um(x, "int:n") >= 3),
    ("user:int:n", "{,0]", lambda x: um(x, "int:n") is not None and um(x, "int:n") <= 0),
    ("user:int:n", "[*,0}", lambda x: um(x, "int:n") is not None and um(x, "int:n") < 0),
    ("user:double:price", "4.5", lambda x: um(x, "double:price") == 4.5),
    ("user:double:price", "[3,7.5]", lambda x: 3 <= um(x, "double:price") <= 7.5),
    ("user:double:price", "{3,7.5}", lambda x: 3 < um(x, "double:price") < 7.5),
    (
        "user:date:shot",
        "'2020-01-05T10:00:00Z'",
        lambda x: um(x, "date:shot") == "2020-01-05T10:00:00Z",
    ),
    (
        "user:date:shot",
        "2020-01-05T11:00:00+01:00",  # the same instant in another zone
        lambda x: um(x, "date:shot") == "2020-01-05T10:00:00Z",
    ),
    (
        "user:date:shot",
        "['2020-01-05T10:00:00Z','2020-01-09T10:00:00Z'}",
        lambda x: jd("2020-01-05T10:00:00Z") <= jd(um(x, "date:shot")) < jd("2020-01-09T10:00:00Z"),
    ),
    (
        "user:date:shot",
        "{2020-01-20,}",
        lambda x: jd(um(x, "date:shot")) > jd("2020-01-20T00:00:00Z"),
    ),
    ("user:array:labels", "lake", lambda x: "lake" in um(x, "array:labels")),
    ("user:array:labels", "mo*", lambda x: any(v.startswith("mo") for v in um(x, "array:labels"))),
    ("user:latlon:where", "47.3,8.5", lambda x: um(x, "latlon:where") == "47.3,8.5"),
    # text: words (stemmed), not whole strings; every word must occur.
    ("user:text:caption", "dog", lambda x: "dog" in um(x, "text:caption").lower()),
    ("user:text:caption", "running dogs", lambda x: "running" in um(x, "text:caption").lower()),
    ("user:text:caption", "lake snow", lambda x: um(x, "text:caption") == CAPTIONS[4]),
    ("user:text:caption", "nig*", lambda x: "night" in um(x, "text:caption")),
    (
        "user:array_text:notes",
        "number 7",
        lambda x: f"note number {7}" in um(x, "array_text:notes"),
    ),
    ("user:array_text:notes", "first", lambda x: True),
    ("name", "plan_a.png", lambda x: x["name"] == "plan_a.png"),
    ("name", "plan_*", lambda x: x["name"].startswith("plan_")),
    ("name", "50%*", lambda x: x["name"].startswith("50%")),
    ("name", "image-1*", lambda x: x["name"].startswith("image-1")),
    ("name", "Photo*", lambda x: x["name"].startswith("Photo")),
    ("name", "photo*", lambda x: x["name"].startswith("photo")),  # case-sensitive
    ("name_text", "photo", lambda x: "photo" in x["name"].lower()),
    ("name_text", "off", lambda x: "off" in re.split(r"[^a-z0-9]+", x["name"].lower())),
    ("format", "png", lambda x: x["format"] == "png"),
    ("mimetype", "image/png", lambda x: x["mimetype"] == "image/png"),
    ("mimetype", "image/*", lambda x: True),
    ("width", "8", lambda x: x["width"] == 8),
    ("height", "[7,8]", lambda x: 7 <= x["height"] <= 8),
    ("height", "{6,9}", lambda x: 6 < x["height"] < 9),
    ("size", "[0,}", lambda x: True),
    (
        "created",
        "['2020-03-01T03:00:00Z','2020-03-01T05:00:00Z']",
        lambda x: "2020-03-01T03:00:00" <= x["created"][:19] <= "2020-03-01T05:00:00",
    ),
    (
        "created",
        "{'2020-03-01T03:00:00Z','2020-03-01T05:00:00Z'}",
        lambda x: "2020-03-01T03:00:00" < x["created"][:19] < "2020-03-01T05:00:00",
    ),
    (
        "created",
        "[2020-03-01T03:00:00.5Z,2020-03-01T05:00:00.5Z]",
        lambda x: "2020-03-01T03:00:00" < x["created"][:19] <= "2020-03-01T05:00:00",
    ),
    ("created", "2020-03-01T02:00:00Z", lambda x: x["created"] == "2020-03-01T02:00:00+00:00"),
    (
        "dynamic:int:subject_area:width",
        "[20,}",
        lambda x: x["dynamic_metadata"].get("subject_area", {}).get("width", 0) >= 20,
    ),
    (
        "dynamic:str:version:text",
        "v4",
        lambda x: x["dynamic_metadata"].get("version") == {"text": "v4"},
    ),
    (
        "static:str:camera:model",
        "cam1",
        lambda x: x["static_metadata"].get("camera", {}).get("model") == "cam1",
    ),
    (
        "static:int:camera:iso",
        "{500,1500]",
        lambda x: 500 < x["static_metadata"].get("camera", {}).get("iso", 0) <= 1500,
    ),
    (
        "static:double:camera:iso",
        "700",
        lambda x: x["static_metadata"].get("camera", {}).get("iso") == 700,
    ),
]


@pytest.mark.parametrize(
    ("key", "value", "predicate"), FILTERS, ids=[f"{k}={v}" for k, v, _ in FILTERS]
)
def test_filter(world, key, value, predicate):
    acme, images = world
    expected = default_order([x for x in images if predicate(x)])
    assert hashes(get_all(acme, {key: value})) == hashes(expected)


def test_filters_are_non_trivial(world):
    """Each filter above keeps some images and drops some (except the few catch-alls)."""
    _, images = world
    selective = [k for k, v, p in FILTERS if 0 < sum(map(p, images)) < len(images)]
    assert len(selective) >= len(FILTERS) - 8


def test_hash_fields(world):
    acme, images = world
    one = images[3]
    assert hashes(get_all(acme, {"hash": one["hash"]})) == [one["hash"]]
    assert hashes(get_all(acme, {"short_hash": one["short_hash"]})) == [one["hash"]]
    assert hashes(get_all(acme, {"binaryhash": one["binary_hash"]})) == [one["hash"]]
    prefix = one["hash"][:2]
    expected = [x for x in images if x["hash"].startswith(prefix)]
    assert hashes(get_all(acme, {"hash": prefix + "*"})) == hashes(expected)
    assert get(acme, {"hash": "XYZ"}).status_code == 400


def nonneg(x: dict[str, Any]) -> bool:
    return um(x, "int:n") is not None and um(x, "int:n") >= 0


def test_and_is_default_and_or_combines(world):
    acme, images = world
    params = {"user:str:color": "red", "user:int:n": "[0,}"}
    both = [x for x in images if um(x, "color") == "red" and nonneg(x)]
    either = [x for x in images if um(x, "color") == "red" or nonneg(x)]
    assert hashes(get_all(acme, params)) == hashes(default_order(both))
    assert hashes(get_all(acme, {**params, "operator": "or"})) == hashes(default_order(either))
    assert hashes(get_all(acme, {**params, "operator": "AND"})) == hashes(default_order(both))
    # Same field twice: both must hold.
    pairs = [("user:array:labels", "lake"), ("user:array:labels", "city")]
    expected = [x for x in images if {"lake", "city"} <= set(um(x, "array:labels"))]
    response = get(acme, [*pairs, ("limit", "2000")])
    assert hashes(response.get_json()["items"]) == hashes(default_order(expected))


def test_deleted_lists_only_deleted_images(world):
    acme, images = world
    victim = images[-1]
    assert acme.request("DELETE", f"/sourceimages/acme/{victim['hash']}").status_code == 204
    try:
        deleted = get_all(acme, {"deleted": "true"})
        assert hashes(deleted) == [victim["hash"]] and deleted[0]["deleted"] is True
        assert victim["hash"] not in hashes(get_all(acme, {}))
        assert hashes(get_all(acme, {"deleted": "true", "user:str:color": "nothing"})) == []
    finally:
        restored = acme.request("POST", f"/sourceimages/acme/{victim['hash']}/restore")
        assert restored.status_code == 200


# -- sort ----------------------------------------------------------------------------------


def _sort_key(field: str) -> Callable[[dict[str, Any]], Any]:
    columns = {"created", "size", "width", "height", "name", "format", "mimetype", "hash"}
    if field in columns:
        return lambda x: x[field]
    stored = {"user:int:n": "int:n", "user:str:color": "color", "user:date:shot": "date:shot",
              "user:double:price": "double:price"}[field]  # fmt: skip
    return lambda x: x["user_metadata"].get(stored)


def expected_order(images: list[dict[str, Any]], keys: list[tuple[str, bool]]):
    """Python's answer: stable sorts from the last key to the first, hash tie-break in the
    last key's direction, images without a user field last whatever the direction."""
    result = sorted(images, key=lambda x: x["hash"], reverse=keys[-1][1])
    for field, descending in reversed(keys):
        key = _sort_key(field)
        present = [x for x in result if key(x) is not None]
        missing = [x for x in result if key(x) is None]
        result = sorted(present, key=key, reverse=descending) + missing
    return result


SORTS = [
    ("created desc", [("created", True)]),
    ("created", [("created", False)]),
    ("size asc", [("size", False)]),
    ("height desc,size asc", [("height", True), ("size", False)]),
    ("height,name desc", [("height", False), ("name", True)]),
    ("user:int:n desc", [("user:int:n", True)]),
    ("user:int:n asc,created desc", [("user:int:n", False), ("created", True)]),
    (
        "user:str:color,user:double:price desc",
        [("user:str:color", False), ("user:double:price", True)],
    ),
    ("user:date:shot desc", [("user:date:shot", True)]),
    ("hash", [("hash", False)]),
    ("format DESC", [("format", True)]),
]


@pytest.mark.parametrize(("sort", "keys"), SORTS, ids=[s for s, _ in SORTS])
def test_sort(world, sort, keys):
    acme, images = world
    assert hashes(get_all(acme, {"sort": sort})) == hashes(expected_order(images, keys))


@pytest.mark.parametrize(("sort", "keys"), SORTS, ids=[s for s, _ in SORTS])
@pytest.mark.parametrize("limit", [1, 4, 7])
def test_cursor_paging_never_repeats_or_skips(world, sort, keys, limit):
    acme, images = world
    expected = hashes(expected_order(images, keys))
    seen: list[str] = []
    params: dict[str, Any] = {"sort": sort, "limit": limit}
    for _ in range(N + 2):
        body = get(acme, params).get_json()
        assert body["total"] == N
        seen += hashes(body["items"])
        if "next" not in body["links"]:
            break
        if "offset" in params:  # cursor paging continues with cursors in links.next
            assert body["links"]["next"]["href"].endswith("offset=" + body["cursor"])
        params = {"sort": sort, "limit": limit, "offset": body["cursor"]}
    assert seen == expected


def test_cursor_with_filter_and_next_link(world):
    acme, images = world
    expected = hashes(default_order([x for x in images if um(x, "int:n") is not None]))
    body = get(acme, {"user:int:n": "[-100,100]", "limit": 3}).get_json()
    seen = hashes(body["items"])
    while "next" in body["links"]:
        body = acme.request("GET", body["links"]["next"]["href"]).get_json()
        seen += hashes(body["items"])
    assert seen == expected
    # Offset pages from the start, then a cursor continues from any page.
    first = get(acme, {"limit": 5}).get_json()
    rest = get(acme, {"limit": 2000, "offset": first["cursor"]}).get_json()
    assert hashes(first["items"]) + hashes(rest["items"]) == hashes(default_order(images))


def test_offset_paging_and_links(world):
    acme, images = world
    expected = hashes(default_order(images))
    seen: list[str] = []
    for offset in range(0, N, 4):
        body = get(acme, {"limit": 4, "offset": offset, "user:int:n": "[-9,9]"}).get_json()
        seen += hashes(body["items"])
    filtered = [x for x in default_order(images) if um(x, "int:n") is not None]
    assert seen == hashes(filtered)
    body = get(acme, {"limit": 4, "offset": 8}).get_json()
    assert hashes(body["items"]) == expected[8:12]
    assert body["links"]["prev"]["href"] == "/sourceimages/acme?limit=4&offset=4"
    assert body["links"]["next"]["href"] == "/sourceimages/acme?limit=4&offset=12"
    first = get(acme, {"limit": 4, "offset": 2, "format": "png"}).get_json()
    assert first["links"]["prev"]["href"] == "/sourceimages/acme?format=png&limit=4"
    last = get(acme, {"limit": 4, "offset": N - 2}).get_json()
    assert "next" not in last["links"] and len(last["items"]) == 2
    past = get(acme, {"limit": 4, "offset": N + 10}).get_json()
    assert past["items"] == [] and past["total"] == N


def test_limit_zero_answers_only_total(world):
    acme, images = world
    body = get(acme, {"limit": 0, "user:str:color": "red"}).get_json()
    assert body["items"] == [] and body["total"] == sum(um(x, "color") == "red" for x in images)
    assert "cursor" not in body and body["links"] == {}
    assert get(acme, {}).get_json()["total"] == N
    assert len(get(acme, {}).get_json()["items"]) == N  # default limit 100


@pytest.mark.parametrize("limit", ["2001", "-1", "abc", "1.5", "99999999999999"])
def test_bad_limits(world, limit):
    acme, _ = world
    assert get(acme, {"limit": limit}).status_code == 400


def test_cursor_of_another_sort_is_refused(world):
    acme, _ = world
    cursor = get(acme, {"limit": 2, "sort": "size"}).get_json()["cursor"]
    response = get(acme, {"limit": 2, "sort": "name", "offset": cursor})
    assert response.status_code == 400
    assert "sort" in response.get_json()["error"]["message"]


# -- facets --------------------------------------------------------------------------------


def test_facets(world):
    acme, images = world
    body = get(acme, {"facets": "user:array:labels,format", "limit": 1}).get_json()
    counts = Counter(label for x in images for label in um(x, "array:labels"))
    expected = sorted(({"value": v, "count": c} for v, c in counts.items()),
                      key=lambda f: (-f["count"], f["value"]))  # fmt: skip
    assert body["facets"]["user:array:labels"] == expected
    assert body["facets"]["format"] == [{"value": "png", "count": N}]
    assert len(body["items"]) == 1


def test_facets_follow_the_filter(world):
    acme, images = world
    response = get(acme, [("facets", "user:str:color"), ("user:int:n", "[0,}"), ("limit", "0")])
    matches = [x for x in images if nonneg(x)]
    counts = Counter(um(x, "color") for x in matches if um(x, "color") is not None)
    expected = sorted(({"value": v, "count": c} for v, c in counts.items()),
                      key=lambda f: (-f["count"], f["value"]))  # fmt: skip
    assert response.get_json()["facets"] == {"user:str:color": expected}


@pytest.mark.parametrize("facet", ["user:int:n", "size", "user:text:caption", "nope", "user:x"])
def test_facets_only_on_string_fields(world, facet):
    acme, _ = world
    assert get(acme, {"facets": facet}).status_code == 400


# -- malformed and hostile input -------------------------------------------------------------

BAD = [
    {"unknown": "x"},
    {"user:color": "red"},
    {"user:bogus:color": "red"},
    {"user:str:Color": "red"},
    {"user:str:" + "a" * 55: "x"},
    {"dynamic:str:": "x"},
    {"dynamic:float:subject_area:x": "1"},
    {"static:str:a:b-c": "x"},
    {"size": "big"},
    {"size": "[1,2"},
    {"size": "[1,2,3]"},
    {"size": "[,]"},
    {"size": "1*"},
    {"size": "99999999999999999999"},
    {"user:int:n": "1.5"},
    {"user:double:price": "nan"},
    {"user:double:price": "inf"},
    {"user:date:shot": "yesterday"},
    {"user:date:shot": "2020-02-30T00:00:00Z"},
    {"created": "2020-01-01T00:00:00.5Z"},
    {"user:text:caption": "!!!"},
    {"user:text:caption": "[a,b]"},
    {"user:latlon:where": "[1,2]"},
    {"user:latlon:where": "100,200"},
    {"hash": "[a,b]"},
    {"sort": "size sideways"},
    {"sort": "nope"},
    {"sort": "user:array:labels"},
    {"sort": "size,size"},
    {"sort": ","},
    {"sort": "a,b,c,d,e,f"},
    {"operator": "xor"},
    {"deleted": "maybe"},
    {"offset": "not-a-cursor!"},
    {"offset": "eyJzIjoiY3JlYXRlZDpkZXNjIiwidiI6W3siYSI6MX0sImgiXX0"},
    {"name": "x" * 1001},
    {"name": "a\x00b"},
]


@pytest.mark.parametrize("params", BAD, ids=[str(i) for i in range(len(BAD))])
def test_malformed_searches_are_400(world, params):
    acme, _ = world
    response = get(acme, params)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == 400 and error["message"]


def _deep(n: int) -> str:
    return "[" * n + "]" * n


HOSTILE = [
    ("name", "a' OR 1=1--"),
    ("name", "a' OR '1'='1"),
    ("name", "x%"),
    ("name", "_*"),
    ("name", "%*"),
    ("name", "\\*"),
    ("user:str:color", "red' OR 1=1--"),
    ("user:str:color", 'red") OR (1=1'),
    ("user:str:x", "1) OR (1=1=3"),
    ("user:int:x", "1) OR (1=1=3"),
    ("size", "[1,2]);DROP TABLE sourceimages;--"),
    ("size", "[1,2]"),
    ("user:text:caption", 'dog" OR "cat'),
    ("user:text:caption", "NEAR(dog lake) AND caption:*"),
    ("user:text:caption", "dog*"),
    ("name_text", "-photo ^one"),
    ("user:str:color", "ø日本語🎉"),
    ("user:array:labels", "雪*"),
    ("name", "x" * 1000),
    ("user:str:color", _deep(400)),
    ("user:int:n", "[" + "9" * 19 + ",}"),
    ("offset", "A" * 19_000),
]


@pytest.mark.parametrize(("key", "value"), HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_values_are_400_or_correct(world, key, value):
    acme, images = world
    response = get(acme, {key: value, "limit": 2000})
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 200:
        # Nothing above matches an image literally, except the plain catch-alls checked here.
        got = hashes(response.get_json()["items"])
        if (key, value) in (("user:text:caption", "dog*"),):
            assert got == hashes(
                default_order([x for x in images if "dog" in um(x, "text:caption").lower()])
            )
        elif (key, value) == ("name_text", "-photo ^one"):
            assert got == hashes([x for x in images if x["name"] == "Photo one.png"])
        elif (key, value) == ("name", "%*"):
            assert got == hashes(default_order([x for x in images if x["name"].startswith("%")]))
        else:
            assert got == [] or key == "user:text:caption"
    # The catalog is intact afterwards.
    assert get(acme, {"limit": 0}).get_json()["total"] == N


def test_hostile_text_search_is_literal(world):
    acme, images = world
    body = get(acme, {"user:text:caption": 'dog" OR "cat', "limit": 100}).get_json()
    # Words, each required: dog AND or AND cat → no caption has all three.
    assert body["items"] == []


def test_other_organizations_never_show(world):
    acme, images = world
    assert get(acme, {"user:str:color": "red", "limit": 0}).get_json()["total"] == sum(
        um(x, "color") == "red" for x in images
    )
    body = get(acme, {"facets": "user:str:color", "limit": 0}).get_json()
    assert sum(f["count"] for f in body["facets"]["user:str:color"]) == sum(
        um(x, "color") is not None for x in images
    )


def test_index_follows_metadata_changes(world):
    acme, images = world
    target = images[0]["hash"]
    path = f"/sourceimages/acme/{target}/meta/user"
    before = acme.request("GET", path).get_json()
    try:
        patch = {"color": "violet", "text:caption": "zebra crossing"}
        assert acme.request("PATCH", path, data=json.dumps(patch)).status_code == 204
        assert hashes(get_all(acme, {"user:str:color": "violet"})) == [target]
        assert hashes(get_all(acme, {"user:text:caption": "zebra"})) == [target]
        assert acme.request("DELETE", path).status_code == 204
        assert get_all(acme, {"user:str:color": "violet"}) == []
        assert get_all(acme, {"user:text:caption": "zebra"}) == []
        name = acme.request("PUT", f"/sourceimages/acme/{target}/name", data='"Quokka.png"')
        assert name.status_code == 204
        assert hashes(get_all(acme, {"name_text": "quokka"})) == [target]
    finally:
        acme.request("PUT", path, data=json.dumps(before))
        acme.request("PUT", f"/sourceimages/acme/{target}/name", data=json.dumps(images[0]["name"]))
    assert hashes(get_all(acme, {"name_text": "quokka"})) == []


def test_startup_backfills_images_written_before_the_index(tmp_path):
    """Rows without index entries (a catalog from before the search index, and so from
    before versioned migrations) are indexed when migration 1 runs at start-up."""
    backend = SqliteBackend(tmp_path / "catalog.db")
    backend.migrate()
    with database(backend) as db:
        db.execute(
            "INSERT INTO organizations (id, name, display_name, billing_email, created) "
            "VALUES ('o', 'o', 'o', 'b@o.example', '2020-01-01T00:00:00+00:00')"
        )
        db.execute(
            "INSERT INTO sourceimages (organization_id, hash, short_hash, binary_hash, "
            "blob_key, name, format, mimetype, size, width, height, user_metadata, created) "
            "VALUES ('o', ?, 'aaaaaa', ?, 'k', 'Old Lake.png', 'png', 'image/png', 1, 1, 1, "
            '\'{"int:n": 5, "text:t": "quiet lake"}\', \'2020-01-01T00:00:00+00:00\')',
            ("a" * 40, "b" * 40),
        )
        db.execute("DELETE FROM sourceimage_values")  # as if written before the index
        db.execute("DROP TABLE schema_migrations")  # ... by a release before migrations
    assert backend.migrate() == [m.version for m in MIGRATIONS["sqlite"]]
    with database(backend) as db:
        rows = db.rows(
            "SELECT source, field, type, value_text, value_num FROM sourceimage_values "
            "ORDER BY source, field"
        )
        assert [tuple(r) for r in rows] == [
            ("name", "name", "text", "Old Lake.png", None),
            ("user", "n", "int", None, 5),
            ("user", "t", "text", "quiet lake", None),
        ]
        fts = db.rows(
            "SELECT rowid >> 32 AS k FROM sourceimage_words WHERE sourceimage_words MATCH 'lake'"
        )
        key = db.row("SELECT id FROM sourceimage_keys WHERE hash = ?", ("a" * 40,))
        assert key is not None
        assert [r["k"] for r in fts] == [key["id"], key["id"]]
    assert backend.migrate() == []  # up to date: nothing applied again
    with database(backend) as db:
        assert len(db.rows("SELECT * FROM sourceimage_values")) == 3


@pytest.mark.parametrize("sort", ["user:int:n desc", "user:str:color,created desc"])
@pytest.mark.parametrize(
    "filters",
    [{}, {"format": "png"}, {"user:double:price": "[0,3]"}, {"user:double:price": "[0,0]"}],
)
def test_user_sort_offset_pages(world, sort, filters):
    """Offset pages of a user-field sort, across the images without the field (the index
    walk and its continuation; a selective filter takes the per-image path)."""
    acme, images = world
    keys = {
        "user:int:n desc": [("user:int:n", True)],
        "user:str:color,created desc": [("user:str:color", False), ("created", True)],
    }[sort]
    matching = hashes(get_all(acme, {**filters, "sort": sort}))
    expected = [h for h in hashes(expected_order(images, keys)) if h in set(matching)]
    assert matching == expected
    for limit in (3, 5):
        seen: list[str] = []
        for offset in range(0, len(expected) + limit, limit):
            body = get(acme, {**filters, "sort": sort, "limit": limit, "offset": offset})
            seen += hashes(body.get_json()["items"])
        assert seen == expected


WALK_SORTS = [
    "format,created desc",  # every image is a PNG: one tie group
    "mimetype desc",
    "height desc,size asc",  # four heights
    "created desc,size asc",  # pairs share a second
    "created",
    "width,user:int:n desc",
    "size",
    "name desc",
]
WALK_FILTERS: list[dict[str, str]] = [
    {},
    {"format": "png"},
    {"user:int:n": "[-3,3]"},
    {"user:str:color": "red", "name": "plan*", "operator": "or"},
    {"user:array:labels": "lake", "height": "[7,8]", "operator": "or"},
]


@pytest.mark.parametrize("sort", WALK_SORTS)
@pytest.mark.sqlite_only
@pytest.mark.parametrize("filters", WALK_FILTERS, ids=range(len(WALK_FILTERS)))
def test_sort_index_walk_pages_like_the_general_plan(world, sort, filters, monkeypatch):
    """Walking the first sort column's index (ties on it ordered by the remaining keys and
    the hash) gives the same pages, cursors and ``more`` as SQLite's own plan, by offset and
    by cursor, with filters of every selectivity."""
    from webapp.catalog.imagesearch import _SORT_INDEXES, SqliteImageSearch, compile_search
    from webapp.search import encode_cursor, parse_search

    acme, images = world
    catalog = acme.client.application.extensions["cropstack.catalog"].open()
    org_id = catalog.accounts.org_by_name("acme").id
    walked: list[str | None] = []

    def forced(self: SqliteImageSearch, query: Any, total: int) -> str | None:
        index = None if mode == "general" else _SORT_INDEXES[query.sort[0][0]]
        walked.append(index)
        return index

    def pages(params: list[tuple[str, str]]) -> list[Any]:
        answers = []
        for limit in (1, 3, 7, 100):
            for offset in (0, 2, 5):
                search = parse_search([*params, ("limit", str(limit)), ("offset", str(offset))])
                result = catalog.image_search.run(
                    compile_search(search, org_id, restore_cutoff="2000")
                )
                answers.append((result.total, hashes(result.images), result.keys, result.more))
            # Cursor paging to the end, three images per page.
            search = parse_search([*params, ("limit", "3")])
            seen: list[Any] = []
            for _ in range(N + 2):
                result = catalog.image_search.run(
                    compile_search(search, org_id, restore_cutoff="2000")
                )
                seen.append((hashes(result.images), result.keys, result.more))
                if not result.more:
                    break
                cursor = encode_cursor(search.sort_signature(), result.keys[-1])
                search = parse_search([*params, ("limit", "3"), ("offset", cursor)])
            answers.append(seen)
        return answers

    params = [*filters.items(), ("sort", sort)]
    monkeypatch.setattr(SqliteImageSearch, "_sort_walk", forced)
    try:
        mode = "general"
        expected = pages(params)
        mode = "walk"
        walked.clear()
        assert pages(params) == expected
        assert walked and all(walked)  # the walk was taken every time
    finally:
        catalog.close()
