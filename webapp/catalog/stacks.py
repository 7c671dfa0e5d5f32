"""Catalog queries for stacks.

A stack is stored as the JSON its ``StackDefinition.to_json()`` gives; it was validated
when saved, and is parsed again (cheaply) when read so callers get typed objects.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from webapp.catalog import now_iso

if TYPE_CHECKING:
    from webapp.catalog import Catalog


class Stacks:
    """The stacks part of the catalog interface."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def get(self, org_id: str, name: str) -> dict[str, Any] | None:
        """``{"name", "definition" (decoded JSON), "created"}`` or None."""
        row = self.catalog.query_one(
            "SELECT name, definition, created FROM stacks WHERE organization_id = ? AND name = ?",
            (org_id, name),
        )
        if row is None:
            return None
        return {
            "name": row["name"],
            "definition": json.loads(row["definition"]),
            "created": row["created"],
        }

    def list(self, org_id: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        """Stacks of the organization ordered by name."""
        rows = self.catalog.query(
            "SELECT name, definition, created FROM stacks WHERE organization_id = ? "
            "ORDER BY name LIMIT ? OFFSET ?",
            (org_id, limit, offset),
        )
        return [
            {"name": r["name"], "definition": json.loads(r["definition"]), "created": r["created"]}
            for r in rows
        ]

    def put(
        self, org_id: str, name: str, definition: dict[str, Any], *, overwrite: bool
    ) -> tuple[str, dict[str, Any]] | None:
        """Create or (with ``overwrite``) replace a stack.

        Returns ``("created"|"updated", stored)``, or None when it exists and
        ``overwrite`` is False. ``created`` is reset on overwrite, as rokka does.
        """
        text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        created = now_iso()
        with self.catalog.write() as conn:
            exists = conn.execute(
                "SELECT 1 FROM stacks WHERE organization_id = ? AND name = ?", (org_id, name)
            ).fetchone()
            if exists and not overwrite:
                return None
            conn.execute(
                "INSERT INTO stacks (organization_id, name, definition, created) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (organization_id, name) DO UPDATE SET "
                "definition = excluded.definition, created = excluded.created",
                (org_id, name, text, created),
            )
        stored = {"name": name, "definition": definition, "created": created}
        return ("updated" if exists else "created"), stored

    def delete(self, org_id: str, name: str) -> bool:
        """Delete a stack; False if there was none."""
        with self.catalog.write() as conn:
            cursor = conn.execute(
                "DELETE FROM stacks WHERE organization_id = ? AND name = ?", (org_id, name)
            )
        return cursor.rowcount > 0

    def names_using_basestack(self, org_id: str, name: str) -> list[str]:
        """Names of stacks whose ``basestack`` option is ``name``."""
        rows = self.catalog.query(
            "SELECT name FROM stacks WHERE organization_id = ? AND "
            "json_extract(definition, '$.stack_options.basestack') = ?",
            (org_id, name),
        )
        return [r["name"] for r in rows]
