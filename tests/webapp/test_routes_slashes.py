"""Routes as people type them: a trailing slash answers as the path without it, and
``GET /`` lists the API's resources for a valid key (rokka's API root)."""

from __future__ import annotations

import re

from flask import Flask
from werkzeug.exceptions import MethodNotAllowed, NotFound

from tests.conftest import Account
from tests.webapp.images import multipart, png

PLACEHOLDER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def management_rules(app: Flask) -> list[tuple[str, str, str]]:
    """(path with example values, method, endpoint) of every route but the render one."""
    rows = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "render.render") or rule.endpoint.startswith("iiif."):
            continue  # image URLs (render, IIIF): not management routes
        path = PLACEHOLDER.sub(lambda m: f"x{m.group(1)}", rule.rule)
        for method in sorted(rule.methods - {"OPTIONS"}):
            rows.append((path, method, rule.endpoint))
    return rows


def test_every_management_route_takes_a_trailing_slash(app: Flask) -> None:
    adapter = app.url_map.bind("localhost")
    rows = management_rules(app)
    assert len(rows) > 40  # every blueprint is in
    for path, method, endpoint in rows:
        if path == "/":
            continue
        assert adapter.match(path, method=method)[0] == endpoint, (path, method)
        # Matched directly, never redirected (a 308 would lose a POST body in some clients).
        assert adapter.match(path + "/", method=method)[0] == endpoint, (path + "/", method)


def test_get_routes_answer_the_same_with_a_slash(client, account: Account) -> None:
    upload = account.request("POST", "/sourceimages/acme", data=multipart(png()))
    image = upload.get_json()["items"][0]["hash"]
    resize = {"name": "resize", "options": {"width": 8}}
    account.request("PUT", "/stacks/acme/small", json={"operations": [resize]})
    paths = [
        "/operations", "/stackoptions", "/user", "/user/apikeys", "/user/apikeys/current",
        "/organizations/acme", "/organizations/acme/memberships", "/sourceimages/acme",
        f"/sourceimages/acme/{image}", f"/sourceimages/acme/{image}/meta/user",
        "/stacks/acme", "/stacks/acme/small", "/organizations/acme/signing_keys",
        "/stacks/nope/x", "/sourceimages/acme/0000",
    ]  # fmt: skip
    for path in paths:
        plain = account.request("GET", path)
        slashed = account.request("GET", path + "/")
        assert slashed.status_code == plain.status_code, path
        assert slashed.get_json() == plain.get_json(), path
        assert plain.status_code in (200, 403, 404), path


def test_seed_example_search_with_trailing_slash(client, account: Account) -> None:
    hashes = []
    for seed, version in ((1, "v1"), (2, "v2")):
        upload = account.request("POST", "/sourceimages/acme/", data=multipart(png(seed=seed)))
        assert upload.status_code == 200
        image = upload.get_json()["items"][0]["hash"]
        answer = account.request(
            "PUT", f"/sourceimages/acme/{image}/meta/dynamic/version/", json={"text": version}
        )
        assert answer.status_code == 201, answer.get_json()
        hashes.append(answer.get_json()["hash"])  # dynamic metadata gives a new hash
    found = account.request("GET", "/sourceimages/acme/?dynamic:str:version:text=v2")
    assert found.status_code == 200
    assert [item["hash"] for item in found.get_json()["items"]] == [hashes[1]]
    gone = account.request("DELETE", f"/sourceimages/acme/{hashes[0]}/")
    assert gone.status_code == 204
    assert account.request("GET", f"/sourceimages/acme/{hashes[0]}").status_code == 404


def test_unknown_paths_and_methods_stay_errors(app: Flask, client) -> None:
    adapter = app.url_map.bind("localhost")
    try:
        adapter.match("/stacks/acme/x/", method="POST")
        raise AssertionError("POST /stacks/acme/x/ matched")
    except MethodNotAllowed:
        pass
    try:
        adapter.match("/", method="POST")
        raise AssertionError("POST / matched")
    except (MethodNotAllowed, NotFound):
        pass
    answer = client.put("/stacks/acme/x/", json={"operations": []})
    assert answer.status_code == 403  # routed to the stack route, which wants a key


def test_api_root_lists_resources_for_a_valid_key(app: Flask, account: Account) -> None:
    for path in ("/", "//"):
        answer = account.request("GET", path)
        assert answer.status_code == 200, path
        body = answer.get_json()
        assert body["environment"] == "production"
        assert {"/sourceimages", "/stacks", "/operations", "/users"} <= set(body["resources"])
    # Every listed resource is served by some route of this server.
    prefixes = {rule.rule.split("<")[0].rstrip("/") for rule in app.url_map.iter_rules()}
    for resource in body["resources"]:
        assert any(p == resource or p.startswith(resource + "/") for p in prefixes), resource


def test_api_root_refuses_a_missing_or_bad_key(client) -> None:
    for headers in ({}, {"Api-Key": "not-a-key"}):
        answer = client.get("/", headers=headers)
        assert answer.status_code == 403
        assert answer.get_json()["error"]["code"] == 403
        assert answer.headers["Content-Type"] == "application/json"
