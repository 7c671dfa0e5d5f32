"""User metadata routes: types by prefix, field names, locks, the hash, upload metadata,
and the recorded rokka.js traffic for add/replace/delete."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_recording
from tests.webapp.images import multipart, png


def upload(member, seed: int, fields: dict | None = None) -> dict:
    response = member.request(
        "POST", f"/sourceimages/{member.org}", data=multipart(png(8, 8, seed=seed), fields=fields)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"][0]


def meta_path(member, image: dict) -> str:
    return f"/sourceimages/{member.org}/{image['hash']}/meta/user"


@pytest.mark.parametrize(
    ("key", "value", "stored_key", "stored"),
    [
        ("plain", "text", "plain", "text"),
        ("str:plain", "text", "plain", "text"),
        ("text:story", "Once upon a time", "text:story", "Once upon a time"),
        ("int:count", -(2**63), "int:count", -(2**63)),
        ("int:count", 2**63 - 1, "int:count", 2**63 - 1),
        ("double:ratio", 1.25, "double:ratio", 1.25),
        ("double:ratio", 3, "double:ratio", 3.0),
        ("date:shot", "2017-01-01T10:00:00Z", "date:shot", "2017-01-01T10:00:00Z"),
        ("date:shot", "2017-01-01T12:00:00.250+02:00", "date:shot", "2017-01-01T10:00:00.25Z"),
        ("date:shot", "2017-01-01", "date:shot", "2017-01-01T00:00:00Z"),
        ("latlon:where", "47.38,8.52", "latlon:where", "47.38,8.52"),
        ("latlon:where", " -47.38 , -8.52 ", "latlon:where", "-47.38,-8.52"),
        ("array:labels", ["a", "b"], "array:labels", ["a", "b"]),
        ("array_text:notes", [], "array_text:notes", []),
        ("a" * 54, "max length name", "a" * 54, "max length name"),
        ("unicode", "ø日本語🎉", "unicode", "ø日本語🎉"),
    ],
)
def test_types_are_validated_and_keys_keep_their_prefix(acme, key, value, stored_key, stored):
    image = upload(acme, 1)
    path = meta_path(acme, image)
    assert acme.request("PATCH", path, data=json.dumps({key: value})).status_code == 204
    assert acme.request("GET", path).get_json() == {stored_key: stored}
    assert acme.request("GET", f"{path}/{stored_key}").get_json() == stored
    # The single-field route validates the same way.
    assert acme.request("DELETE", path).status_code == 204
    assert acme.request("PUT", f"{path}/{key}", data=json.dumps(value)).status_code == 204
    assert acme.request("GET", path).get_json() == {stored_key: stored}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("plain", 5),
        ("plain", ["a"]),
        ("plain", {"nested": "object"}),
        ("plain", True),
        ("plain", "x" * 10_001),
        ("plain", "a\x00b"),
        ("text:story", 1),
        ("int:count", 1.5),
        ("int:count", "5"),
        ("int:count", True),
        ("int:count", 2**63),
        ("double:ratio", "1.5"),
        ("double:ratio", 1e301),
        ("date:shot", "yesterday"),
        ("date:shot", "2017-02-30T00:00:00Z"),
        ("date:shot", 1483228800),
        ("latlon:where", "91,0"),
        ("latlon:where", "1;2"),
        ("latlon:where", [47, 8]),
        ("array:labels", "a"),
        ("array:labels", [1, 2]),
        ("array:labels", ["a"] * 1001),
        ("array_text:notes", [["deep"]]),
    ],
)
def test_a_value_not_fitting_its_type_is_400_naming_the_field(acme, key, value):
    image = upload(acme, 2)
    path = meta_path(acme, image)
    response = acme.request("PATCH", path, data=json.dumps({key: value}))
    assert response.status_code == 400
    assert key.split(":")[-1] in response.get_json()["error"]["message"]
    assert acme.request("PUT", f"{path}/{key}", data=json.dumps(value)).status_code == 400
    assert acme.request("GET", path).get_json() == {}


@pytest.mark.parametrize(
    "key", ["Bad", "a-b", "a" * 55, "", "location:x", "int:", "int:str:x", "ä", "a b"]
)
def test_bad_field_names_are_400(acme, key):
    image = upload(acme, 3)
    response = acme.request("PATCH", meta_path(acme, image), data=json.dumps({key: "x"}))
    assert response.status_code == 400


def test_a_name_is_one_field_whatever_its_type(acme):
    image = upload(acme, 4, {"meta_user[0]": {"x": "text", "keep": "me"}})
    path = meta_path(acme, image)
    assert acme.request("PATCH", path, data='{"int:x": 5}').status_code == 204
    assert acme.request("GET", path).get_json() == {"int:x": 5, "keep": "me"}
    # A bare name finds the field under any type; a prefixed one only under that type.
    assert acme.request("GET", f"{path}/x").get_json() == 5
    assert acme.request("GET", f"{path}/int:x").get_json() == 5
    assert acme.request("GET", f"{path}/double:x").status_code == 404
    assert acme.request("PATCH", path, data='{"x": null}').status_code == 204
    assert acme.request("GET", path).get_json() == {"keep": "me"}
    response = acme.request("PATCH", path, data='{"x": "a", "int:x": 1}')
    assert response.status_code == 400 and "more than once" in response.get_data(as_text=True)


def test_put_replaces_patch_merges_delete_removes(acme):
    image = upload(acme, 5, {"meta_user[0]": {"a": "1", "b": "2"}})
    path = meta_path(acme, image)
    assert acme.request("PATCH", path, data='{"b": null, "int:c": 3}').status_code == 204
    assert acme.request("GET", path).get_json() == {"a": "1", "int:c": 3}
    assert acme.request("PUT", path, data='{"z": "only", "gone": null}').status_code == 204
    assert acme.request("GET", path).get_json() == {"z": "only"}
    assert acme.request("PUT", f"{path}/bare", data="bare text").status_code == 204
    assert acme.request("GET", f"{path}/bare").get_json() == "bare text"
    assert acme.request("PUT", f"{path}/nul", data="null").status_code == 400
    assert acme.request("DELETE", f"{path}/bare").status_code == 204
    assert acme.request("DELETE", f"{path}/bare").status_code == 404
    assert acme.request("DELETE", path).status_code == 204
    assert acme.request("GET", path).get_json() == {}
    assert acme.request("PATCH", path, data="[1]").status_code == 400
    assert acme.request("PATCH", path, data="[" * 100_000).status_code == 400


def test_user_metadata_never_changes_the_hash(acme):
    image = upload(acme, 6)
    path = meta_path(acme, image)
    for body in ('{"a": "b"}', '{"int:n": 1, "array:l": ["x"]}'):
        assert acme.request("PATCH", path, data=body).status_code == 204
    after = acme.request("GET", f"/sourceimages/acme/{image['hash']}").get_json()
    assert after["hash"] == image["hash"] and after["short_hash"] == image["short_hash"]
    assert after["user_metadata"] == {"a": "b", "int:n": 1, "array:l": ["x"]}
    assert len(acme.request("GET", "/sourceimages/acme").get_json()["items"]) == 1


def test_locked_image_refuses_changes(acme):
    image = upload(acme, 7, {"meta_user[0]": {"a": "b"}})
    path = meta_path(acme, image)
    locked = acme.request("PUT", f"/sourceimages/acme/{image['hash']}/options/locked", data="true")
    assert locked.status_code == 200
    for method, url, body in [
        ("PATCH", path, '{"c": "d"}'),
        ("PUT", path, '{"c": "d"}'),
        ("DELETE", path, None),
        ("PUT", f"{path}/c", '"d"'),
        ("DELETE", f"{path}/a", None),
    ]:
        response = acme.request(method, url, data=body)
        assert response.status_code == 409, (method, url)
        assert response.get_json()["error"]["code"] == 409
    assert acme.request("GET", path).get_json() == {"a": "b"}
    # Re-uploading with metadata is a change too.
    again = acme.request(
        "POST",
        "/sourceimages/acme",
        data=multipart(png(8, 8, seed=7), fields={"meta_user[0]": {"c": "d"}}),
    )
    assert again.status_code == 409


def test_upload_metadata_goes_through_the_same_validation(acme):
    ok = upload(acme, 8, {"meta_user[0]": {"str:a": "x", "int:n": 2, "date:d": "2017-01-01"}})
    assert ok["user_metadata"] == {"a": "x", "int:n": 2, "date:d": "2017-01-01T00:00:00Z"}
    for bad in ({"int:n": "2"}, {"Bad": "x"}, {"array:l": "x"}, {"a": None}):
        response = acme.request(
            "POST",
            "/sourceimages/acme",
            data=multipart(png(8, 8, seed=9), fields={"meta_user[0]": bad}),
        )
        assert response.status_code == 400, bad
        assert "meta_user[0]" in response.get_json()["error"]["message"]
    # A re-upload merges by name: int:n replaces n.
    again = upload(acme, 8, {"meta_user[0]": {"n": "text now"}})
    assert again["user_metadata"] == {"a": "x", "n": "text now", "date:d": "2017-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    "name",
    ["sourceimages_metadata_add", "sourceimages_metadata_replace", "sourceimages_metadata_delete"],
)
def test_recorded_traffic(acme, name):
    """The recorded requests, replayed on a stand-in image: same statuses, empty bodies."""
    image = upload(acme, 10, {"meta_user[0]": {"delete_this": "x", "somefield": "old"}})
    path = meta_path(acme, image)
    for exchange in load_recording(name):
        body = exchange["body"]
        data = json.dumps(body) if isinstance(body, dict) else body
        response = acme.request(exchange["method"], path, data=data)
        assert response.status_code == exchange["status"]
        assert response.get_data(as_text=True) == exchange["response"]
        after = acme.request("GET", path).get_json()
        if exchange["method"] == "DELETE":
            assert after == {}
        else:
            expected = {"delete_this": "x", "somefield": "old"}
            expected.update(body)
            expected = {k: v for k, v in expected.items() if v is not None}
            assert after == expected


def test_concurrent_patches_lose_nothing(acme):
    """Eight clients PATCH eight different fields of one image at once: each change is
    read, merged and written in one unit of work, so all eight are kept."""
    from concurrent.futures import ThreadPoolExecutor

    image = upload(acme, seed=77)
    path = meta_path(acme, image)
    app = acme.client.application

    def patch(i: int) -> int:
        client = app.test_client()
        body = json.dumps({f"field_{i}": f"value {i}"})
        return client.patch(path, data=body, headers=acme.headers).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(patch, range(8))) == {204}
    stored = acme.request("GET", path).get_json()
    assert stored == {f"field_{i}": f"value {i}" for i in range(8)}
