"""Catalog queries for organizations, users, API keys and memberships."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webapp.catalog import Catalog


def org_dict(row: sqlite3.Row) -> dict[str, Any]:
    """An organizations row with its JSON columns decoded."""
    org = dict(row)
    org["options"] = json.loads(org["options"])
    org["signing_keys"] = json.loads(org["signing_keys"])
    return org


class Accounts:
    """The accounts part of the catalog interface."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def key_by_hash(self, key_hash: str) -> sqlite3.Row | None:
        """The key row (``id``, ``user_id``, ``key_hash``, ``email``) for a key digest."""
        return self.catalog.query_one(
            "SELECT k.id, k.user_id, k.key_hash, u.email FROM api_keys k "
            "JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?",
            (key_hash,),
        )

    def org_by_name(self, name: str) -> dict[str, Any] | None:
        """The organization named ``name``, or None."""
        row = self.catalog.query_one("SELECT * FROM organizations WHERE name = ?", (name,))
        return org_dict(row) if row else None

    def membership_of(self, org_name: str, user_id: str) -> tuple[dict[str, Any], list[str]] | None:
        """The organization and the user's roles in it, if the user is an active member."""
        row = self.catalog.query_one(
            "SELECT o.*, m.roles AS member_roles FROM organizations o "
            "JOIN memberships m ON m.organization_id = o.id "
            "WHERE o.name = ? AND m.user_id = ? AND m.active = 1",
            (org_name, user_id),
        )
        if row is None:
            return None
        org = dict(row)
        roles = json.loads(org.pop("member_roles"))
        org["options"] = json.loads(org["options"])
        org["signing_keys"] = json.loads(org["signing_keys"])
        return org, roles
