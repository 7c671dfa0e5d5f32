"""Catalog queries for stacks (every backend).

A stack is stored as the canonical JSON its ``StackDefinition.to_json()`` gives; it was
validated before it reaches the catalog. The rules that relate stacks to each other are
checked here, inside the transaction that writes: a ``basestack`` must exist when a
stack naming it is saved, a stack cannot be deleted while another names it as its
basestack, and an unprotected stack cannot become protected by overwrite.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stacks.stack import PREVIEW_PREFIX
from webapp.catalog.database import Database
from webapp.catalog.errors import Conflict, InvalidReference, NotFound, Refused
from webapp.catalog.records import Stack, StackWrite


def _record(row: Mapping[str, Any]) -> Stack:
    return Stack(name=row["name"], definition=json.loads(row["definition"]), created=row["created"])


def _options(definition: dict[str, Any]) -> dict[str, Any]:
    options = definition.get("stack_options")
    return options if isinstance(options, dict) else {}


class Stacks:
    """The stacks part of the catalog (``webapp.catalog.interface.Stacks``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, org_id: str, name: str) -> Stack | None:
        """The stack, or None."""
        row = self.db.row(
            "SELECT name, definition, created FROM stacks WHERE organization_id = ? AND name = ?",
            (org_id, name),
        )
        return _record(row) if row else None

    def list(self, org_id: str, *, limit: int, offset: int) -> list[Stack]:
        """Stacks of the organization ordered by name."""
        rows = self.db.rows(
            "SELECT name, definition, created FROM stacks WHERE organization_id = ? "
            "ORDER BY name LIMIT ? OFFSET ?",
            (org_id, limit, offset),
        )
        return [_record(r) for r in rows]

    def names(self, org_id: str) -> list[str]:
        """Every stack name of the organization, ordered."""
        rows = self.db.rows(
            "SELECT name FROM stacks WHERE organization_id = ? ORDER BY name", (org_id,)
        )
        return [r["name"] for r in rows]

    def put(
        self, org_id: str, name: str, definition: dict[str, Any], *, overwrite: bool
    ) -> StackWrite:
        """Create or (with ``overwrite``) replace a stack; ``created`` is reset on
        overwrite, as rokka does.

        ``Conflict`` when it exists and ``overwrite`` is False; ``InvalidReference`` when
        its ``basestack`` does not exist; ``Refused`` when an overwrite would protect a
        stack that was not protected.
        """
        from webapp.catalog import now_iso

        text = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        created = now_iso()
        basestack = _options(definition).get("basestack")
        with self.db.transaction():
            if basestack is not None and self.get(org_id, basestack) is None:
                raise InvalidReference(
                    f"basestack {basestack} does not exist", parameter="basestack"
                )
            existing = self.get(org_id, name)
            if existing is not None and overwrite:
                was_protected = _options(existing.definition).get("protected") is True
                if _options(definition).get("protected") is True and not was_protected:
                    raise Refused("an unprotected stack cannot be made protected by overwrite")
            if existing is not None and not overwrite:
                raise Conflict(f"stack {name} already exists; use ?overwrite=true to replace it")
            self.db.execute(
                "INSERT INTO stacks (organization_id, name, definition, created) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (organization_id, name) DO UPDATE SET "
                "definition = excluded.definition, created = excluded.created",
                (org_id, name, text, created),
            )
        stored = Stack(name=name, definition=definition, created=created)
        return StackWrite(created=existing is None, stack=stored)

    def delete(self, org_id: str, name: str) -> None:
        """Delete a stack; ``NotFound`` if there is none, ``Conflict`` while other stacks
        name it as their basestack."""
        with self.db.transaction():
            users = self.names_using_basestack(org_id, name)
            if users:
                raise Conflict(f"stack {name} is the basestack of: {', '.join(sorted(users))}")
            if not self.db.execute(
                "DELETE FROM stacks WHERE organization_id = ? AND name = ?", (org_id, name)
            ):
                raise NotFound(f"stack {name} not found")

    def purge_previews(self, created_before: str) -> int:
        """Delete every ``_preview*`` stack (of any organization) saved before
        ``created_before`` (an ISO timestamp, as ``created``), except one another stack names
        as its basestack; the number deleted. rokka deletes preview stacks "after a few days"."""
        with self.db.transaction():
            rows = self.db.rows(
                "SELECT organization_id, name FROM stacks WHERE name LIKE ? ESCAPE '!' "
                "AND created < ?",
                (PREVIEW_PREFIX.replace("_", "!_") + "%", created_before),
            )
            removed = 0
            for row in rows:
                org_id, name = row["organization_id"], row["name"]
                if self.names_using_basestack(org_id, name):
                    continue  # deleting it would break the stack built on it
                removed += self.db.execute(
                    "DELETE FROM stacks WHERE organization_id = ? AND name = ?", (org_id, name)
                )
        return removed

    def names_using_basestack(self, org_id: str, name: str) -> list[str]:
        """Names of stacks whose ``basestack`` option is ``name``."""
        basestack = self.db.json_text("definition", ("stack_options", "basestack"))
        rows = self.db.rows(
            f"SELECT name FROM stacks WHERE organization_id = ? AND {basestack} = ?",
            (org_id, name),
        )
        return [r["name"] for r in rows]
