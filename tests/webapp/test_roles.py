"""Roles as the reference lists them (docs/accounts.md, "Roles" and "Role rules").

Protected originals need admin or ``sourceimages:download:protected``; an upload-only key
never changes, restores or reads an existing image; admins enrol only fresh users or users
of organizations they administer; and no membership given by another organization takes
key management away.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.webapp.catalogsql import database
from tests.webapp.images import multipart, png
from webapp.app import catalog

UNPROTECTED_DOWNLOADERS = [
    ["admin"],
    ["write"],
    ["read"],
    ["sourceimages:read"],
    ["sourceimages:write"],
    ["sourceimages:download:protected"],
]
#: Everything the upload-only answer may hold: nothing the organization stored about it.
RECEIPT_KEYS = {
    "organization",
    "hash",
    "short_hash",
    "binary_hash",
    "name",
    "mimetype",
    "format",
    "size",
    "width",
    "height",
    "link",
    "protected",
    "locked",
}


def assert_error(response, status: int, *, contains: str = "") -> dict[str, Any]:
    """``status`` in the JSON error shape; the error object."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == status and contains in error["message"]
    return error


def upload(caller, data: bytes, name: str = "image.png", **fields: Any):
    """POST one file as ``caller``; the raw response."""
    return caller.request(
        "POST", f"/sourceimages/{caller.org}", data=multipart(data, name, fields=fields)
    )


def uploaded(caller, data: bytes, name: str = "image.png", **fields: Any) -> dict[str, Any]:
    """POST one file as ``caller``, expecting 200; the one image of the answer."""
    response = upload(caller, data, name, **fields)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"][0]


