"""Fixtures for the source image tests: members of organizations made in the catalog.

POST /users belongs to another issue; these helpers insert organizations, users, keys and
memberships directly, and return objects with the same interface as the shared
``account`` fixture (``.org``, ``.headers``, ``.request``).
"""

from __future__ import annotations

import json
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import RECORDINGS, Caller
from webapp.auth import hash_key, new_api_key
from webapp.catalog import Catalog, now_iso


class Member(Caller):
    """A user holding ``roles`` in organization ``org``, with its own API key."""

    def __init__(self, app: Flask, client: FlaskClient, org: str, roles: list[str]) -> None:
        self.client = client
        self.org = org
        self.api_key = new_api_key()
        self.user_id = str(uuid.uuid4())
        catalog = Catalog(app.extensions["cropstack.catalog_path"])
        try:
            with catalog.write() as conn:
                row = conn.execute("SELECT id FROM organizations WHERE name = ?", (org,)).fetchone()
                if row is None:
                    self.org_id = str(uuid.uuid4())
                    conn.execute(
                        "INSERT INTO organizations (id, name, display_name, billing_email, "
                        "created) VALUES (?, ?, ?, ?, ?)",
                        (self.org_id, org, org, f"billing@{org}.example", now_iso()),
                    )
                else:
                    self.org_id = row["id"]
                conn.execute(
                    "INSERT INTO users (id, email, created) VALUES (?, ?, ?)",
                    (self.user_id, f"{self.user_id}@{org}.example", now_iso()),
                )
                conn.execute(
                    "INSERT INTO api_keys (id, user_id, key_hash, created) VALUES (?, ?, ?, ?)",
                    (str(uuid.uuid4()), self.user_id, hash_key(self.api_key), now_iso()),
                )
                conn.execute(
                    "INSERT INTO memberships (organization_id, user_id, roles, created) "
                    "VALUES (?, ?, ?, ?)",
                    (self.org_id, self.user_id, json.dumps(roles), now_iso()),
                )
        finally:
            catalog.close()


@pytest.fixture
def member(app: Flask, client: FlaskClient):  # noqa: ANN201
    """A factory: ``member(org, roles)`` makes one more member."""

    def make(org: str, roles: list[str] | None = None) -> Member:
        return Member(app, client, org, roles or ["admin"])

    return make


@pytest.fixture
def acme(member) -> Member:  # noqa: ANN001
    """An admin of organization ``acme``."""
    return member("acme")


@pytest.fixture
def globex(member) -> Member:  # noqa: ANN001
    """An admin of organization ``globex``, to check isolation."""
    return member("globex")


@pytest.fixture
def cartman() -> bytes:
    """The SVG the rokka.js recordings uploaded (binary hash 498fed61…)."""
    return (RECORDINGS / "cartman.svg").read_bytes()
