"""JWTs from ``GET /user/apikeys/token`` and ``Authorization: Bearer`` (docs/accounts.md).

Statuses as rokka documents them: an invalid token (malformed, forged, expired, revoked,
used from another address) is 401, a refused renewal 403, a bad option 400.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Account
from webapp import create_app
from webapp.app import catalog, token_secret
from webapp.tokens import _signing_key


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get_token(client: FlaskClient, headers: dict[str, str], **query: Any):  # noqa: ANN201
    return client.get("/user/apikeys/token", headers=headers, query_string=query)


def new_token(account: Account, **query: Any) -> dict[str, Any]:
    response = get_token(account.client, account.headers, **query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def assert_error(response, status: int) -> str:  # noqa: ANN001
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == status
    return error["message"]


def test_a_key_gets_a_token_with_rokkas_payload(account: Account) -> None:
    before = int(time.time())
    answer = new_token(account)
    payload = answer["payload"]
    assert payload["id"] == account.user_id
    assert before + 86_400 <= payload["exp"] <= int(time.time()) + 86_400
    assert payload["expt"] == 86_400
    assert payload["ips"] == ["127.0.0.1"]  # IP protected by default, to the caller's address
    assert payload["rn"] is True
    # the token's own payload is the one shown
    claims = jwt.decode(answer["token"], options={"verify_signature": False})
    assert {k: claims[k] for k in payload} == payload


def test_the_token_authenticates_like_its_key(account: Account) -> None:
    token = new_token(account)["token"]
    client = account.client
    current = client.get("/user/apikeys/current", headers=bearer(token))
    assert current.status_code == 200
    assert current.get_json() == account.request("GET", "/user/apikeys/current").get_json()
    org = client.get(f"/organizations/{account.org}", headers=bearer(token))
    assert org.status_code == 200
    assert org.get_json()["name"] == account.org
    # rokka's clients send both when both are set; the key wins
    both = client.get("/user", headers={**bearer("garbage"), **account.headers})
    assert both.status_code == 200


def test_post_is_accepted_too(account: Account) -> None:
    response = account.client.post("/user/apikeys/token", headers=account.headers)
    assert response.status_code == 200
    assert set(response.get_json()) == {"token", "payload"}


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.eyJpZCI6IngifQ.", "x" * 5000],
)
def test_malformed_tokens_are_401(client: FlaskClient, account: Account, token: str) -> None:
    response = client.get("/user", headers=bearer(token))
    assert_error(response, 401)
    assert response.get_json()["error"]["invalid_authentication"] is True


def test_a_tampered_token_is_401(account: Account) -> None:
    token = new_token(account, no_ip_protection="true")["token"]
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["exp"] += 86_400 * 365
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = account.client.get("/user", headers=bearer(f"{head}.{forged}.{signature}"))
    assert "not valid" in assert_error(response, 401)


def test_an_expired_token_is_401(app: Flask, account: Account) -> None:
    with app.app_context():
        key = catalog().accounts.key_by_hash(_digest(account))
        expired = jwt.encode(
            {
                "id": account.user_id,
                "kid": key["id"],
                "exp": int(time.time()) - 5,
                "expt": 60,
                "ips": [],
                "rn": True,
            },
            _signing_key(token_secret(), key["key_hash"]),
            algorithm="HS256",
        )
    response = account.client.get("/user", headers=bearer(expired))
    assert "expired" in assert_error(response, 401)


def _digest(account: Account) -> str:
    from webapp.auth import hash_key

    return hash_key(account.api_key)


def test_a_token_of_another_server_secret_is_401(tmp_path: Path, account: Account) -> None:
    token = new_token(account)["token"]
    settings = account.client.application.extensions["cropstack.settings"]
    here = {"data_dir": settings.data_dir, "database_url": settings.database_url}
    other = create_app({**here, "token_secret": "another-secret"})
    response = other.test_client().get("/user", headers=bearer(token))
    assert_error(response, 401)
    # and one from this data dir's own secret keeps working on the same data dir
    same = create_app(here)
    assert same.test_client().get("/user", headers=bearer(token)).status_code == 200


def test_ip_protection(account: Account) -> None:
    client = account.client
    elsewhere = new_token(account, ips="10.1.2.0/24")
    assert elsewhere["payload"]["ips"] == ["10.1.2.0/24"]
    assert "address" in assert_error(client.get("/user", headers=bearer(elsewhere["token"])), 401)
    here = new_token(account, ips="request_ip,10.1.2.3")
    assert here["payload"]["ips"] == ["127.0.0.1", "10.1.2.3"]
    assert client.get("/user", headers=bearer(here["token"])).status_code == 200
    anywhere = new_token(account, no_ip_protection="true")
    assert anywhere["payload"]["ips"] == []
    assert anywhere["payload"]["rn"] is False  # not renewable unless asked
    assert (
        client.get(
            "/user", headers=bearer(anywhere["token"]), environ_base={"REMOTE_ADDR": "192.0.2.7"}
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"no_ip_protection": "true", "ips": "10.0.0.1"}, "combined"),
        ({"expires_in": "soon"}, "whole number"),
        ({"expires_in": "0"}, "between"),
        ({"expires_in": str(400 * 86_400)}, "between"),
        ({"ips": ",".join(f"10.0.0.{i}" for i in range(11))}, "at most 10"),
        ({"ips": "10.0.0.0/8"}, "10000 addresses"),
        ({"ips": "example.com"}, "CIDR"),
        ({"renewable": "maybe"}, "true or false"),
    ],
)
def test_bad_options_are_400(account: Account, query: dict[str, str], words: str) -> None:
    assert words in assert_error(get_token(account.client, account.headers, **query), 400)


def test_renewing_with_a_token(account: Account) -> None:
    client = account.client
    first = new_token(account, expires_in="3600", ips="request_ip,10.9.9.9")
    renewed = get_token(client, bearer(first["token"]), expires_in="600")
    assert renewed.status_code == 200
    payload = renewed.get_json()["payload"]
    assert payload["expt"] == 600 and payload["ips"] == first["payload"]["ips"]
    assert client.get("/user", headers=bearer(renewed.get_json()["token"])).status_code == 200
    # never longer than the token it renews, never from more addresses
    assert "longer" in assert_error(
        get_token(client, bearer(first["token"]), expires_in="7200"), 403
    )
    wider = get_token(client, bearer(first["token"]), no_ip_protection="true")
    assert "addresses" in assert_error(wider, 403)
    # a token made not renewable can't renew
    fixed = new_token(account, renewable="false")
    assert "not renewable" in assert_error(get_token(client, bearer(fixed["token"])), 403)
    # an API key isn't bound by any of this
    assert get_token(client, account.headers, expires_in="7200").status_code == 200


def test_deleting_the_key_revokes_its_tokens(account: Account) -> None:
    second = account.request("POST", "/user/apikeys").get_json()
    token = new_token(_caller(account, second["api_key"]))["token"]
    assert account.client.get("/user", headers=bearer(token)).status_code == 200
    deleted = account.request("DELETE", f"/user/apikeys/{second['id']}")
    assert deleted.status_code == 204
    assert "no longer exists" in assert_error(
        account.client.get("/user", headers=bearer(token)), 401
    )


def _caller(account: Account, api_key: str) -> Account:
    other = Account.__new__(Account)
    other.client, other.org, other.user_id, other.api_key = (
        account.client,
        account.org,
        account.user_id,
        api_key,
    )
    return other


def test_forwarded_for_is_trusted_only_behind_configured_proxies(tmp_path: Path) -> None:
    for proxies, expected in ((0, "127.0.0.1"), (1, "203.0.113.9")):
        app = create_app({"data_dir": str(tmp_path / f"d{proxies}"), "proxy_count": proxies})
        client = app.test_client()
        account = Account(client, "acme", "admin@acme.example")
        forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
        answer = client.get("/user/apikeys/token", headers={**account.headers, **forwarded})
        assert answer.get_json()["payload"]["ips"] == [expected]


def test_a_bad_proxy_count_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="proxy_count"):
        create_app({"data_dir": str(tmp_path), "proxy_count": -1})
