"""Catalog queries for organizations, users, API keys and memberships.

Every check-then-write here (name taken? last admin? key limit?) runs inside one
``Catalog.write()`` transaction (``BEGIN IMMEDIATE``), so two workers cannot both pass
the check. Methods raise ``ApiError`` subclasses for conflicts so routes stay thin.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from webapp.errors import ApiError

if TYPE_CHECKING:
    from webapp.catalog import Catalog

#: Most API keys one user may hold at once (rokka: 5).
MAX_KEYS_PER_USER = 5

#: Roles whose holders may not list, add or delete API keys (rokka's rule: keys handed
#: out for a frontend or an uploader must not be able to mint more keys).
KEY_RESTRICTED_ROLES: frozenset[str] = frozenset({"read", "upload", "sourceimages:read"})


def grants_key_management(roles: list[str]) -> bool:
    """Whether one membership lets its user manage keys: it holds ``admin`` or no
    key-restricted role."""
    return "admin" in roles or not KEY_RESTRICTED_ROLES.intersection(roles)


_SIGNING_ALPHABET = string.ascii_letters + string.digits

#: Most signing keys an organization holds at once: the current one plus a few still
#: accepted while URLs signed with them are replaced (rotation overlap).
MAX_SIGNING_KEYS = 5


class Conflict(ApiError):
    """A 409: the request conflicts with the current state."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


def new_id() -> str:
    """A fresh UUID4 as text, the id format of organizations, users, keys."""
    return str(uuid.uuid4())


def new_signing_key() -> str:
    """A fresh 64-character secret for signing render URLs of one organization."""
    return "".join(secrets.choice(_SIGNING_ALPHABET) for _ in range(64))


def org_dict(row: sqlite3.Row) -> dict[str, Any]:
    """An organizations row with its JSON columns decoded."""
    org = dict(row)
    org["options"] = json.loads(org["options"])
    org["signing_keys"] = json.loads(org["signing_keys"])
    return org


def public_org(org: dict[str, Any]) -> dict[str, Any]:
    """The organization object as the API answers it (recorded keys first)."""
    return {
        "id": org["id"],
        "display_name": org["display_name"],
        "name": org["name"],
        "billing_email": org["billing_email"],
        "created": org["created"],
        "master_organization": org["master_organization"],
        "options": org["options"],
        "signing_keys": org["signing_keys"],
    }


