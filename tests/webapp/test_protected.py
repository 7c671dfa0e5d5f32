"""Protected images, stacks and dynamic renders over HTTP: signatures, expiry, key rotation,
and ``POST /utils/{org}/sign_url`` (docs/render.md, "Signed URLs")."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus, urlsplit

import pytest

from tests.engine.conftest import decode, png, scene
from webapp.signing import iso_until, signature

BYTES = png(scene(80, 60))


def upload(account, data: bytes = BYTES, *, protected: bool = False) -> dict:
    form = {"filedata": (io.BytesIO(data), "x.png")}
    if protected:
        form["options[0]"] = json.dumps({"protected": True})
    response = account.request(
        "POST", f"/sourceimages/{account.org}", data=form, content_type="multipart/form-data"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"][0]


def keys_of(account) -> list[str]:
    org = account.request("GET", f"/organizations/{account.org}").get_json()
    return [k["key"] for k in org["signing_keys"]]


def signed(path: str, key: str, *, until: datetime | None = None, query: str = "") -> str:
    """``path`` with a rokka.js-style signature (``sigopts`` before ``sig``)."""
    parts = [query] if query else []
    if until is not None:
        opts = json.dumps({"until": iso_until(until)}, separators=(",", ":"))
        parts.append("sigopts=" + quote_plus(opts))
    joined = "&".join(parts)
    sig = signature(f"{path}?{joined}" if joined else path, key)
    return f"{path}?{joined}&sig={sig}" if joined else f"{path}?sig={sig}"


def assert_forbidden(response, reason: str = "") -> None:
    """403 in the one error shape, with exactly ``application/json``."""
    assert response.status_code == 403, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["error"]["code"] == 403
    assert reason in body["error"]["message"]


@pytest.fixture
def protected(account) -> dict:
    """A protected 80x60 image of ``acme``."""
    return upload(account, protected=True)


# -- protected images -----------------------------------------------------------------------


def test_protected_upload_gets_its_own_hash_and_needs_a_signature(client, account, protected):
    plain = upload(account)
    assert protected["protected"] is True and plain["protected"] is False
    assert protected["binary_hash"] == plain["binary_hash"]
    assert protected["hash"] != plain["hash"]
    path = f"/{account.org}/dynamic/resize-width-40/{protected['hash']}.png"
    assert_forbidden(client.get(path), "sig")
    response = client.get(signed(path, keys_of(account)[0]))
    assert response.status_code == 200
    assert decode(response.data).shape[:2] == (30, 40)
    # The unprotected twin renders without a signature.
    assert (
        client.get(f"/{account.org}/dynamic/resize-width-40/{plain['hash']}.png").status_code == 200
    )


def test_tampered_signatures_fail(client, account, protected):
    key = keys_of(account)[0]
    path = f"/{account.org}/dynamic/resize-width-40/{protected['hash']}.png"
    good = signed(path, key)
    assert client.get(good).status_code == 200
    assert_forbidden(client.get(good.replace("width-40", "width-41")), "invalid")
    assert_forbidden(client.get(good.replace(".png", ".jpg")), "invalid")
    assert_forbidden(client.get(good + "&v=%7B%7D"), "invalid")  # query added after signing
    assert_forbidden(client.get(good[:-1] + ("0" if good[-1] != "0" else "1")), "invalid")
    assert_forbidden(client.get(signed(path, "not-the-key")), "invalid")
    assert_forbidden(client.get(path + "?sig="), "sig")


def test_signed_response_is_not_served_unsigned_from_the_cache(client, account, protected):
    path = f"/{account.org}/dynamic/resize-width-20/{protected['hash']}.png"
    assert client.get(signed(path, keys_of(account)[0])).status_code == 200
    assert_forbidden(client.get(path))


def test_slug_and_no_slug_signatures(client, account, protected):
    key = keys_of(account)[0]
    slugged = f"/{account.org}/dynamic/resize-width-40/{protected['hash']}/my-photo.png"
    bare = f"/{account.org}/dynamic/resize-width-40/{protected['hash']}.png"
    # rokka.js signs without the slug, rokka-utils-php with it: both verify.
    sig_without = signature(bare, key)
    assert client.get(f"{slugged}?sig={sig_without}").status_code == 200
    assert client.get(signed(slugged, key)).status_code == 200
    # A signature made for one slug does not open another slug.
    other = signed(f"/{account.org}/dynamic/resize-width-40/{protected['hash']}/a.png", key)
    assert_forbidden(client.get(other.replace("/a.png", "/b.png")), "invalid")
    # Signed without the /{org} prefix (the path on an {org}.render-domain host).
    unprefixed = f"/dynamic/resize-width-40/{protected['hash']}.png"
    assert client.get(f"{bare}?sig={signature(unprefixed, key)}").status_code == 200


def test_until_limits_validity_and_caching(client, account, protected):
    key = keys_of(account)[0]
    path = f"/{account.org}/dynamic/resize-width-40/{protected['hash']}.png"
    future = datetime.now(UTC) + timedelta(hours=1)
    response = client.get(signed(path, key, until=future))
    assert response.status_code == 200
    max_age = int(re.search(r"max-age=(\d+)", response.headers["Cache-Control"]).group(1))
    assert 3500 < max_age <= 3600  # no cache may keep it past "until"
    assert "immutable" not in response.headers["Cache-Control"]
    past = datetime.now(UTC) - timedelta(seconds=5)
    assert_forbidden(client.get(signed(path, key, until=past)), "expired")
    # Moving "until" after signing breaks the signature.
    url = signed(path, key, until=future)
    later = quote_plus(iso_until(future + timedelta(days=1)))
    assert_forbidden(client.get(url.replace(quote_plus(iso_until(future)), later)), "invalid")
    assert_forbidden(client.get(path + "?sigopts=nonsense&sig=" + signature(path, key)))


def test_put_options_protected(client, account):
    plain = upload(account)
    base = f"/sourceimages/{account.org}/{plain['hash']}/options/protected"
    response = account.request("PUT", base, data="true")
    assert response.status_code == 201
    made = response.get_json()
    assert made["protected"] is True and made["hash"] != plain["hash"]
    assert response.headers["Location"] == f"/sourceimages/{account.org}/{made['hash']}"
    # The previous image is kept unless deletePrevious.
    assert account.request("GET", f"/sourceimages/{account.org}/{plain['hash']}").status_code == 200
    assert_forbidden(client.get(f"/{account.org}/dynamic/noop/{made['hash']}.png"))
    assert (
        account.request(
            "PUT", f"/sourceimages/{account.org}/{made['hash']}/options/protected", data="true"
        ).status_code
        == 204
    )  # unchanged
    back = account.request(
        "PUT",
        f"/sourceimages/{account.org}/{made['hash']}/options/protected?deletePrevious=true",
        data="false",
    )
    assert back.status_code == 201
    assert back.get_json()["hash"] == plain["hash"]
    assert account.request("GET", f"/sourceimages/{account.org}/{made['hash']}").status_code == 404


# -- protected stacks and dynamic renders ----------------------------------------------------


def put_stack(account, name: str, options: dict, *, overwrite: bool = False):
    body = {"operations": [{"name": "resize", "options": {"width": 20}}], "options": options}
    query = "?overwrite=true" if overwrite else ""
    return account.request("PUT", f"/stacks/{account.org}/{name}{query}", data=json.dumps(body))


def test_protected_stack(client, account):
    image = upload(account)["hash"]
    assert put_stack(account, "secret", {"protected": True}).status_code == 201
    path = f"/{account.org}/secret/{image}.png"
    assert_forbidden(client.get(path))
    assert client.get(signed(path, keys_of(account)[0])).status_code == 200
    # Overwriting may drop protection but a public stack cannot be protected by overwrite.
    assert put_stack(account, "open", {}).status_code == 201
    refused = put_stack(account, "open", {"protected": True}, overwrite=True)
    assert refused.status_code == 400
    assert client.get(f"/{account.org}/open/{image}.png").status_code == 200
    assert put_stack(account, "secret", {}, overwrite=True).status_code == 200


def test_protect_dynamic_stack_option(client, account):
    image = upload(account)["hash"]
    assert put_stack(account, "public", {}).status_code == 201
    option = f"/organizations/{account.org}/options/protect_dynamic_stack"
    response = account.request("PUT", option, data="true")
    assert response.status_code == 200
    assert response.get_json()["options"]["protect_dynamic_stack"] is True
    dynamic = f"/{account.org}/dynamic/resize-width-10/{image}.png"
    assert_forbidden(client.get(dynamic))
    assert client.get(signed(dynamic, keys_of(account)[0])).status_code == 200
    assert client.get(f"/{account.org}/public/{image}.png").status_code == 200  # named: open
    assert account.request("PUT", option, data="false").status_code == 200
    assert client.get(dynamic).status_code == 200


# -- key rotation ------------------------------------------------------------------------------


def test_key_rotation_keeps_the_old_key_until_it_is_removed(client, account, protected):
    path = f"/{account.org}/dynamic/resize-width-40/{protected['hash']}.png"
    (old,) = keys_of(account)
    old_url = signed(path, old)
    assert client.get(old_url).status_code == 200

    rotated = account.request("POST", f"/organizations/{account.org}/signing_keys")
    assert rotated.status_code == 201
    assert rotated.headers["Content-Type"] == "application/json"
    keys = rotated.get_json()["signing_keys"]
    assert [k["key"] for k in keys][1:] == [old]  # the new key first, the old one kept
    new = keys[0]["key"]
    assert new != old and re.fullmatch(r"[A-Za-z0-9]{64}", new)
    assert set(keys[0]) == {"key", "created"}
    assert keys_of(account) == [new, old]  # also in GET /organizations

    # Overlap: URLs signed with either key verify.
    assert client.get(old_url).status_code == 200
    assert client.get(signed(path, new)).status_code == 200

    dropped = account.request("DELETE", f"/organizations/{account.org}/signing_keys?keep=1")
    assert dropped.status_code == 200
    assert [k["key"] for k in dropped.get_json()["signing_keys"]] == [new]
    assert_forbidden(client.get(old_url), "invalid")
    assert client.get(signed(path, new)).status_code == 200
    listed = account.request("GET", f"/organizations/{account.org}/signing_keys").get_json()
    assert [k["key"] for k in listed["signing_keys"]] == [new]


def test_rotation_limits_and_permissions(client, account, member):
    url = f"/organizations/{account.org}/signing_keys"
    for _ in range(4):
        assert account.request("POST", url).status_code == 201
    too_many = account.request("POST", url)
    assert too_many.status_code == 409
    assert too_many.get_json()["error"]["code"] == 409
    for bad in ("0", "-1", "x", "101"):
        assert account.request("DELETE", f"{url}?keep={bad}").status_code == 400
    writer = member(account.org, ["write"])
    assert writer.request("POST", url).status_code == 403
    assert writer.request("DELETE", url).status_code == 403
    assert writer.request("GET", url).status_code == 200  # read roles see keys, as in GET org
    assert client.post(url).status_code == 403


# -- POST /utils/{org}/sign_url ------------------------------------------------------------------


def test_sign_url_json_body_as_rokka_js_sends_it(client, account, protected):
    render_url = f"http://localhost/{account.org}/dynamic/resize-width-40/{protected['hash']}.png"
    response = account.request(
        "POST",
        f"/utils/{account.org}/sign_url",
        data=json.dumps({"url": render_url, "round_date_up_to": 600}),
        content_type="text/plain;charset=UTF-8",
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["original_url"] == render_url
    assert "until" not in body
    parts = urlsplit(body["signed_url"])
    assert parts.path == urlsplit(render_url).path
    assert client.get(f"{parts.path}?{parts.query}").status_code == 200


def test_sign_url_with_until_form_and_query(client, account, protected):
    path = f"/{account.org}/dynamic/noop/{protected['hash']}.png"
    until = "2999-01-01T00:01:00Z"
    form = account.request(
        "POST", f"/utils/{account.org}/sign_url", data={"url": path, "until": until}
    )
    assert form.status_code == 200, form.get_data(as_text=True)
    body = form.get_json()
    assert body["until"] == "2999-01-01T00:05:00.000Z"  # rounded up to 300 s
    assert "sigopts=" in body["signed_url"]
    assert client.get(body["signed_url"]).status_code == 200
    # rokka-client-php: query parameters, with an explicit key and rounding.
    old = keys_of(account)[0]
    account.request("POST", f"/organizations/{account.org}/signing_keys")
    query = account.request(
        "POST",
        f"/utils/{account.org}/sign_url?url={quote_plus(path)}&key={old}"
        f"&until={quote_plus(until)}&roundDateUpTo=1",
    )
    assert query.status_code == 200, query.get_data(as_text=True)
    body = query.get_json()
    assert body["until"] == "2999-01-01T00:01:00.000Z"
    assert body["signed_url"] == signed(path, old, until=datetime(2999, 1, 1, 0, 1, tzinfo=UTC))
    assert client.get(body["signed_url"]).status_code == 200


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({}, 400),
        ({"url": "ftp://x/y.png"}, 400),
        ({"url": 5}, 400),
        ({"url": "/acme/dynamic/noop/abcdef.png", "until": "yesterday"}, 400),
        ({"url": "/acme/dynamic/noop/abcdef.png", "round_date_up_to": -1}, 400),
        ({"url": "/acme/dynamic/noop/abcdef.png", "key": "not-a-key"}, 400),
    ],
)
def test_sign_url_bad_input(account, payload, status):
    response = account.request("POST", f"/utils/{account.org}/sign_url", data=json.dumps(payload))
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == status


def test_sign_url_needs_membership(client, account, other_account):
    body = json.dumps({"url": "/acme/dynamic/noop/abcdef.png"})
    assert client.post(f"/utils/{account.org}/sign_url", data=body).status_code == 403
    assert (
        other_account.request("POST", f"/utils/{account.org}/sign_url", data=body).status_code
        == 403
    )
    uploader = other_account  # a member of globex only
    assert (
        uploader.request("POST", f"/utils/{other_account.org}/sign_url", data=body).status_code
        == 200
    )