def stored(owner, image_hash: str, *, deleted: bool = False) -> dict[str, Any]:
    """The image as the owner (admin) sees it."""
    query = "?deleted=true" if deleted else ""
    response = owner.request("GET", f"/sourceimages/{owner.org}/{image_hash}{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


# -- downloading originals ----------------------------------------------------------------


@pytest.fixture
def protected(acme) -> tuple[dict[str, Any], bytes]:
    """A protected image of ``acme`` and its bytes."""
    data = png(seed=101)
    return uploaded(acme, data, "secret.png", **{"options[0]": {"protected": True}}), data


@pytest.mark.parametrize("roles", UNPROTECTED_DOWNLOADERS)
def test_unprotected_originals_download_for_every_reading_role(acme, member, roles):
    data = png(seed=100)
    image = uploaded(acme, data)
    response = member("acme", roles).request("GET", f"/sourceimages/acme/{image['hash']}/download")
    assert response.status_code == 200 and response.data == data


@pytest.mark.parametrize(
    "roles", [["write"], ["read"], ["sourceimages:read"], ["sourceimages:write"]]
)
def test_protected_originals_are_refused_to_other_roles(member, protected, roles):
    image, _ = protected
    caller = member("acme", roles)
    response = caller.request("GET", f"/sourceimages/acme/{image['hash']}/download")
    assert_error(response, 403, contains="sourceimages:download:protected")
    # The image itself stays visible to them: the refusal is about the original's bytes.
    assert caller.request("GET", f"/sourceimages/acme/{image['hash']}").status_code == 200


@pytest.mark.parametrize(
    "roles",
    [["admin"], ["sourceimages:download:protected"], ["read", "sourceimages:download:protected"]],
)
def test_protected_originals_download_with_admin_or_the_role(member, protected, roles):
    image, data = protected
    response = member("acme", roles).request("GET", f"/sourceimages/acme/{image['hash']}/download")
    assert response.status_code == 200 and response.data == data


def test_upload_role_downloads_nothing(acme, member, protected):
    image = uploaded(acme, png(seed=102))
    uploader = member("acme", ["upload"])
    for target in (image["hash"], protected[0]["hash"]):
        assert_error(uploader.request("GET", f"/sourceimages/acme/{target}/download"), 403)


def test_download_protected_role_is_accepted_in_memberships(acme):
    response = acme.request(
        "POST",
        "/organizations/acme/memberships",
        data=json.dumps({"roles": ["sourceimages:read", "sourceimages:download:protected"]}),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["roles"] == ["sourceimages:read", "sourceimages:download:protected"]


def test_protected_originals_cannot_leave_by_copy(acme, member, protected):
    """A writer who administers another organization cannot copy a protected image there
    and download it as admin: copying a protected original needs the same right."""
    image, _ = protected
    plain = uploaded(acme, png(seed=103))
    writer = member("acme", ["write"])
    elsewhere = member("elsewhere", ["admin"])
    # Give the writer's user an admin membership of "elsewhere" too (fresh org, same user).
    with database(elsewhere.client.application) as db:
        db.execute(
            "INSERT INTO memberships (organization_id, user_id, roles, created) "
            "VALUES (?, ?, '[\"admin\"]', '2020-01-01T00:00:00+00:00')",
            (elsewhere.org_id, writer.user_id),
        )
    copy = {"Destination": "elsewhere"}
    one = writer.request("POST", f"/sourceimages/acme/{image['hash']}/copy", headers=copy)
    assert_error(one, 403, contains="copy")
    batch = writer.request(
        "POST",
        "/sourceimages/acme/copy",
        headers=copy,
        data=json.dumps([plain["hash"], image["hash"]]),
    )
    assert_error(batch, 403, contains="copy")
    # Nothing arrived, not even the unprotected image of the refused batch.
    listed = elsewhere.request("GET", "/sourceimages/elsewhere").get_json()
    assert listed["total"] == 0
    # Unprotected images still copy for the writer; protected ones for an admin.
    assert writer.request(
        "POST", f"/sourceimages/acme/{plain['hash']}/copy", headers=copy
    ).status_code in (201, 204)
    admin_of_both = member("acme", ["admin"])
    with database(elsewhere.client.application) as db:
        db.execute(
            "INSERT INTO memberships (organization_id, user_id, roles, created) "
            "VALUES (?, ?, '[\"admin\"]', '2020-01-01T00:00:00+00:00')",
            (elsewhere.org_id, admin_of_both.user_id),
        )
    copied = admin_of_both.request("POST", f"/sourceimages/acme/{image['hash']}/copy", headers=copy)
    assert copied.status_code == 201, copied.get_data(as_text=True)


def test_unprotecting_needs_the_protected_download_right(acme, member, protected):
    image, data = protected
    writer = member("acme", ["write"])
    path = f"/sourceimages/acme/{image['hash']}/options/protected"
    assert_error(writer.request("PUT", path, data="false"), 403, contains="unprotect")
    assert stored(acme, image["hash"])["protected"] is True
    # Protecting stays a plain write.
    plain = uploaded(acme, png(seed=104))
    made = writer.request(
        "PUT", f"/sourceimages/acme/{plain['hash']}/options/protected", data="true"
    )
    assert made.status_code == 201 and made.get_json()["protected"] is True
    # An admin may unprotect; the unprotected copy then downloads for the writer.
    freed = acme.request("PUT", path, data="false")
    assert freed.status_code == 201
    download = writer.request("GET", f"/sourceimages/acme/{freed.get_json()['hash']}/download")
    assert download.status_code == 200 and download.data == data


# -- upload-only keys and existing images -------------------------------------------------


@pytest.fixture
def owned(acme) -> tuple[dict[str, Any], bytes]:
    """An image of ``acme`` with user and static metadata (no dynamic metadata)."""
    data = png(seed=110)
    image = uploaded(
        acme,
        data,
        "owner.png",
        **{
            "meta_user[0]": {"client": "secret-co", "int:budget": 5000},
            "meta_static[0]": {"note": "owner's"},
        },
    )
    return image, data


def test_upload_only_reupload_changes_nothing_and_reveals_nothing(acme, member, owned):
    image, data = owned
    before = stored(acme, image["hash"])
    uploader = member("acme", ["upload"])
    response = upload(
        uploader,
        data,
        "mine.png",
        **{
            "meta_user[0]": {"client": "overwritten", "extra": "x"},
            "meta_static[0]": {"note": "uploader's"},
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["total"] == 1
    (item,) = body["items"]
    assert set(item) == RECEIPT_KEYS
    assert item["hash"] == image["hash"] and item["short_hash"] == image["short_hash"]
    assert item["name"] == "mine.png"  # the name this request sent, not the stored one
    assert "secret-co" not in response.get_data(as_text=True)
    # The owner's image is exactly as it was.
    assert stored(acme, image["hash"]) == before


def test_upload_only_reupload_of_locked_image_is_not_a_conflict(acme, member, owned):
    image, data = owned
    assert (
        acme.request(
            "PUT", f"/sourceimages/acme/{image['hash']}/options/locked", data="true"
        ).status_code
        == 200
    )
    before = stored(acme, image["hash"])
    uploader = member("acme", ["upload"])
    item = uploaded(uploader, data, **{"meta_user[0]": {"client": "changed"}})
    assert item["hash"] == image["hash"] and item["locked"] is True
    assert stored(acme, image["hash"]) == before


def test_upload_only_other_dynamic_metadata_is_a_new_image(acme, member, owned):
    image, data = owned
    before = stored(acme, image["hash"])
    uploader = member("acme", ["upload"])
    other = {"subject_area": {"x": 2, "y": 2, "width": 6, "height": 6}}
    item = uploaded(uploader, data, **{"meta_dynamic[0]": other})
    assert item["hash"] != image["hash"] and set(item) == RECEIPT_KEYS
    assert stored(acme, image["hash"]) == before
    new = stored(acme, item["hash"])
    assert new["dynamic_metadata"] == other and new["user_metadata"] == {}


def test_upload_only_cannot_restore_a_deleted_image(acme, member, owned):
    image, data = owned
    assert acme.request("DELETE", f"/sourceimages/acme/{image['hash']}").status_code == 204
    uploader = member("acme", ["upload"])
    assert_error(upload(uploader, data), 409, contains="deleted")
    assert stored(acme, image["hash"], deleted=True)["deleted"] is True
    assert acme.request("GET", f"/sourceimages/acme/{image['hash']}").status_code == 404
    # The owner can still restore it, with its metadata.
    restored = acme.request("POST", f"/sourceimages/acme/{image['hash']}/restore")
    assert restored.status_code == 200
    assert restored.get_json()["user_metadata"] == image["user_metadata"]


def test_upload_only_after_the_restore_window_uploads_afresh(app, acme, member, owned):
    image, data = owned
    assert acme.request("DELETE", f"/sourceimages/acme/{image['hash']}").status_code == 204
    # Age the deletion past restore_days (30): the image can no longer be restored.
    long_ago = (datetime.now(UTC) - timedelta(days=40)).replace(microsecond=0).isoformat()
    with database(app) as db:
        db.execute("UPDATE sourceimages SET deleted_at = ?", (long_ago,))
    uploader = member("acme", ["upload"])
    item = uploaded(uploader, data, "fresh.png", **{"meta_user[0]": {"by": "uploader"}})
    assert item["hash"] == image["hash"]
    now = stored(acme, image["hash"])
    assert now["name"] == "fresh.png" and now["user_metadata"] == {"by": "uploader"}


def test_upload_only_new_image_stores_what_was_sent(acme, member):
    uploader = member("acme", ["upload"])
    item = uploaded(uploader, png(seed=111), "new.png", **{"meta_user[0]": {"tag": "a"}})
    assert set(item) == RECEIPT_KEYS and item["name"] == "new.png"
    new = stored(acme, item["hash"])
    assert new["user_metadata"] == {"tag": "a"} and new["name"] == "new.png"
    assert {k: new[k] for k in RECEIPT_KEYS} == item


def test_upload_with_read_sees_the_image_but_does_not_change_it(acme, member, owned):
    image, data = owned
    before = stored(acme, image["hash"])
    caller = member("acme", ["upload", "read"])
    item = uploaded(caller, data, **{"meta_user[0]": {"client": "overwritten"}})
    assert item == before  # full object: read may see it anyway
    assert stored(acme, image["hash"]) == before


@pytest.mark.parametrize("roles", [["write"], ["sourceimages:write"]])
def test_writers_reupload_still_merges_and_restores(acme, member, owned, roles):
    image, data = owned
    writer = member("acme", roles)
    item = uploaded(writer, data, **{"meta_user[0]": {"extra": "x"}})
    assert item["user_metadata"] == {**image["user_metadata"], "extra": "x"}
    assert acme.request("DELETE", f"/sourceimages/acme/{image['hash']}").status_code == 204
    assert uploaded(writer, data)["hash"] == image["hash"]
    assert acme.request("GET", f"/sourceimages/acme/{image['hash']}").status_code == 200


# -- enrolling users in organizations ----------------------------------------------------


def fresh_user(app, email: str = "fresh@new.example") -> tuple[str, dict[str, str]]:
    """A user without any membership (POST /users without organization); (id, headers)."""
    with app.app_context():
        user = catalog().accounts.signup(email, None)
    return user.id, {"Api-Key": user.api_key}


def put_membership(admin, org: str, user_id: str, roles: list[str]):
    return admin.request(
        "PUT", f"/organizations/{org}/memberships/{user_id}", data=json.dumps({"roles": roles})
    )


def test_admin_enrols_a_user_without_organization(app, client, acme):
    user_id, headers = fresh_user(app)
    created = put_membership(acme, "acme", user_id, ["write"])
    assert created.status_code == 201 and created.get_json()["roles"] == ["write"]
    assert client.get("/organizations/acme", headers=headers).status_code == 200


def test_admin_cannot_enrol_someone_elses_user(client, acme, globex, member):
    unknown = put_membership(acme, "acme", "00000000-0000-0000-0000-000000000000", ["read"])
    foreign = put_membership(acme, "acme", globex.user_id, ["read"])
    # The same answer as an unknown id, so user ids cannot be probed.
    assert_error(foreign, 404)
    assert foreign.get_json() == unknown.get_json()
    # Nor a plain member of another organization.
    worker = member("globex", ["write"])
    assert_error(put_membership(acme, "acme", worker.user_id, ["read"]), 404)
    # globex's admin is untouched: no acme access, key management intact.
    assert_error(globex.request("GET", "/organizations/acme"), 403)
    assert globex.request("GET", "/user/apikeys").status_code == 200
    assert acme.request("GET", f"/organizations/acme/memberships/{globex.user_id}").status_code == (
        404
    )


def test_admin_enrols_users_of_organizations_they_administer(acme, member):
    assert acme.request("PUT", "/organizations/acme-two", data="{}").status_code == 200
    worker = member("acme", ["write"])
    created = put_membership(acme, "acme-two", worker.user_id, ["read"])
    assert created.status_code == 201, created.get_data(as_text=True)
    assert worker.request("GET", "/organizations/acme-two").status_code == 200


def test_membership_from_another_org_never_takes_key_management(app, client, acme):
    """B administers its own organization; acme's admin may enrol B (they share an
    organization) as ``read`` in acme, but B keeps managing its keys."""
    assert acme.request("PUT", "/organizations/shared", data="{}").status_code == 200
    b_id, b_headers = fresh_user(app, "b@b.example")
    assert put_membership(acme, "shared", b_id, ["write"]).status_code == 201
    assert client.put("/organizations/b-own", headers=b_headers, json={}).status_code == 200
    assert put_membership(acme, "acme", b_id, ["read"]).status_code == 201
    assert put_membership(acme, "shared", b_id, ["upload"]).status_code == 200
    # B: admin of b-own, read in acme, upload in shared: key management stays.
    assert client.get("/user/apikeys", headers=b_headers).status_code == 200
    added = client.post("/user/apikeys", headers=b_headers, data="{}")
    assert added.status_code == 200
    me = client.get("/user", headers=b_headers).get_json()
    assert me["email"] == "b@b.example" and len(me["api_keys"]) == 2
    assert client.delete(
        f"/user/apikeys/{added.get_json()['id']}", headers=b_headers
    ).status_code == (204)


@pytest.mark.parametrize(
    "roles,allowed",
    [
        (["read"], False),
        (["upload"], False),
        (["sourceimages:read"], False),
        (["upload", "read"], False),
        (["write", "read"], False),
        (["admin", "read"], True),
        (["write"], True),
        (["sourceimages:write"], True),
        (["sourceimages:download:protected"], True),
        (["sourceimages:unlock"], True),
    ],
)
def test_key_management_of_single_membership_users(member, roles, allowed):
    caller = member("acme", roles)
    for method, path in (("GET", "/user/apikeys"), ("POST", "/user/apikeys")):
        response = caller.request(method, path)
        if allowed:
            assert response.status_code == 200, (roles, method, response.get_data())
        else:
            assert_error(response, 403, contains="manage keys")
    shown = caller.request("GET", "/user").get_json()
    assert ("api_keys" in shown) is allowed


def test_restricted_member_gains_key_management_with_an_own_organization(app, client, acme):
    user_id, headers = fresh_user(app)
    assert put_membership(acme, "acme", user_id, ["read"]).status_code == 201
    assert_error(client.get("/user/apikeys", headers=headers), 403)
    assert client.put("/organizations/mine", headers=headers, json={}).status_code == 200
    assert client.get("/user/apikeys", headers=headers).status_code == 200