def membership_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A membership row (joined with the user's email) as the API answers it.

    ``comment`` and ``last_access`` are left out when unset, as rokka does.
    """
    item: dict[str, Any] = {
        "user_id": row["user_id"],
        "email": row["email"],
        "roles": json.loads(row["roles"]),
        "organization_id": row["organization_id"],
        "active": bool(row["active"]),
        "created": row["created"],
    }
    if row["comment"] is not None:
        item["comment"] = row["comment"]
    if row["last_access"] is not None:
        item["last_access"] = row["last_access"]
    return item


def key_dict(row: sqlite3.Row) -> dict[str, Any]:
    """An API key as listed: ``id``, ``comment``, ``created`` (never the secret)."""
    return {"id": row["id"], "comment": row["comment"], "created": row["created"]}


@dataclass(frozen=True, slots=True)
class NewUser:
    """A user just created, with the only copy of its key secret."""

    id: str
    email: str
    api_key: str


_MEMBERSHIP_SELECT = (
    "SELECT m.*, u.email FROM memberships m JOIN users u ON u.id = m.user_id "
    "WHERE m.organization_id = ?"
)


class Accounts:
    """The accounts part of the catalog interface."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # -- keys and users -------------------------------------------------------------

    def key_by_hash(self, key_hash: str) -> sqlite3.Row | None:
        """The key row (``id``, ``user_id``, ``key_hash``, ``email``) for a key digest."""
        return self.catalog.query_one(
            "SELECT k.id, k.user_id, k.key_hash, u.email FROM api_keys k "
            "JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?",
            (key_hash,),
        )

    def key_by_id(self, key_id: str) -> sqlite3.Row | None:
        """The key row (``id``, ``user_id``, ``key_hash``, ``email``) for a key id (tokens)."""
        return self.catalog.query_one(
            "SELECT k.id, k.user_id, k.key_hash, u.email FROM api_keys k "
            "JOIN users u ON u.id = k.user_id WHERE k.id = ?",
            (key_id,),
        )

    def _insert_user(self, email: str, now: str) -> NewUser:
        from webapp.auth import hash_key, new_api_key

        user_id = new_id()
        secret = new_api_key()
        conn = self.catalog.conn
        conn.execute(
            "INSERT INTO users (id, email, created) VALUES (?, ?, ?)", (user_id, email, now)
        )
        conn.execute(
            "INSERT INTO api_keys (id, user_id, key_hash, comment, created) "
            "VALUES (?, ?, ?, NULL, ?)",
            (new_id(), user_id, hash_key(secret), now),
        )
        return NewUser(id=user_id, email=email, api_key=secret)

    def user_exists(self, user_id: str) -> bool:
        """Whether a user with this id exists."""
        return self.catalog.query_one("SELECT 1 FROM users WHERE id = ?", (user_id,)) is not None

    def keys_of(self, user_id: str) -> list[dict[str, Any]]:
        """The user's keys, oldest first."""
        rows = self.catalog.query(
            "SELECT id, comment, created FROM api_keys WHERE user_id = ? ORDER BY created, rowid",
            (user_id,),
        )
        return [key_dict(r) for r in rows]

    def key(self, user_id: str, key_id: str) -> dict[str, Any] | None:
        """One of the user's keys, or None."""
        row = self.catalog.query_one(
            "SELECT id, comment, created FROM api_keys WHERE user_id = ? AND id = ?",
            (user_id, key_id),
        )
        return key_dict(row) if row else None

    def may_manage_keys(self, user_id: str) -> bool:
        """Whether the user may list, add and delete their own keys.

        True for a user without memberships, and for one with at least one membership
        that grants it (``grants_key_management``). So a key-restricted membership only
        restricts a user who has nothing else (the frontend or upload keys rokka's rule is
        for), and no membership that another organization adds can take the right away.
        """
        rows = self.catalog.query("SELECT roles FROM memberships WHERE user_id = ?", (user_id,))
        if not rows:
            return True
        return any(grants_key_management(json.loads(row["roles"])) for row in rows)

    def add_key(self, user_id: str, comment: str | None) -> dict[str, Any]:
        """A new key for the user: ``{id, api_key, comment, created}``; 409 past the limit."""
        from webapp.auth import hash_key, new_api_key
        from webapp.catalog import now_iso

        secret = new_api_key()
        key_id = new_id()
        now = now_iso()
        with self.catalog.write() as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM api_keys WHERE user_id = ?", (user_id,)
            ).fetchone()
            if count >= MAX_KEYS_PER_USER:
                raise Conflict(f"A user may have at most {MAX_KEYS_PER_USER} API keys")
            conn.execute(
                "INSERT INTO api_keys (id, user_id, key_hash, comment, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (key_id, user_id, hash_key(secret), comment, now),
            )
        return {"id": key_id, "api_key": secret, "comment": comment, "created": now}

    def delete_key(self, user_id: str, key_id: str, *, current_key_id: str) -> bool:
        """Delete one of the user's keys; False if it is not theirs; 409 for the current key."""
        if key_id == current_key_id:
            raise Conflict("The API key used for this request cannot be deleted")
        with self.catalog.write() as conn:
            cursor = conn.execute(
                "DELETE FROM api_keys WHERE user_id = ? AND id = ?", (user_id, key_id)
            )
            return cursor.rowcount > 0

    # -- organizations --------------------------------------------------------------

    def org_by_name(self, name: str) -> dict[str, Any] | None:
        """The organization named ``name``, or None."""
        row = self.catalog.query_one("SELECT * FROM organizations WHERE name = ?", (name,))
        return org_dict(row) if row else None

    def _insert_org(
        self,
        name: str,
        *,
        display_name: str,
        billing_email: str,
        master_organization: str | None,
        admin_user_id: str,
        now: str,
    ) -> None:
        """Insert an organization and its first admin; inside a write transaction."""
        conn = self.catalog.conn
        if conn.execute("SELECT 1 FROM organizations WHERE name = ?", (name,)).fetchone():
            raise Conflict(f"Organization {name} already exists")
        org_id = new_id()
        signing_keys = [{"key": new_signing_key(), "created": now}]
        conn.execute(
            "INSERT INTO organizations (id, name, display_name, billing_email, "
            "master_organization, options, signing_keys, created) "
            "VALUES (?, ?, ?, ?, ?, '{}', ?, ?)",
            (
                org_id,
                name,
                display_name,
                billing_email,
                master_organization or name,
                json.dumps(signing_keys),
                now,
            ),
        )
        conn.execute(
            "INSERT INTO memberships (organization_id, user_id, roles, active, created) "
            "VALUES (?, ?, '[\"admin\"]', 1, ?)",
            (org_id, admin_user_id, now),
        )

    def signup(self, email: str, org_name: str | None) -> NewUser:
        """``POST /users``: a new user with a key, and (if named) a new org it administers.

        An existing organization is always a 409, even when an admin of it has the same
        email: without authentication, handing out a key for that admin would let anyone
        who knows the address take the organization over.
        """
        from webapp.catalog import now_iso

        now = now_iso()
        with self.catalog.write():
            user = self._insert_user(email, now)
            if org_name is not None:
                self._insert_org(
                    org_name,
                    display_name=org_name,
                    billing_email=email,
                    master_organization=None,
                    admin_user_id=user.id,
                    now=now,
                )
        return user

    def create_org(
        self,
        name: str,
        *,
        display_name: str,
        billing_email: str,
        master_organization: str | None,
        admin_user_id: str,
    ) -> dict[str, Any]:
        """``PUT /organizations/{name}``: create it with the caller as admin; 409 if taken."""
        from webapp.catalog import now_iso

        with self.catalog.write():
            self._insert_org(
                name,
                display_name=display_name,
                billing_email=billing_email,
                master_organization=master_organization,
                admin_user_id=admin_user_id,
                now=now_iso(),
            )
        org = self.org_by_name(name)
        assert org is not None
        return org

    def set_options(self, org_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` into the org's options (a ``None`` value removes the option).

        Read-modify-write in one transaction so concurrent updates of different options
        do not lose each other. Returns the new options.
        """
        with self.catalog.write() as conn:
            (raw,) = conn.execute(
                "SELECT options FROM organizations WHERE id = ?", (org_id,)
            ).fetchone()
            options = json.loads(raw)
            for name, value in changes.items():
                if value is None:
                    options.pop(name, None)
                else:
                    options[name] = value
            conn.execute(
                "UPDATE organizations SET options = ? WHERE id = ?", (json.dumps(options), org_id)
            )
        return options

    def _signing_keys(self, org_id: str) -> list[dict[str, Any]]:
        (raw,) = self.catalog.conn.execute(
            "SELECT signing_keys FROM organizations WHERE id = ?", (org_id,)
        ).fetchone()
        return json.loads(raw)

    def _store_signing_keys(self, org_id: str, keys: list[dict[str, Any]]) -> None:
        self.catalog.conn.execute(
            "UPDATE organizations SET signing_keys = ? WHERE id = ?", (json.dumps(keys), org_id)
        )

    def add_signing_key(self, org_id: str) -> list[dict[str, Any]]:
        """Rotate: a new key goes first (clients sign with ``signing_keys[0]``), the older
        ones stay valid until removed. 409 past ``MAX_SIGNING_KEYS``. Returns all keys."""
        from webapp.catalog import now_iso

        with self.catalog.write():
            keys = self._signing_keys(org_id)
            if len(keys) >= MAX_SIGNING_KEYS:
                raise Conflict(
                    f"An organization may have at most {MAX_SIGNING_KEYS} signing keys; "
                    "remove old ones first"
                )
            keys.insert(0, {"key": new_signing_key(), "created": now_iso()})
            self._store_signing_keys(org_id, keys)
        return keys

    def drop_signing_keys(self, org_id: str, keep: int) -> list[dict[str, Any]]:
        """End the rotation overlap: keep only the ``keep`` newest keys (>= 1). Returns
        the remaining keys; URLs signed with a removed key stop verifying at once."""
        if keep < 1:
            raise ValueError("keep must be at least 1")
        with self.catalog.write():
            keys = self._signing_keys(org_id)[:keep]
            self._store_signing_keys(org_id, keys)
        return keys

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
        org = org_dict(row)
        roles = json.loads(org.pop("member_roles"))
        return org, roles

    # -- memberships ----------------------------------------------------------------

    def memberships(self, org_id: str) -> list[dict[str, Any]]:
        """Every membership of the organization, oldest first."""
        rows = self.catalog.query(_MEMBERSHIP_SELECT + " ORDER BY m.created, m.rowid", (org_id,))
        return [membership_dict(r) for r in rows]

    def membership(self, org_id: str, user_id: str) -> dict[str, Any] | None:
        """One membership, or None."""
        row = self.catalog.query_one(_MEMBERSHIP_SELECT + " AND m.user_id = ?", (org_id, user_id))
        return membership_dict(row) if row else None

    def _other_admins(self, org_id: str, user_id: str) -> int:
        rows = self.catalog.conn.execute(
            "SELECT roles FROM memberships WHERE organization_id = ? AND user_id != ? "
            "AND active = 1",
            (org_id, user_id),
        ).fetchall()
        return sum(1 for r in rows if "admin" in json.loads(r["roles"]))

    def _may_enrol(self, user_id: str, acting_user_id: str) -> bool:
        """Whether ``acting_user_id`` (an admin of the target organization) may give
        ``user_id`` a new membership: the user exists and either has no membership yet
        (a fresh ``POST /users`` account, as rokka's clients enrol them) or belongs to an
        organization the acting user administers."""
        if not self.user_exists(user_id):
            return False
        theirs = {
            r["organization_id"]
            for r in self.catalog.conn.execute(
                "SELECT organization_id FROM memberships WHERE user_id = ?", (user_id,)
            )
        }
        if not theirs:
            return True
        administered = {
            r["organization_id"]
            for r in self.catalog.conn.execute(
                "SELECT organization_id, roles FROM memberships WHERE user_id = ? AND active = 1",
                (acting_user_id,),
            )
            if "admin" in json.loads(r["roles"])
        }
        return bool(theirs & administered)

    def put_membership(
        self,
        org_id: str,
        user_id: str,
        roles: list[str],
        comment: str | None,
        *,
        acting_user_id: str,
    ) -> tuple[int, dict[str, Any] | None]:
        """Create or update a membership; returns (status, membership).

        201 created, 200 updated, 204 unchanged (membership None); 409 when it would
        leave the organization without an admin. ``comment`` None keeps the existing
        comment. A new membership for a user ``_may_enrol`` refuses is the same 404
        "User not found" as an unknown id, so user ids cannot be probed.
        """
        from webapp.catalog import now_iso

        with self.catalog.write() as conn:
            current = conn.execute(
                "SELECT roles, comment FROM memberships WHERE organization_id = ? AND user_id = ?",
                (org_id, user_id),
            ).fetchone()
            if current is None and not self._may_enrol(user_id, acting_user_id):
                raise ApiError(404, "User not found")
            if current is None:
                conn.execute(
                    "INSERT INTO memberships (organization_id, user_id, roles, active, comment, "
                    "created) VALUES (?, ?, ?, 1, ?, ?)",
                    (org_id, user_id, json.dumps(roles), comment, now_iso()),
                )
                status = 201
            else:
                old_roles = json.loads(current["roles"])
                new_comment = current["comment"] if comment is None else comment
                if old_roles == roles and new_comment == current["comment"]:
                    return 204, None
                if (
                    "admin" in old_roles
                    and "admin" not in roles
                    and self._other_admins(org_id, user_id) == 0
                ):
                    raise Conflict("An organization needs at least one admin")
                conn.execute(
                    "UPDATE memberships SET roles = ?, comment = ? "
                    "WHERE organization_id = ? AND user_id = ?",
                    (json.dumps(roles), new_comment, org_id, user_id),
                )
                status = 200
            return status, self.membership(org_id, user_id)

    def delete_membership(self, org_id: str, user_id: str) -> None:
        """Remove a membership; 404 if there is none, 409 for the last admin."""
        with self.catalog.write() as conn:
            current = conn.execute(
                "SELECT roles FROM memberships WHERE organization_id = ? AND user_id = ?",
                (org_id, user_id),
            ).fetchone()
            if current is None:
                raise ApiError(404, "Membership not found")
            if "admin" in json.loads(current["roles"]) and self._other_admins(org_id, user_id) == 0:
                raise Conflict("An organization needs at least one admin")
            conn.execute(
                "DELETE FROM memberships WHERE organization_id = ? AND user_id = ?",
                (org_id, user_id),
            )

    def create_member_user(
        self, org_id: str, email: str, roles: list[str], comment: str | None
    ) -> dict[str, Any]:
        """A new user (email copied from the creator, as rokka does) with a key and a
        membership in the org; the membership object plus ``api_key``."""
        from webapp.catalog import now_iso

        now = now_iso()
        with self.catalog.write() as conn:
            user = self._insert_user(email, now)
            conn.execute(
                "INSERT INTO memberships (organization_id, user_id, roles, active, comment, "
                "created) VALUES (?, ?, ?, 1, ?, ?)",
                (org_id, user.id, json.dumps(roles), comment, now),
            )
            membership = self.membership(org_id, user.id)
        assert membership is not None
        membership["api_key"] = user.api_key
        return membership
