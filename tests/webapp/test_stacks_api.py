"""Stack management routes, replaying the recorded rokka.js stack traffic."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_recording

RECORDED_ORG = "rokka-js-tests"


def _replay(account, name: str) -> None:
    """Send each recorded request as ``account`` and compare status and response."""
    for exchange in load_recording(name):
        path = exchange["path"].replace(RECORDED_ORG, account.org)
        body = exchange["body"]
        data = json.dumps(body) if body not in ("", None) else None
        response = account.request(
            exchange["method"],
            path,
            data=data,
            headers={"Content-Type": "text/plain;charset=UTF-8"},
        )
        assert response.status_code == exchange["status"], (name, response.get_data(as_text=True))
        expected = exchange["response"]
        if isinstance(expected, dict):
            assert response.headers["Content-Type"] == "application/json"
            got = response.get_json()
            assert set(got) == set(expected), name
            for key in (
                "stack_operations",
                "stack_options",
                "stack_expressions",
                "stack_variables",
            ):
                if key in expected:
                    assert got[key] == expected[key], (name, key)
            if "organization" in expected:
                assert got["organization"] == account.org
                assert got["name"] == expected["name"]


def test_recorded_stack_lifecycle(account):
    _replay(account, "stacks_create")
    _replay(account, "stacks_create_0_26")
    _replay(account, "stacks_create_expressions")
    _replay(account, "stacks_get")
    _replay(account, "stacks_create_overwrite")
    _replay(account, "stacks_create_overwrite_0_26")
    listed = account.request("GET", f"/stacks/{account.org}").get_json()["items"]
    assert [s["name"] for s in listed] == ["mystack", "mystack026", "mystack_expressions"]
    assert all("link" not in s for s in listed)
    _replay(account, "stacks_delete")
    assert account.request("GET", f"/stacks/{account.org}/mystack").status_code == 404


def test_create_twice_without_overwrite_is_409(account):
    body = json.dumps({"operations": [{"name": "resize", "options": {"width": 10}}]})
    assert account.request("PUT", f"/stacks/{account.org}/s1", data=body).status_code == 201
    second = account.request("PUT", f"/stacks/{account.org}/s1", data=body)
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == 409


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"operations": [{"name": "resize", "options": {"width": 0}}]}, "width"),
        ({"operations": [{"name": "nope"}]}, "nope"),
        ({"operations": [{"name": "addframes"}]}, "not implemented"),
        ({"operations": [], "options": {"jpg.quality": 101}}, "jpg.quality"),
        ({"operations": [], "options": {"basestack": "missing"}}, "basestack"),
        ({"operations": [], "options": {"dpr": 2}}, "resize"),
        ("not an object", "stack"),
    ],
)
def test_invalid_stacks_are_400_naming_the_problem(account, body, needle):
    response = account.request("PUT", f"/stacks/{account.org}/bad", data=json.dumps(body))
    assert response.status_code == 400
    assert needle in response.get_json()["error"]["message"]
    assert account.request("GET", f"/stacks/{account.org}/bad").status_code == 404


def test_malformed_json_and_bad_names(account):
    assert account.request("PUT", f"/stacks/{account.org}/x", data="{").status_code == 400
    deep = "[" * 100_000 + "]" * 100_000
    assert account.request("PUT", f"/stacks/{account.org}/x", data=deep).status_code == 400
    assert account.request("PUT", f"/stacks/{account.org}/dynamic", data="[]").status_code == 400


def test_basestack_cannot_be_deleted_while_used(account):
    base = json.dumps({"operations": [{"name": "grayscale"}]})
    child = json.dumps(
        {"operations": [{"name": "resize", "options": {"width": 5}}], "options": {"basestack": "b"}}
    )
    assert account.request("PUT", f"/stacks/{account.org}/b", data=base).status_code == 201
    assert account.request("PUT", f"/stacks/{account.org}/c", data=child).status_code == 201
    assert account.request("DELETE", f"/stacks/{account.org}/b").status_code == 409
    assert account.request("DELETE", f"/stacks/{account.org}/c").status_code == 204
    assert account.request("DELETE", f"/stacks/{account.org}/b").status_code == 204
    assert account.request("DELETE", f"/stacks/{account.org}/b").status_code == 404


def test_stacks_are_private_to_their_organization(account, other_account):
    body = json.dumps({"operations": [{"name": "grayscale"}]})
    assert account.request("PUT", f"/stacks/{account.org}/mine", data=body).status_code == 201
    assert other_account.request("GET", f"/stacks/{account.org}/mine").status_code == 403
    assert other_account.request("GET", f"/stacks/{account.org}").status_code == 403
    assert other_account.request("PUT", f"/stacks/{account.org}/x", data=body).status_code == 403
    assert other_account.request("DELETE", f"/stacks/{account.org}/mine").status_code == 403
    assert account.client.get(f"/stacks/{account.org}").status_code == 403


def test_protected_cannot_be_switched_on_by_overwrite(account):
    path = f"/stacks/{account.org}/p"
    assert account.request("PUT", path, data=json.dumps({"operations": []})).status_code == 201
    protect = json.dumps({"operations": [], "options": {"protected": True}})
    assert account.request("PUT", path + "?overwrite=true", data=protect).status_code == 400


def test_cache_purge_routes(account):
    body = json.dumps({"operations": [{"name": "grayscale"}]})
    account.request("PUT", f"/stacks/{account.org}/g", data=body)
    for name in ("g", "*", "dynamic"):
        response = account.request("DELETE", f"/stacks/{account.org}/{name}/cache")
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok"}
    assert account.request("DELETE", f"/stacks/{account.org}/nope/cache").status_code == 404


def test_operations_and_stackoptions_need_no_auth(client):
    operations = client.get("/operations")
    assert operations.status_code == 200
    assert operations.headers["Content-Type"] == "application/json"
    assert {"resize", "crop", "rotate", "circlemask"} <= set(operations.get_json())
    options = client.get("/stackoptions").get_json()
    assert options["properties"]["jpg.quality"]["default"] == 80


@pytest.mark.parametrize("value", ["0", "1001", "-1", "1e3", "٣", "9" * 5000])
def test_list_limit_must_be_a_small_integer(account, value):
    response = account.request("GET", f"/stacks/{account.org}?limit={value}")
    assert response.status_code == 400
    assert "limit" in response.get_json()["error"]["message"]


def test_gc_deletes_preview_stacks_after_preview_stack_days(tmp_path):
    """rokka: ``_preview`` stacks "get deleted automatically after a few days";
    ``cropstack gc`` deletes them ``preview_stack_days`` after their last save."""
    import time

    from flask import Flask  # noqa: F401  (the app below is a real one)

    from tests.conftest import Account
    from webapp import create_app
    from webapp.gc import collect
    from webapp.settings import load_settings

    data = str(tmp_path / "data")
    app = create_app({"data_dir": data})
    account = Account(app.test_client(), "acme", "admin@acme.example")
    stack = json.dumps({"operations": [{"name": "noop"}]})
    for name in ("_preview_try", "keep"):
        assert account.request("PUT", f"/stacks/acme/{name}", data=stack).status_code == 201
    assert collect(load_settings({"data_dir": data})).removed_previews == 0  # 3 days
    time.sleep(1.1)  # created has whole seconds: now the stacks are older than 0 days
    report = collect(load_settings({"data_dir": data, "preview_stack_days": 0}))
    assert report.removed_previews == 1
    names = [s["name"] for s in account.request("GET", "/stacks/acme").get_json()["items"]]
    assert names == ["keep"]
