"""Users, API keys, organizations, options and memberships (docs/accounts.md).

This module is about ``POST /users`` among others, so its app runs with signup on; the
default (off) is checked in ``test_signup_is_off_by_default``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import Account, close_app, load_recording
from webapp import create_app
from webapp.app import catalog
from webapp.wire import loads_strict

TEXT_PLAIN = {"Content-Type": "text/plain;charset=UTF-8"}  # what rokka.js sends


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    """A fresh app with open signup (``signup = true``), as rokka runs."""
    data_dir = str(tmp_path / "data")
    application = create_app({"data_dir": data_dir, "signup": True, "database_url": database_url})
    application.testing = True
    yield application
    close_app(application)


def post_json(client, path: str, body: Any, headers: dict[str, str] | None = None):
    """A request the way rokka.js sends it: JSON text with a text/plain content type."""
    return client.post(path, data=json.dumps(body), headers={**TEXT_PLAIN, **(headers or {})})


def assert_error(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == status and isinstance(error["message"], str)
    return error


def assert_shape(
    recorded: Any, ours: Any, *, extra: frozenset[str] = frozenset(), missing=frozenset()
) -> None:
    """Same JSON types and the same keys, except documented ``extra``/``missing`` keys."""
    if isinstance(recorded, dict):
        assert isinstance(ours, dict), ours
        assert set(ours) - set(recorded) <= extra, set(ours) - set(recorded)
        assert set(recorded) - set(ours) <= missing, set(recorded) - set(ours)
        for key in set(recorded) & set(ours):
            assert_shape(recorded[key], ours[key], extra=extra, missing=missing)
    elif isinstance(recorded, list):
        assert isinstance(ours, list)
        if recorded and ours:
            assert_shape(recorded[0], ours[0], extra=extra, missing=missing)
    else:
        assert type(ours) is type(recorded), (recorded, ours)


# -- POST /users ------------------------------------------------------------------------


def test_signup_creates_user_org_and_admin_key(client):
    response = post_json(client, "/users", {"email": "a@b.example", "organization": "neworg"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert set(body) == {"id", "email", "api_key"}
    assert body["email"] == "a@b.example" and len(body["api_key"]) == 64
    key = {"Api-Key": body["api_key"]}
    org = client.get("/organizations/neworg", headers=key)
    assert org.status_code == 200
    assert org.get_json()["billing_email"] == "a@b.example"
    assert org.get_json()["display_name"] == "neworg"
    members = client.get("/organizations/neworg/memberships", headers=key).get_json()
    assert [m["roles"] for m in members["items"]] == [["admin"]]


def test_signup_without_organization(client):
    response = post_json(client, "/users", {"email": "solo@b.example"})
    assert response.status_code == 200
    key = {"Api-Key": response.get_json()["api_key"]}
    assert client.get("/user", headers=key).get_json()["email"] == "solo@b.example"
    assert client.put("/organizations/solo-org", headers=key, json={}).status_code == 200


@pytest.mark.parametrize("email", ["admin@acme.example", "someone@else.example"])
def test_signup_for_existing_org_is_409_even_for_its_admin(client, account, email):
    # No auth: handing out a key for an existing admin would be an account takeover.
    response = post_json(client, "/users", {"email": email, "organization": "acme"})
    assert_error(response, 409)
    # The failed signup left no user behind.
    members = account.request("GET", "/organizations/acme/memberships").get_json()
    assert members["total"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "nope"},
        {"email": "a b@c.example"},
        {"email": 42},
        {"email": ["a@b.example"]},
        {"email": "x" * 250 + "@b.example"},
        {"email": "a@b.example", "organization": "Upper"},
        {"email": "a@b.example", "organization": ""},
        {"email": "a@b.example", "organization": "-lead"},
        {"email": "a@b.example", "organization": "trail-"},
        {"email": "a@b.example", "organization": "a" * 64},
        {"email": "a@b.example", "organization": "under_score"},
        {"email": "a@b.example", "organization": "ünïcode"},
        {"email": "a@b.example", "organization": "x'; DROP TABLE users;--"},
        {"email": "a@b.example", "organization": 7},
        {"email": "a@b.example", "organization": True},
        {"email": "a@b.example", "organization": "sourceimages"},
        {"email": "a@b.example", "organization": "healthz"},
    ],
)
def test_signup_validation(client, body):
    assert_error(post_json(client, "/users", body), 400)


def test_signup_org_name_limits(client):
    assert post_json(client, "/users", {"email": "a@b.c", "organization": "a"}).status_code == 200
    name = "a" * 63
    assert post_json(client, "/users", {"email": "a@b.c", "organization": name}).status_code == 200


def test_signup_disabled(tmp_path):
    app = create_app({"data_dir": str(tmp_path / "d"), "signup": False})
    response = post_json(app.test_client(), "/users", {"email": "a@b.example"})
    assert_error(response, 403)
    assert "invalid_authentication" not in response.get_json()["error"]


def test_signup_is_off_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("CROPSTACK_SIGNUP", raising=False)
    client = create_app({"data_dir": str(tmp_path / "d")}).test_client()
    body = {"email": "a@b.example", "organization": "closed"}
    error = assert_error(post_json(client, "/users", body), 403)
    assert "cropstack users create" in error["message"]
    # Nothing was created: the name is still free for the operator.
    with client.application.app_context():
        assert catalog().accounts.org_by_name("closed") is None
    # CROPSTACK_SIGNUP=true opens it.
    monkeypatch.setenv("CROPSTACK_SIGNUP", "true")
    opened = create_app({"data_dir": str(tmp_path / "e")}).test_client()
    assert post_json(opened, "/users", body).status_code == 200


# -- auth -------------------------------------------------------------------------------

AUTHENTICATED_ROUTES = [
    ("GET", "/user"),
    ("GET", "/user/apikeys"),
    ("POST", "/user/apikeys"),
    ("GET", "/user/apikeys/current"),
    ("DELETE", "/user/apikeys/some-id"),
    ("PUT", "/organizations/fresh"),
    ("GET", "/organizations/acme"),
    ("PUT", "/organizations/acme/options"),
    ("PUT", "/organizations/acme/options/protect_dynamic_stack"),
    ("GET", "/organizations/acme/memberships"),
    ("POST", "/organizations/acme/memberships"),
    ("GET", "/organizations/acme/memberships/x"),
    ("PUT", "/organizations/acme/memberships/x"),
    ("DELETE", "/organizations/acme/memberships/x"),
]


@pytest.mark.parametrize("method,path", AUTHENTICATED_ROUTES)
@pytest.mark.parametrize("key", [None, "", "wrong", "a" * 64, "x" * 10_000, "ünï"])
def test_bad_or_missing_key_is_403(client, account, method, path, key):
    headers = {} if key is None else {"Api-Key": key.encode("utf-8").decode("latin-1")}
    response = client.open(path, method=method, headers=headers, data="{}")
    error = assert_error(response, 403)
    assert error["invalid_authentication"] is True
    assert response.get_json()["invalid_authentication"] is True


def test_other_orgs_are_invisible(account, other_account):
    for method, path in [
        ("GET", "/organizations/globex"),
        ("PUT", "/organizations/globex/options/protect_dynamic_stack"),
        ("GET", "/organizations/globex/memberships"),
        ("POST", "/organizations/globex/memberships"),
        ("GET", f"/organizations/globex/memberships/{other_account.user_id}"),
        ("PUT", f"/organizations/globex/memberships/{account.user_id}"),
        ("DELETE", f"/organizations/globex/memberships/{other_account.user_id}"),
    ]:
        response = account.request(method, path, data=json.dumps({"roles": ["admin"]}))
        assert_error(response, 403)
    # An unknown org answers exactly like a foreign one: no existence oracle.
    foreign = account.request("GET", "/organizations/globex").get_json()["error"]["message"]
    unknown = account.request("GET", "/organizations/nobody").get_json()["error"]["message"]
    assert foreign.replace("globex", "X") == unknown.replace("nobody", "X")
    # Still intact for its owner.
    members = other_account.request("GET", "/organizations/globex/memberships").get_json()
    assert [m["user_id"] for m in members["items"]] == [other_account.user_id]


# -- GET /user and keys -------------------------------------------------------------------


def test_get_user(account):
    body = account.request("GET", "/user").get_json()
    assert set(body) == {"user_id", "email", "api_keys"}
    assert body["user_id"] == account.user_id and body["email"] == "admin@acme.example"
    assert len(body["api_keys"]) == 1 and set(body["api_keys"][0]) == {"id", "comment", "created"}


def test_api_key_lifecycle(account, client):
    first = account.request("GET", "/user/apikeys/current").get_json()
    assert set(first) == {"id", "comment", "created"}
    response = account.request("POST", "/user/apikeys", data=json.dumps({"comment": "ci"}))
    assert response.status_code == 200
    new = response.get_json()
    assert set(new) == {"id", "api_key", "comment", "created"} and new["comment"] == "ci"
    listed = account.request("GET", "/user/apikeys").get_json()
    assert [k["id"] for k in listed] == [first["id"], new["id"]]
    assert all("api_key" not in k for k in listed)
    # The new key works, and knows it is current.
    new_headers = {"Api-Key": new["api_key"]}
    assert client.get("/user/apikeys/current", headers=new_headers).get_json()["id"] == new["id"]
    # A key cannot delete itself; it can delete another.
    assert_error(account.request("DELETE", f"/user/apikeys/{first['id']}"), 409)
    assert client.delete(f"/user/apikeys/{first['id']}", headers=new_headers).status_code == 204
    assert_error(account.request("GET", "/user"), 403)  # the deleted key is dead
    assert_error(client.delete(f"/user/apikeys/{first['id']}", headers=new_headers), 404)
    assert_error(client.delete("/user/apikeys/" + "z" * 500, headers=new_headers), 404)


def test_api_key_without_body_and_limit(account):
    assert account.request("POST", "/user/apikeys").status_code == 200  # no body at all
    for _ in range(3):
        assert account.request("POST", "/user/apikeys", data="{}").status_code == 200
    assert_error(account.request("POST", "/user/apikeys", data="{}"), 409)  # sixth key
    assert len(account.request("GET", "/user/apikeys").get_json()) == 5


@pytest.mark.parametrize("body", ['{"comment": 5}', '{"comment": "' + "c" * 300 + '"}', "[1]"])
def test_api_key_bad_comment(account, body):
    assert_error(account.request("POST", "/user/apikeys", data=body), 400)


def test_api_keys_cannot_delete_keys_of_other_users(account, other_account):
    theirs = other_account.request("GET", "/user/apikeys/current").get_json()["id"]
    assert_error(account.request("DELETE", f"/user/apikeys/{theirs}"), 404)
    assert other_account.request("GET", "/user").status_code == 200


# -- organizations ------------------------------------------------------------------------


def test_create_and_get_organization(account):
    body = {"billing_email": "bill@acme.example", "display_name": "Acme Two"}
    response = account.request("PUT", "/organizations/acme-two", data=json.dumps(body))
    assert response.status_code == 200
    org = response.get_json()
    assert org["name"] == "acme-two" and org["display_name"] == "Acme Two"
    assert org["master_organization"] == "acme-two" and org["options"] == {}
    assert len(org["signing_keys"]) == 1 and len(org["signing_keys"][0]["key"]) == 64
    assert account.request("GET", "/organizations/acme-two").get_json() == org
    # The creator is admin of it.
    members = account.request("GET", "/organizations/acme-two/memberships").get_json()
    assert members["items"][0]["user_id"] == account.user_id
    assert members["items"][0]["roles"] == ["admin"]


def test_create_organization_conflicts(account, other_account):
    assert_error(account.request("PUT", "/organizations/acme", data="{}"), 409)
    assert_error(account.request("PUT", "/organizations/globex", data="{}"), 409)


@pytest.mark.parametrize(
    "name,body",
    [
        ("Bad", {}),
        ("stacks", {}),
        ("a" * 64, {}),
        ("ok-name", {"billing_email": "not-an-email"}),
        ("ok-name", {"display_name": 12}),
        ("ok-name", {"display_name": "d" * 256}),
        ("ok-name", {"master_organization": "globex"}),  # not admin there
        ("ok-name", [1, 2]),
    ],
)
def test_create_organization_validation(account, other_account, name, body):
    status = 403 if "master_organization" in body else 400
    assert_error(account.request("PUT", f"/organizations/{name}", data=json.dumps(body)), status)


def test_master_organization_needs_admin_there(account):
    body = {"master_organization": "acme"}
    response = account.request("PUT", "/organizations/acme-child", data=json.dumps(body))
    assert response.status_code == 200 and response.get_json()["master_organization"] == "acme"


def test_organization_options(account, other_account):
    body = {
        "remote_basepath": "https://images.example/base",
        "remote_fullurl_allow": True,
        "remote_fullurl_whitelist": ["^https://cdn\\.example/"],
        "protect_dynamic_stack": False,
    }
    response = account.request("PUT", "/organizations/acme/options", data=json.dumps(body))
    assert response.status_code == 200
    assert response.get_json()["options"] == body
    # Single option, as rokka.js sends it (bare value, text/plain).
    response = account.request(
        "PUT", "/organizations/acme/options/protect_dynamic_stack", data="true", headers=TEXT_PLAIN
    )
    assert response.get_json()["options"]["protect_dynamic_stack"] is True
    response = account.request(
        "PUT", "/organizations/acme/options/remote_basepath", data="https://other.example/"
    )
    assert response.get_json()["options"]["remote_basepath"] == "https://other.example/"
    # null unsets; the rest is kept.
    response = account.request("PUT", "/organizations/acme/options/remote_basepath", data="null")
    options = account.request("GET", "/organizations/acme").get_json()["options"]
    assert "remote_basepath" not in options and options["remote_fullurl_allow"] is True
    # render_org_fallback needs admin on both organizations.
    response = account.request(
        "PUT", "/organizations/acme/options/render_org_fallback", data='"globex"'
    )
    assert_error(response, 403)
    account.request("PUT", "/organizations/acme-fallback", data="{}")
    response = account.request(
        "PUT", "/organizations/acme/options/render_org_fallback", data="acme-fallback"
    )
    assert response.get_json()["options"]["render_org_fallback"] == "acme-fallback"


@pytest.mark.parametrize(
    "option,value",
    [
        ("remote_fullurl_allow", '"maybe"'),
        ("remote_fullurl_allow", "1.5"),
        ("protect_dynamic_stack", "[]"),
        ("remote_basepath", "ftp://x"),
        ("remote_basepath", "42"),
        ("remote_fullurl_whitelist", '"^x"'),
        ("remote_fullurl_whitelist", '["(unclosed"]'),
        ("remote_fullurl_whitelist", "[1]"),
        ("render_org_fallback", '"NOT VALID"'),
        ("no_such_option", "true"),
    ],
)
def test_organization_option_validation(account, option, value):
    response = account.request("PUT", f"/organizations/acme/options/{option}", data=value)
    assert_error(response, 400)
    body = json.dumps({option: json.loads(value)}) if value != "ftp://x" else '{"x": 1}'
    assert_error(account.request("PUT", "/organizations/acme/options", data=body), 400)


def test_options_body_must_be_object(account):
    assert_error(account.request("PUT", "/organizations/acme/options", data="[]"), 400)


# -- memberships --------------------------------------------------------------------------


def new_member(account: Account, roles: list[str]) -> dict[str, Any]:
    response = account.request(
        "POST", f"/organizations/{account.org}/memberships", data=json.dumps({"roles": roles})
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_create_membership_with_new_user(account, client):
    member = new_member(account, ["upload", "read"])
    assert member["roles"] == ["upload", "read"] and member["active"] is True
    assert member["email"] == "admin@acme.example"  # rokka copies the creator's email
    key = {"Api-Key": member["api_key"]}
    # A read member may read the organization but not manage memberships or options.
    assert client.get("/organizations/acme", headers=key).status_code == 200
    assert_error(client.get("/organizations/acme/memberships", headers=key), 403)
    assert_error(client.put("/organizations/acme/options", headers=key, data="{}"), 403)
    # Key-restricted roles: GET /user shows only the id, key management is refused.
    assert client.get("/user", headers=key).get_json() == {"user_id": member["user_id"]}
    assert_error(client.get("/user/apikeys", headers=key), 403)
    assert_error(client.post("/user/apikeys", headers=key), 403)
    assert client.get("/user/apikeys/current", headers=key).status_code == 200


def test_upload_only_member_cannot_read_org(account, client):
    member = new_member(account, ["upload"])
    assert_error(client.get("/organizations/acme", headers={"Api-Key": member["api_key"]}), 403)


def test_put_membership_statuses(client, account):
    # A user fresh from POST /users (no organization yet) may be enrolled, as rokka.js does.
    fresh = post_json(client, "/users", {"email": "out@side.example"}).get_json()
    path = f"/organizations/acme/memberships/{fresh['id']}"
    created = account.request("PUT", path, data=json.dumps({"role": "write"}))
    assert created.status_code == 201 and created.get_json()["roles"] == ["write"]
    # The new member now writes in acme, with the same key.
    newcomer = {"Api-Key": fresh["api_key"]}
    assert client.get("/organizations/acme", headers=newcomer).status_code == 200
    same = account.request("PUT", path, data=json.dumps({"roles": ["write"]}))
    assert same.status_code == 204 and same.get_data() == b""
    updated = account.request("PUT", path, data=json.dumps({"roles": ["write", "upload"]}))
    assert updated.status_code == 200 and updated.get_json()["roles"] == ["write", "upload"]
    commented = account.request(
        "PUT", path, data=json.dumps({"roles": ["write", "upload"], "comment": "agency"})
    )
    assert commented.status_code == 200 and commented.get_json()["comment"] == "agency"
    got = account.request("GET", path).get_json()
    assert (
        got["comment"] == "agency"
        and got["organization_id"] == created.get_json()["organization_id"]
    )
    # Duplicate roles collapse.
    dup = account.request("PUT", path, data=json.dumps({"roles": ["read", "read"]}))
    assert dup.get_json()["roles"] == ["read"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"roles": []},
        {"roles": "admin"},
        {"roles": ["owner"]},
        {"roles": [None]},
        {"roles": [["admin"]]},
        {"role": 1},
        {"role": "ADMIN"},
        {"roles": ["admin"] * 50},
        {"roles": ["read"], "comment": 3},
    ],
)
def test_membership_validation(account, body):
    path = f"/organizations/acme/memberships/{account.user_id}"
    assert_error(account.request("PUT", path, data=json.dumps(body)), 400)
    path = "/organizations/acme/memberships"
    assert_error(account.request("POST", path, data=json.dumps(body)), 400)


def test_membership_unknown_user(account):
    path = "/organizations/acme/memberships/00000000-0000-0000-0000-000000000000"
    assert_error(account.request("PUT", path, data='{"roles": ["read"]}'), 404)
    assert_error(account.request("GET", path), 404)
    assert_error(account.request("DELETE", path), 404)
    long = "/organizations/acme/memberships/" + "u" * 300
    assert_error(account.request("PUT", long, data='{"roles": ["read"]}'), 404)


def test_last_admin_is_protected(account):
    own = f"/organizations/acme/memberships/{account.user_id}"
    assert_error(account.request("PUT", own, data='{"roles": ["write"]}'), 409)
    assert_error(account.request("DELETE", own), 409)
    # With a second admin, the first may step down.
    second = new_member(account, ["admin"])
    assert account.request("PUT", own, data='{"roles": ["write"]}').status_code == 200
    # Now the second is the last admin and the first can no longer manage memberships.
    assert_error(account.request("GET", "/organizations/acme/memberships"), 403)
    client, key = account.client, {"Api-Key": second["api_key"]}
    last = f"/organizations/acme/memberships/{second['user_id']}"
    assert_error(client.delete(last, headers=key), 409)
    assert client.delete(own, headers=key).status_code == 204
    assert_error(client.delete(own, headers=key), 404)
    assert_error(account.request("GET", "/organizations/acme"), 403)


def test_write_member_cannot_manage_memberships(account, client):
    member = new_member(account, ["write"])
    key = {"Api-Key": member["api_key"]}
    assert_error(client.post("/organizations/acme/memberships", headers=key, data="{}"), 403)
    # write is not key-restricted: the member may manage its own keys.
    assert client.post("/user/apikeys", headers=key).status_code == 200


# -- hostile bodies ------------------------------------------------------------------------

HOSTILE_BODIES: list[tuple[str | bytes, int]] = [
    (b"", 400),
    (b"not json", 400),
    (b"{", 400),
    (b"\xff\xfe\x00", 400),
    (b"NaN", 400),
    (b'{"email": 1e999}', 400),
    (b"[" * 100_000 + b"]" * 100_000, 413),
    (b"[" * 20_000 + b"]" * 20_000, 400),  # under the size cap, too deep to parse
    (json.dumps({"email": "a@b.c", "pad": "x" * 70_000}).encode(), 413),
    (b"null", 400),
    (b'"a string"', 400),
    (b"12", 400),
    (json.dumps({"email": "a@b.c", "organization": "' OR 1=1 --"}).encode(), 400),
    (json.dumps({"email": "a@b.c", "organization": {"$ne": 1}}).encode(), 400),
    (json.dumps({"email": "\u202e@\u0000.c", "organization": "🙂"}).encode(), 400),
]


@pytest.mark.parametrize("body,status", HOSTILE_BODIES)
def test_hostile_signup_bodies(client, body, status):
    assert_error(client.post("/users", data=body, headers=TEXT_PLAIN), status)


@pytest.mark.parametrize("body,status", HOSTILE_BODIES)
@pytest.mark.parametrize(
    "method,path",
    [
        ("PUT", "/organizations/acme/options"),
        ("POST", "/organizations/acme/memberships"),
        ("PUT", "/organizations/acme/memberships/{user_id}"),
    ],
)
def test_hostile_authenticated_bodies(account, method, path, body, status):
    response = account.request(method, path.format(user_id=account.user_id), data=body)
    assert_error(response, status)


@pytest.mark.parametrize("body,status", [(b, s) for b, s in HOSTILE_BODIES if b.strip()])
def test_hostile_organization_bodies(account, body, status):
    # Unknown fields are ignored (as rokka), so only malformed JSON and non-objects fail here.
    response = account.request("PUT", "/organizations/acme-new", data=body)
    try:
        parsed = loads_strict(body) if len(body) <= 64 * 1024 else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):  # well-formed object with only unknown fields
        assert response.status_code == 200
    else:
        assert_error(response, status)


@pytest.mark.parametrize(
    "path",
    [
        "/organizations/%27%20OR%201=1--",
        "/organizations/%00",
        "/organizations/" + "a" * 5000,
        "/organizations/%F0%9F%99%82/memberships",
        "/organizations/acme/memberships/%27%3B%20DROP%20TABLE%20users%3B--",
    ],
)
def test_hostile_paths(account, path):
    response = account.request("GET", path)
    assert 400 <= response.status_code < 500
    assert response.headers["Content-Type"] == "application/json"


# -- recorded rokka.js traffic --------------------------------------------------------------


def replay(client, exchange: dict[str, Any], path: str, headers: dict[str, str]):
    """Send a recorded exchange's method and body (as rokka.js would) to ``path``."""
    body = exchange["body"]
    data = json.dumps(body) if body != "" else None
    return client.open(
        path, method=exchange["method"], data=data, headers={**TEXT_PLAIN, **headers}
    )


