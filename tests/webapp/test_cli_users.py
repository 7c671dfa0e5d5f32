"""``cropstack users create`` run as a subprocess, and signup (off by default) on a real
``cropstack serve`` (docs/accounts.md, "Accounts are closed by default")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.realserver import REPO, running_server
from webapp import create_app


def cropstack(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run this checkout's ``cropstack`` CLI (``python -m webapp.cli``); its result."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CROPSTACK_")}
    return subprocess.run(
        [sys.executable, "-m", "webapp.cli", *argv],
        cwd=REPO,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def create_user(data_dir: Path, email: str, org: str) -> subprocess.CompletedProcess:
    return cropstack(
        "users", "create", "--email", email, "--organization", org, "--data-dir", str(data_dir)
    )


def assert_one_line_failure(result: subprocess.CompletedProcess, *, contains: str) -> None:
    """Exit status 2, nothing on stdout, one ``cropstack: …`` line on stderr."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cropstack: ") and contains in lines[0], lines[0]


def http(base: str, method: str, path: str, body: Any = None, key: str | None = None):
    """One request to a real server; (status, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if key is not None:
        request.add_header("Api-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, content_type = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, content_type = exc.code, exc.read(), exc.headers
    assert content_type.get("Content-Type") == "application/json", (status, raw[:200])
    return status, json.loads(raw)


# -- users create ---------------------------------------------------------------------------


def test_users_create_prints_the_user_and_its_key_administers_the_org(tmp_path):
    data_dir = tmp_path / "data"
    result = create_user(data_dir, "me@example.org", "acme")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    user = json.loads(result.stdout)
    assert set(user) == {"id", "email", "api_key"}
    assert user["email"] == "me@example.org" and len(user["api_key"]) == 64
    # The key works against an app on that data directory (signup off, the default).
    client = create_app({"data_dir": str(data_dir)}).test_client()
    key = {"Api-Key": user["api_key"]}
    org = client.get("/organizations/acme", headers=key)
    assert org.status_code == 200 and org.get_json()["billing_email"] == "me@example.org"
    members = client.get("/organizations/acme/memberships", headers=key).get_json()
    assert [(m["user_id"], m["roles"]) for m in members["items"]] == [(user["id"], ["admin"])]
    assert client.get("/user/apikeys", headers=key).status_code == 200


def test_users_create_refuses_an_existing_organization(tmp_path):
    data_dir = tmp_path / "data"
    first = create_user(data_dir, "me@example.org", "acme")
    assert first.returncode == 0, first.stderr
    again = create_user(data_dir, "other@example.org", "acme")
    assert_one_line_failure(again, contains="acme already exists")
    # The refused run created no user: acme still has exactly its first admin.
    key = {"Api-Key": json.loads(first.stdout)["api_key"]}
    client = create_app({"data_dir": str(data_dir)}).test_client()
    assert client.get("/organizations/acme/memberships", headers=key).get_json()["total"] == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--email", "nope", "--organization", "acme"], "--email must be a valid email"),
        (["--email", "a b@c.example", "--organization", "acme"], "--email"),
        (["--email", "a@b.example", "--organization", "Acme"], "--organization must be"),
        (["--email", "a@b.example", "--organization=-lead"], "--organization must be"),
        (["--email", "a@b.example", "--organization", "a" * 64], "--organization must be"),
        (["--email", "a@b.example", "--organization", "stacks"], "reserved"),
        (["--email", "a@b.example"], "needs --email and --organization"),
        (["--organization", "acme"], "needs --email and --organization"),
    ],
)
def test_users_create_bad_input_is_one_line_and_creates_nothing(tmp_path, args, message):
    data_dir = tmp_path / "data"
    result = cropstack("users", "create", *args, "--data-dir", str(data_dir))
    assert_one_line_failure(result, contains=message)
    assert not data_dir.exists()


def test_users_create_bad_setting_is_one_line(tmp_path):
    result = cropstack(
        "users", "create", "--email", "a@b.example", "--organization", "acme",
        "--data-dir", str(tmp_path / "data"), env={"CROPSTACK_BUSY_TIMEOUT_MS": "soon"},
    )  # fmt: skip
    assert_one_line_failure(result, contains="busy_timeout_ms")


def test_users_create_unusable_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = create_user(blocker / "data", "a@b.example", "acme")
    assert_one_line_failure(result, contains="cannot open the catalog")


def test_users_create_reads_the_data_dir_from_the_environment(tmp_path):
    data_dir = tmp_path / "from-env"
    result = cropstack(
        "users", "create", "--email", "a@b.example", "--organization", "envorg",
        env={"CROPSTACK_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (data_dir / "catalog.db").is_file()


# -- signup on a real server -------------------------------------------------------------


@pytest.mark.server
@pytest.mark.parametrize(
    "argv,env,status",
    [
        ([], {}, 403),
        (["--signup"], {}, 200),
        ([], {"CROPSTACK_SIGNUP": "true"}, 200),
        (["--no-signup"], {"CROPSTACK_SIGNUP": "true"}, 403),
    ],
)
def test_real_server_signup_is_closed_unless_enabled(tmp_path, monkeypatch, argv, env, status):
    monkeypatch.delenv("CROPSTACK_SIGNUP", raising=False)
    with running_server(tmp_path, *argv, env=env, workers=1) as base:
        got, body = http(base, "POST", "/users", {"email": "a@b.example", "organization": "o"})
        assert got == status, body
        if status == 403:
            assert body["error"]["code"] == 403
            assert "cropstack users create" in body["error"]["message"]
        else:
            assert set(body) == {"id", "email", "api_key"}


@pytest.mark.server
def test_real_server_accepts_a_key_from_users_create(tmp_path, monkeypatch):
    """The README's first steps: create the account with the CLI, then use the server."""
    monkeypatch.delenv("CROPSTACK_SIGNUP", raising=False)
    made = create_user(tmp_path / "data", "me@example.org", "acme")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["api_key"]
    with running_server(tmp_path, workers=1) as base:
        status, org = http(base, "GET", "/organizations/acme", key=key)
        assert status == 200 and org["name"] == "acme"
        status, stack = http(base, "PUT", "/stacks/acme/thumb", {"operations": []}, key=key)
        assert status in (200, 201), stack


def test_serve_refuses_signup_and_no_signup_together(tmp_path):
    result = cropstack("serve", "--signup", "--no-signup", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr and "Traceback" not in result.stderr
