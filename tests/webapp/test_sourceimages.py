"""Source image routes through the Flask test client: success and error statuses."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from tests.webapp.images import multipart, png
from webapp.metadata import identity_hash

IMAGE_KEYS = {
    "organization",
    "hash",
    "short_hash",
    "binary_hash",
    "created",
    "name",
    "mimetype",
    "format",
    "size",
    "width",
    "height",
    "link",
    "user_metadata",
    "dynamic_metadata",
    "static_metadata",
    "opaque",
    "animated",
    "protected",
    "locked",
}


def upload(member, data: bytes, name: str = "image.png", **kw):
    response = member.request(
        "POST", f"/sourceimages/{member.org}", data=multipart(data, name, **kw)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["total"] == 1
    return body["items"][0]


def count_rows(app) -> int:
    from tests.webapp.catalogsql import database

    with database(app) as db:
        return int(db.rows("SELECT COUNT(*) AS n FROM sourceimages")[0]["n"])


# -- create ------------------------------------------------------------------------------


def test_upload_cartman_reproduces_rokka_hash(acme, cartman):
    image = upload(acme, cartman, "cartman.svg")
    assert image["binary_hash"] == hashlib.sha1(cartman).hexdigest()
    assert image["binary_hash"] == "498fed612f01199cd6702f5effe5fa7bb67e44f4"
    assert image["hash"] == "063c3dce6a528d8944a63185bd4c7b161454ee4f"
    assert image["short_hash"] == "063c3d"
    assert set(image) == IMAGE_KEYS
    assert (image["width"], image["height"], image["format"]) == (104, 97, "svg")
    assert image["mimetype"] == "image/svg+xml"
    assert image["opaque"] is False
    assert image["link"] == f"/sourceimages/acme/{image['hash']}"


@pytest.mark.parametrize("field", ["filedata", "filename", "f", "anything"])
def test_upload_accepts_any_file_field_name(acme, field):
    image = upload(acme, png(seed=3), "a.png", field=field)
    assert image["format"] == "png" and image["width"] == 32


def test_upload_several_files_matched_by_order(acme):
    form = {
        "filedata": [(io.BytesIO(png(seed=1)), "one.png"), (io.BytesIO(png(seed=2)), "two.png")],
        "meta_user[0]": json.dumps({"n": "first"}),
        "meta_user[1]": json.dumps({"n": "second"}),
        "meta_dynamic[1][subject_area]": json.dumps({"x": 1, "y": 2}),
        "optimize_source": "true",
    }
    response = acme.request("POST", "/sourceimages/acme", data=form)
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [i["name"] for i in items] == ["one.png", "two.png"]
    assert items[0]["user_metadata"] == {"n": "first"}
    assert items[1]["user_metadata"] == {"n": "second"}
    assert items[1]["dynamic_metadata"] == {
        "subject_area": {"width": 1, "height": 1, "x": 1, "y": 2}
    }
    assert items[0]["dynamic_metadata"] == {}


def test_upload_double_encoded_metadata_as_rokka_js(acme):
    dynamic = {"subject_area": {"x": 3, "y": 4, "width": 5, "height": 6}}
    image = upload(
        acme,
        png(seed=4),
        fields={
            "meta_user[0]": json.dumps(json.dumps({"foo": "bar"})),
            "meta_dynamic[0]": json.dumps(json.dumps(dynamic)),
        },
    )
    assert image["user_metadata"] == {"foo": "bar"}
    assert image["dynamic_metadata"] == {"subject_area": {"width": 5, "height": 6, "x": 3, "y": 4}}
    binary = hashlib.sha1(png(seed=4)).hexdigest()
    assert image["hash"] == identity_hash(binary, image["dynamic_metadata"], False)
    assert image["hash"] != identity_hash(binary, {}, False)


def test_upload_protected_option_changes_hash(acme):
    data = png(seed=5)
    plain = upload(acme, data)
    protected = upload(acme, data, fields={"options[0]": {"protected": True}})
    assert protected["protected"] is True and plain["protected"] is False
    assert protected["hash"] != plain["hash"]
    assert protected["binary_hash"] == plain["binary_hash"]


def test_reupload_returns_existing_and_keeps_metadata(acme, app):
    data = png(seed=6)
    first = upload(acme, data, "first.png", fields={"meta_user[0]": {"a": "1", "b": "2"}})
    again = upload(acme, data, "second.png", fields={"meta_user[0]": {"b": "3"}})
    assert again["hash"] == first["hash"]
    assert again["created"] == first["created"]
    assert again["user_metadata"] == {"a": "1", "b": "3"}
    plain = upload(acme, data, "third.png")
    assert plain["user_metadata"] == {"a": "1", "b": "3"}
    assert count_rows(app) == 1


def test_upload_without_file_is_400(acme):
    response = acme.request("POST", "/sourceimages/acme", data={"meta_user[0]": "{}"})
    assert response.status_code == 400
    response = acme.request(
        "POST",
        "/sourceimages/acme",
        data=json.dumps({"filedata": "x"}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == 400


@pytest.mark.parametrize(
    "fields",
    [
        {"meta_user[0]": "{not json"},
        {"meta_user[0]": "[1, 2]"},
        {"meta_user[0]": json.dumps({"Bad-Name": 1})},
        {"meta_dynamic[0][subject_area]": json.dumps({"x": -1, "y": 0})},
        {"meta_dynamic[0][nonsense]": json.dumps({"x": 1})},
        {"meta_dynamic[0]": json.dumps({"crop_area": {"x": 1, "y": 1}})},
        {"options[0]": json.dumps({"protected": "yes"})},
        {"meta_static[0]": "5"},
    ],
)
def test_upload_bad_metadata_is_400_and_stores_nothing(acme, app, fields):
    response = acme.request("POST", "/sourceimages/acme", data=multipart(png(), fields=fields))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert count_rows(app) == 0


def test_upload_needs_upload_permission(member):
    reader = member("acme", ["read"])
    response = reader.request("POST", "/sourceimages/acme", data=multipart(png()))
    assert response.status_code == 403
    uploader = member("acme", ["upload"])
    assert uploader.request("POST", "/sourceimages/acme", data=multipart(png())).status_code == 200


def test_missing_or_bad_key_is_403(client, acme):
    response = client.get("/sourceimages/acme")
    assert response.status_code == 403
    assert response.get_json()["error"]["invalid_authentication"] is True
    response = client.get("/sourceimages/acme", headers={"Api-Key": "nope"})
    assert response.status_code == 403


# -- get / short hash / list ---------------------------------------------------------------


def test_get_by_hash_short_hash_and_prefix(acme):
    image = upload(acme, png(seed=7))
    for ref in (image["hash"], image["short_hash"], image["hash"][:10]):
        response = acme.request("GET", f"/sourceimages/acme/{ref}")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.get_json() == image


@pytest.mark.parametrize(
    "ref", ["xyz", "abc", "ABCDEF0123", "0" * 41, "abcdef.jpg", "..%2F..%2Fetc%2Fpasswd", "ffffff"]
)
def test_get_bad_or_unknown_ref_is_404(acme, ref):
    upload(acme, png(seed=8))
    response = acme.request("GET", f"/sourceimages/acme/{ref}")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == 404


def test_short_hash_extends_on_collision_and_never_changes(acme, app):
    from webapp.catalog.records import NewImage

    first = upload(acme, png(seed=9))
    catalog = app.extensions["cropstack.catalog"].open()
    try:
        org_id = catalog.accounts.org_by_name("acme").id
        twin_hash = first["hash"][:8] + ("0" if first["hash"][8] != "0" else "1") + "f" * 31
        twin = NewImage(
            **{
                **{k: first[k] for k in ("binary_hash", "name", "format", "mimetype", "size")},
                "hash": twin_hash,
                "blob_key": hashlib.sha256(png(seed=9)).hexdigest(),
                "width": 1,
                "height": 1,
                "user_metadata": {},
                "dynamic_metadata": {},
                "static_metadata": {},
                "opaque": True,
                "animated": False,
                "protected": False,
            }
        )
        row, created = catalog.images.insert(org_id, twin)
    finally:
        catalog.close()
    assert created and row.short_hash == twin_hash[:9]
    # The first image keeps its short hash; its 6-char prefix still finds it.
    got = acme.request("GET", f"/sourceimages/acme/{first['short_hash']}").get_json()
    assert got["hash"] == first["hash"] and got["short_hash"] == first["hash"][:6]
    # A prefix shared by both (7 chars, not a stored short hash) is ambiguous: 404.
    assert acme.request("GET", f"/sourceimages/acme/{first['hash'][:7]}").status_code == 404
    assert (
        acme.request("GET", f"/sourceimages/acme/{twin_hash[:9]}").get_json()["hash"] == twin_hash
    )


def test_list_paging_links_and_total(acme):
    hashes = [upload(acme, png(seed=10 + i))["hash"] for i in range(5)]
    body = acme.request("GET", "/sourceimages/acme?limit=2&offset=1").get_json()
    assert body["total"] == 5 and len(body["items"]) == 2
    assert set(body["links"]) == {"prev", "next"}
    assert body["links"]["prev"]["href"] == "/sourceimages/acme?limit=2"
    assert body["links"]["next"]["href"] == "/sourceimages/acme?limit=2&offset=3"
    everything = acme.request("GET", "/sourceimages/acme").get_json()
    assert sorted(i["hash"] for i in everything["items"]) == sorted(hashes)
    assert everything["links"] == {}
    only_total = acme.request("GET", "/sourceimages/acme?limit=0").get_json()
    assert only_total["total"] == 5 and only_total["items"] == []


@pytest.mark.parametrize(
    "query", ["limit=2001", "limit=-1", "limit=abc", "offset=-3", "offset=1e3"]
)
def test_list_bad_paging_is_400(acme, query):
    assert acme.request("GET", f"/sourceimages/acme?{query}").status_code == 400


def test_binary_hash_list_and_route(acme):
    image = upload(acme, png(seed=20))
    upload(acme, png(seed=21))
    for path in (
        f"/sourceimages/acme?binaryHash={image['binary_hash']}",
        f"/sourceimages/acme/binaryhash/{image['binary_hash']}",
    ):
        body = acme.request("GET", path).get_json()
        assert body["total"] == 1 and body["items"][0]["hash"] == image["hash"]
    assert acme.request("GET", "/sourceimages/acme?binaryHash=zz").status_code == 400
    assert acme.request("GET", "/sourceimages/acme/binaryhash/zz").status_code == 400


# -- download / rename / lock ----------------------------------------------------------------


def test_download_exact_bytes(acme, cartman):
    image = upload(acme, cartman, 'car"t\r\nman ü.svg')
    response = acme.request("GET", f"/sourceimages/acme/{image['hash']}/download")
    assert response.status_code == 200
    assert response.data == cartman
    assert response.headers["Content-Type"] == "image/svg+xml"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    assert "\r" not in disposition and "\n" not in disposition and '"t' not in disposition
    assert acme.request("GET", "/sourceimages/acme/abcdef/download").status_code == 404


def test_rename_json_string_and_bare_text(acme):
    image = upload(acme, png(seed=22))
    path = f"/sourceimages/acme/{image['hash']}"
    response = acme.request("PUT", path + "/name", data='"new.jpg"', content_type="text/plain")
    assert response.status_code == 204 and response.data == b""
    assert acme.request("GET", path).get_json()["name"] == "new.jpg"
    assert acme.request("PUT", path + "/name", data="bare name.png").status_code == 204
    assert acme.request("GET", path).get_json()["name"] == "bare name.png"
    assert acme.request("PUT", path + "/name", data="5").status_code == 400
    assert acme.request("PUT", path + "/name", data='""').status_code == 400
    assert acme.request("PUT", "/sourceimages/acme/abcdef/name", data='"x"').status_code == 404


def test_lock_blocks_delete_and_user_metadata_and_unlock_needs_role(acme, member):
    image = upload(acme, png(seed=23))
    path = f"/sourceimages/acme/{image['hash']}"
    writer = member("acme", ["write"])
    response = writer.request("PUT", path + "/options/locked", data="true")
    assert response.status_code == 200 and response.get_json()["locked"] is True
    assert writer.request("DELETE", path).status_code == 409
    patch = writer.request("PATCH", path + "/meta/user", data=json.dumps({"a": "b"}))
    assert patch.status_code == 409
    reupload = acme.request(
        "POST",
        "/sourceimages/acme",
        data=multipart(png(seed=23), fields={"meta_user[0]": {"x": "y"}}),
    )
    assert reupload.status_code == 409
    assert writer.request("PUT", path + "/options/locked", data="false").status_code == 403
    unlocker = member("acme", ["sourceimages:unlock"])
    response = unlocker.request("PUT", path + "/options/locked", data="false")
    assert response.status_code == 200 and response.get_json()["locked"] is False
    assert acme.request("PUT", path + "/options/locked", data="maybe").status_code == 400
    assert writer.request("DELETE", path).status_code == 204


# -- delete / restore --------------------------------------------------------------------------


def test_delete_restore_cycle(acme):
    image = upload(acme, png(seed=24))
    path = f"/sourceimages/acme/{image['hash']}"
    assert acme.request("DELETE", path).status_code == 204
    assert acme.request("GET", path).status_code == 404
    assert acme.request("DELETE", path).status_code == 404
    shown = acme.request("GET", path + "?deleted=true").get_json()
    assert shown["deleted"] is True
    listed = acme.request("GET", "/sourceimages/acme?deleted=true").get_json()
    assert [i["hash"] for i in listed["items"]] == [image["hash"]]
    assert acme.request("GET", "/sourceimages/acme").get_json()["total"] == 0
    response = acme.request("POST", path + "/restore")
    assert response.status_code == 200
    body = response.get_json()
    assert body["deleted"] is False and set(body) == IMAGE_KEYS | {"deleted"}
    assert acme.request("GET", path).status_code == 200
    # Restoring a live image is fine too; an unknown one is 404.
    assert acme.request("POST", path + "/restore").status_code == 200
    assert acme.request("POST", "/sourceimages/acme/abcdef/restore").status_code == 404


def test_restore_past_window_is_404(acme, app):
    from tests.webapp.catalogsql import database

    image = upload(acme, png(seed=25))
    path = f"/sourceimages/acme/{image['hash']}"
    assert acme.request("DELETE", path).status_code == 204
    with database(app) as db:
        db.execute("UPDATE sourceimages SET deleted_at = '2000-01-01T00:00:00+00:00'")
    assert acme.request("POST", path + "/restore").status_code == 404
    assert acme.request("GET", path + "?deleted=true").status_code == 404


def test_reupload_of_deleted_image_is_a_fresh_upload(acme):
    data = png(seed=26)
    image = upload(acme, data, fields={"meta_user[0]": {"old": "1"}})
    acme.request("DELETE", f"/sourceimages/acme/{image['hash']}")
    again = upload(acme, data, "again.png")
    assert again["hash"] == image["hash"] and again["user_metadata"] == {}
    assert again["name"] == "again.png"


def test_delete_by_binary_hash(acme):
    data = png(seed=27)
    plain = upload(acme, data)
    protected = upload(acme, data, fields={"options[0]": {"protected": True}})
    response = acme.request("DELETE", f"/sourceimages/acme?binaryHash={plain['binary_hash']}")
    assert response.status_code == 204
    for image in (plain, protected):
        assert acme.request("GET", f"/sourceimages/acme/{image['hash']}").status_code == 404
    again = acme.request("DELETE", f"/sourceimages/acme?binaryHash={plain['binary_hash']}")
    assert again.status_code == 404
    assert acme.request("DELETE", "/sourceimages/acme").status_code == 400


# -- copy ------------------------------------------------------------------------------------


def test_copy_refusals(acme, member):
    image = upload(acme, png(seed=28))
    member("dest")  # the destination exists, but acme's admin is no member of it
    path = f"/sourceimages/acme/{image['hash']}"
    assert acme.request("COPY", path, headers={"Destination": "dest"}).status_code == 403
    assert acme.request("COPY", path).status_code == 400
    assert acme.request("COPY", path, headers={"Destination": "Bad Name"}).status_code == 400
    assert acme.request("COPY", path, headers={"Destination": "nowhere"}).status_code == 400
    bad_overwrite = {"Destination": "dest", "Overwrite": "X"}
    assert acme.request("COPY", path, headers=bad_overwrite).status_code == 400


def test_copy_created_overwritten_precondition(client, app, member):
    from tests.webapp.conftest import Member

    admin = member("src")
    # One user admin of both organizations: add a membership in "dst" for admin's user.
    Member(app, client, "dst", ["admin"])
    from tests.webapp.catalogsql import database
    from webapp.catalog import now_iso

    with database(app) as db:
        dst = db.rows("SELECT id FROM organizations WHERE name='dst'")[0]["id"]
        db.execute(
            "INSERT INTO memberships (organization_id, user_id, roles, created) "
            "VALUES (?, ?, '[\"admin\"]', ?)",
            (dst, admin.user_id, now_iso()),
        )
    image = upload(admin, png(seed=29), fields={"meta_user[0]": {"k": "v"}})
    path = f"/sourceimages/src/{image['hash']}"
    first = admin.request("COPY", path, headers={"Destination": "dst"})
    assert first.status_code == 201 and first.get_json() == {}
    copied = admin.request("GET", f"/sourceimages/dst/{image['hash']}").get_json()
    assert copied["user_metadata"] == {"k": "v"} and copied["organization"] == "dst"
    again = admin.request("COPY", path, headers={"Destination": "dst", "Overwrite": "F"})
    assert again.status_code == 412 and again.get_json()["error"]["code"] == 412
    overwritten = admin.request("POST", path + "/copy", headers={"Destination": "dst"})
    assert overwritten.status_code == 204
    missing = admin.request("COPY", "/sourceimages/src/abcdef", headers={"Destination": "dst"})
    assert missing.status_code == 404
    # Copies are independent rows sharing the blob: deleting the source keeps the copy.
    assert admin.request("DELETE", path).status_code == 204
    download = admin.request("GET", f"/sourceimages/dst/{image['hash']}/download")
    assert download.status_code == 200 and download.data == png(seed=29)
    # Batch copy.
    other = upload(admin, png(seed=30))
    batch = admin.request(
        "POST",
        "/sourceimages/src/copy",
        data=json.dumps([other["hash"], image["hash"], "abcdef"]),
        headers={"Destination": "dst", "Overwrite": "F"},
    )
    assert batch.status_code == 200
    assert batch.get_json() == {
        "created": [other["hash"]],
        "existing": [],
        "notfound": [image["hash"], "abcdef"],
    }
    again = admin.request(
        "POST",
        "/sourceimages/src/copy",
        data=json.dumps([other["hash"]]),
        headers={"Destination": "dst"},
    )
    assert again.get_json() == {"created": [], "existing": [other["hash"]], "notfound": []}
    too_many = admin.request(
        "POST",
        "/sourceimages/src/copy",
        data=json.dumps(["abcdef"] * 101),
        headers={"Destination": "dst"},
    )
    assert too_many.status_code == 400
    not_list = admin.request(
        "POST", "/sourceimages/src/copy", data='{"a": 1}', headers={"Destination": "dst"}
    )
    assert not_list.status_code == 400


# -- dynamic metadata --------------------------------------------------------------------------


def test_dynamic_metadata_put_delete_cycle(acme):
    image = upload(acme, png(seed=31), fields={"meta_user[0]": {"keep": "me"}})
    path = f"/sourceimages/acme/{image['hash']}"
    area = {"x": 10, "y": 10, "width": 5, "height": 5}
    response = acme.request(
        "PUT", path + "/meta/dynamic/subject_area?deletePrevious=false", data=json.dumps(area)
    )
    assert response.status_code == 201
    new = response.get_json()
    assert response.headers["Location"] == f"/sourceimages/acme/{new['hash']}"
    assert new["hash"] != image["hash"] and new["binary_hash"] == image["binary_hash"]
    assert new["dynamic_metadata"] == {"subject_area": {"width": 5, "height": 5, "x": 10, "y": 10}}
    assert new["user_metadata"] == {"keep": "me"} and new["created"] == image["created"]
    assert acme.request("GET", path).status_code == 200  # old kept
    # Same again → nothing changes → 204.
    same = acme.request(
        "PUT", f"/sourceimages/acme/{new['hash']}/meta/dynamic/subject_area", data=json.dumps(area)
    )
    assert same.status_code == 204
    # Removing it goes back to the original hash, which exists: reused as is.
    back = acme.request(
        "DELETE",
        f"/sourceimages/acme/{new['hash']}/meta/dynamic/subject_area",
        data='{"deletePrevious":"true"}',
        content_type="text/plain;charset=UTF-8",
    )
    assert back.status_code == 201 and back.get_json()["hash"] == image["hash"]
    assert acme.request("GET", f"/sourceimages/acme/{new['hash']}").status_code == 404
    absent = acme.request("DELETE", path + "/meta/dynamic/crop_area")
    assert absent.status_code == 204


def test_dynamic_delete_previous_from_query(acme):
    image = upload(acme, png(seed=32))
    path = f"/sourceimages/acme/{image['hash']}"
    response = acme.request(
        "PUT", path + "/meta/dynamic/version?deletePrevious=true", data='{"text": "v2"}'
    )
    assert response.status_code == 201
    assert acme.request("GET", path).status_code == 404


def test_reused_hash_keeps_its_metadata(acme):
    data = png(seed=33)
    area = {"x": 1, "y": 1, "width": 2, "height": 2}
    existing = upload(
        acme, data, fields={"meta_dynamic[0][subject_area]": area, "meta_user[0]": {"who": "old"}}
    )
    plain = upload(acme, data, "plain.png", fields={"meta_user[0]": {"who": "new"}})
    response = acme.request(
        "PUT",
        f"/sourceimages/acme/{plain['hash']}/meta/dynamic/subject_area",
        data=json.dumps(area),
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["hash"] == existing["hash"] and body["user_metadata"] == {"who": "old"}


def test_keep_hash(acme):
    image = upload(acme, png(seed=34))
    path = f"/sourceimages/acme/{image['hash']}/meta/dynamic/version"
    response = acme.request("PUT", path + "?keepHash=true", data='{"text": "x"}')
    assert response.status_code == 200
    assert response.headers["Warning"].startswith("299")
    assert response.get_json()["hash"] == image["hash"]
    assert response.get_json()["dynamic_metadata"] == {"version": {"text": "x"}}
    both = acme.request("PUT", path + "?keepHash=true&deletePrevious=true", data='{"text": "y"}')
    assert both.status_code == 400


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("subject_area", '{"y": 1}', "subject_area.x"),
        ("subject_area", '{"x": -1, "y": 1}', "subject_area.x"),
        ("subject_area", '{"x": 1, "y": 1, "width": 0}', "subject_area.width"),
        ("subject_area", '{"x": true, "y": 1}', "subject_area.x"),
        ("subject_area", '{"x": "5", "y": 1}', "subject_area.x"),
        ("subject_area", '{"x": 1.5, "y": 1}', "subject_area.x"),
        ("subject_area", '{"x": 1e999, "y": 1}', "1e999"),
        ("subject_area", '{"x": NaN, "y": 1}', "JSON"),
        ("subject_area", '{"x": 1, "y": 1, "percentage": "yes"}', "subject_area.percentage"),
        ("subject_area", '{"x": 101, "y": 1, "percentage": true}', "subject_area.x"),
        ("subject_area", '{"x": 1, "y": 1, "z": 1}', "subject_area.z"),
        ("subject_area", "[1, 2]", "subject_area"),
        ("crop_area", '{"x": 1, "y": 1, "width": 3}', "crop_area.height"),
        (
            "multi_areas",
            '{"bad-name": {"crop_area": {"x":0,"y":0,"width":1,"height":1}}}',
            "bad-name",
        ),
        ("multi_areas", '{"ok": {"face": {}}}', "multi_areas.ok.face"),
        ("multi_areas", '{"ok": {"subject_area": {"y": 0}}}', "multi_areas.ok.subject_area.x"),
        ("version", '{"text": 5}', "version.text"),
        ("version", '"v1"', "version"),
        ("detection_face", '{"x": 1, "y": 1, "width": 5, "height": 5}', "detection_face"),
        ("whatever", "{}", "whatever"),
    ],
)
def test_dynamic_metadata_validation_names_the_field(acme, name, body, field):
    image = upload(acme, png(seed=35))
    response = acme.request(
        "PUT", f"/sourceimages/acme/{image['hash']}/meta/dynamic/{name}", data=body
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert field in response.get_json()["error"]["message"]


def test_dynamic_metadata_accepts_valid_shapes(acme):
    image = upload(acme, png(seed=36))
    path = f"/sourceimages/acme/{image['hash']}/meta/dynamic"
    multi = {
        "landscape_16_9": {"crop_area": {"width": 16, "height": 9, "x": 0, "y": 0}},
        "Portrait": {"subject_area": {"x": 50, "y": 50, "percentage": True}},
    }
    response = acme.request("PUT", path + "/multi_areas", data=json.dumps(multi))
    assert response.status_code == 201
    stored = response.get_json()["dynamic_metadata"]["multi_areas"]
    assert stored["Portrait"]["subject_area"] == {
        "width": 1,
        "height": 1,
        "x": 50,
        "y": 50,
        "percentage": True,
    }
    crop = acme.request(
        "PUT", path + "/crop_area", data='{"x": 0, "y": 0, "width": 10, "height": 10}'
    )
    assert crop.status_code == 201


def test_set_protected(acme):
    image = upload(acme, png(seed=37))
    path = f"/sourceimages/acme/{image['hash']}/options/protected"
    response = acme.request("PUT", path + "?deletePrevious=true", data="true")
    assert response.status_code == 201
    body = response.get_json()
    assert body["protected"] is True and body["hash"] != image["hash"]
    assert response.headers["Location"] == f"/sourceimages/acme/{body['hash']}"
    assert acme.request("GET", f"/sourceimages/acme/{image['hash']}").status_code == 404
    same = acme.request("PUT", f"/sourceimages/acme/{body['hash']}/options/protected", data="true")
    assert same.status_code == 204
    back = acme.request("PUT", f"/sourceimages/acme/{body['hash']}/options/protected", data="false")
    assert back.status_code == 201 and back.get_json()["hash"] == image["hash"]


# -- user metadata (basic) ----------------------------------------------------------------------


def test_user_metadata_routes(acme):
    image = upload(acme, png(seed=38), fields={"meta_user[0]": {"delete_this": "x"}})
    path = f"/sourceimages/acme/{image['hash']}/meta/user"
    patch = {"somefield": "somevalue", "int:some_number": 0, "delete_this": None}
    assert acme.request("PATCH", path, data=json.dumps(patch)).status_code == 204
    assert acme.request("GET", path).get_json() == {"somefield": "somevalue", "int:some_number": 0}
    assert acme.request("PUT", path + "/field_a", data="bare value").status_code == 204
    assert acme.request("GET", path + "/field_a").get_json() == "bare value"
    assert acme.request("DELETE", path + "/field_a").status_code == 204
    assert acme.request("GET", path + "/field_a").status_code == 404
    assert acme.request("DELETE", path + "/field_a").status_code == 404
    assert acme.request("PUT", path, data='{"only": "this"}').status_code == 204
    assert acme.request("GET", path).get_json() == {"only": "this"}
    assert acme.request("PUT", path + "/Bad-Name", data='"x"').status_code == 400
    assert acme.request("PATCH", path, data="[1]").status_code == 400
    assert acme.request("DELETE", path).status_code == 204
    assert acme.request("GET", path).get_json() == {}


# -- isolation ------------------------------------------------------------------------------------


def test_organizations_are_isolated(acme, globex):
    data = png(seed=39)
    a = upload(acme, data, "a.png")
    fresh = upload(globex, png(seed=40), "fresh.png")
    b = upload(globex, data, "b.png")
    # Same bytes in B behave like a fresh upload: own row, own name, own metadata.
    assert b["hash"] == a["hash"] and b["organization"] == "globex" and b["name"] == "b.png"
    assert set(b) == set(fresh)
    assert globex.request("GET", f"/sourceimages/acme/{a['hash']}").status_code == 403
    assert globex.request("GET", "/sourceimages/acme").status_code == 403
    assert globex.request("DELETE", f"/sourceimages/acme/{a['hash']}").status_code == 403
    # Deleting in A never removes B's bytes.
    assert acme.request("DELETE", f"/sourceimages/acme/{a['hash']}").status_code == 204
    download = globex.request("GET", f"/sourceimages/globex/{b['hash']}/download")
    assert download.status_code == 200 and download.data == data
    assert globex.request("GET", "/sourceimages/globex").get_json()["total"] == 2
