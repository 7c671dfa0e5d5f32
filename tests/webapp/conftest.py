"""Fixtures for the source image tests: members of organizations made in the catalog.

These helpers seed organizations, users, keys and memberships through the catalog
(``Accounts.provision``), and return objects with the same interface as the shared
``account`` fixture (``.org``, ``.headers``, ``.request``).
"""

from __future__ import annotations

import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import RECORDINGS, Caller
from webapp.auth import new_api_key


class Member(Caller):
    """A user holding ``roles`` in organization ``org``, with its own API key."""

    def __init__(self, app: Flask, client: FlaskClient, org: str, roles: list[str]) -> None:
        self.client = client
        self.org = org
        self.api_key = new_api_key()
        catalog = app.extensions["cropstack.catalog"].open()
        try:
            made = catalog.accounts.provision(
                org, f"{uuid.uuid4()}@{org}.example", roles, self.api_key
            )
        finally:
            catalog.close()
        self.org_id = made.organization_id
        self.user_id = made.user_id


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