def test_recording_users_create(client):
    (exchange,) = load_recording("users_create")
    response = replay(client, exchange, exchange["path"], {})
    assert response.status_code == exchange["status"]
    assert_shape(exchange["response"], response.get_json())
    assert set(response.get_json()) == set(exchange["response"])


def test_recording_organizations(client, account):
    (create,) = load_recording("organizations_create")
    response = replay(client, create, create["path"], account.headers)
    assert response.status_code == create["status"]
    assert_shape(create["response"], response.get_json(), extra={"options", "signing_keys"})
    assert response.get_json()["display_name"] == create["body"]["display_name"]

    (get,) = load_recording("organizations_get")
    owner = Account(client, "rokka-js-tests", "rokka-test@example.org")
    response = replay(client, get, get["path"], owner.headers)
    assert response.status_code == get["status"]
    assert_shape(get["response"], response.get_json(), extra={"options", "signing_keys"})


def test_recording_memberships_and_users_getid(client):
    """Replays the memberships recordings in order in one organization.

    Recorded ids map onto ours: 9727f161… is the admin, 679cd7aa… the user created by
    ``memberships_create_with_new_user``. We add ``created`` to memberships and, not
    tracking it yet, omit ``last_access`` (docs/accounts.md).
    """
    admin = Account(client, "rokka-js-tests", "rokka-test@example.org")
    ids = {"9727f161-d236-4e89-8a03-b0da1a68efdc": admin.user_id}
    extra, missing = frozenset({"created", "comment"}), frozenset({"last_access"})

    def run(name: str, key: dict[str, str]):
        (exchange,) = load_recording(name)
        path = exchange["path"]
        for recorded, ours in ids.items():
            path = path.replace(recorded, ours)
        response = replay(client, exchange, path, key)
        assert response.status_code == exchange["status"], (name, response.get_data())
        if exchange["response"] != "":
            assert response.headers["Content-Type"] == "application/json"
            assert_shape(exchange["response"], response.get_json(), extra=extra, missing=missing)
        return response

    created = run("memberships_create_with_new_user", admin.headers).get_json()
    ids["679cd7aa-5445-4d6a-8d56-930557a2a77e"] = created["user_id"]
    assert created["roles"] == ["upload", "read"]

    # users_getid was recorded with such a key-restricted user: only user_id.
    (getid,) = load_recording("users_getid")
    response = replay(client, getid, "/user", {"Api-Key": created["api_key"]})
    assert response.status_code == 200 and set(response.get_json()) == set(getid["response"])

    updated = run("memberships_create_with_array", admin.headers).get_json()
    assert updated["roles"] == ["upload", "write"]
    listed = run("memberships_list", admin.headers).get_json()
    assert listed["total"] == 2 and len(listed["items"]) == 2
    run("memberships_delete", admin.headers)
    assert (
        admin.request("GET", "/organizations/rokka-js-tests/memberships").get_json()["total"] == 1
    )
