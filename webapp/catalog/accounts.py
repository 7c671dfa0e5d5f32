"""Catalog queries for organizations, users, API keys and memberships (every backend).

Every check-then-write here (name taken? last admin? key limit?) runs inside one
``Database.transaction()`` (writers are serialised), so two workers or nodes cannot both
pass the check. Conflicts raise the catalog's domain errors (``webapp.catalog.errors``);
``webapp.errors`` answers them.
"""

from __future__ import annotations

import json
import secrets
import string
import uuid
from collections.abc import Mapping
from typing import Any

from webapp.catalog.database import Database
from webapp.catalog.errors import Conflict, NotFound
from webapp.catalog.records import (
    ApiKey,
    KeyOwner,
    Membership,
    NewApiKey,
    NewMember,
    NewUser,
    Organization,
    OrganizationSummary,
    Provisioned,
    SigningKey,
)

#: Most API keys one user may hold at once (rokka: 5).
MAX_KEYS_PER_USER = 5

#: Roles whose holders may not list, add or delete API keys (rokka's rule: keys handed
#: out for a frontend or an uploader must not be able to mint more keys).
KEY_RESTRICTED_ROLES: frozenset[str] = frozenset({"read", "upload", "sourceimages:read"})


def grants_key_management(roles: list[str] | tuple[str, ...]) -> bool:
    """Whether one membership lets its user manage keys: it holds ``admin`` or no
    key-restricted role."""
    return "admin" in roles or not KEY_RESTRICTED_ROLES.intersection(roles)


_SIGNING_ALPHABET = string.ascii_letters + string.digits

#: Most signing keys an organization holds at once: the current one plus a few still
#: accepted while URLs signed with them are replaced (rotation overlap).
MAX_SIGNING_KEYS = 5


def new_id() -> str:
    """A fresh UUID4 as text, the id format of organizations, users, keys."""
    return str(uuid.uuid4())


def new_signing_key() -> str:
    """A fresh 64-character secret for signing render URLs of one organization."""
    return "".join(secrets.choice(_SIGNING_ALPHABET) for _ in range(64))


def _signing_keys(raw: str) -> tuple[SigningKey, ...]:
    return tuple(SigningKey(key=k["key"], created=k["created"]) for k in json.loads(raw))


def _keys_json(keys: tuple[SigningKey, ...] | list[SigningKey]) -> str:
    return json.dumps([{"key": k.key, "created": k.created} for k in keys])


def org_record(row: Mapping[str, Any]) -> Organization:
    """An ``organizations`` row as a record."""
    return Organization(
        id=row["id"],
        name=row["name"],
        display_name=row["display_name"],
        billing_email=row["billing_email"],
        master_organization=row["master_organization"],
        options=json.loads(row["options"]),
        signing_keys=_signing_keys(row["signing_keys"]),
        created=row["created"],
    )


def membership_record(row: Mapping[str, Any]) -> Membership:
    """A membership row joined with the user's email, as a record."""
    return Membership(
        organization_id=row["organization_id"],
        user_id=row["user_id"],
        email=row["email"],
        roles=tuple(json.loads(row["roles"])),
        active=bool(row["active"]),
        comment=row["comment"],
        created=row["created"],
        last_access=row["last_access"],
    )


def _key_record(row: Mapping[str, Any]) -> ApiKey:
    return ApiKey(id=row["id"], comment=row["comment"], created=row["created"])


_MEMBERSHIP_SELECT = (
    "SELECT m.organization_id, m.user_id, m.roles, m.active, m.comment, m.created, "
    "m.last_access, u.email FROM memberships m JOIN users u ON u.id = m.user_id "
    "WHERE m.organization_id = ?"
)
_ORG_COLUMNS = (
    "o.id, o.name, o.display_name, o.billing_email, o.master_organization, o.options, "
    "o.signing_keys, o.created"
)


class Accounts:
    """The accounts part of the catalog (``webapp.catalog.interface.Accounts``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- keys and users -------------------------------------------------------------

    def key_by_hash(self, key_hash: str) -> KeyOwner | None:
        """The key and its user for a key digest (sha256 hex of the secret)."""
        row = self.db.row(
            "SELECT k.id, k.user_id, k.key_hash, u.email FROM api_keys k "
            "JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?",
            (key_hash,),
        )
        if row is None:
            return None
        return KeyOwner(
            id=row["id"], key_hash=row["key_hash"], user_id=row["user_id"], email=row["email"]
        )

    def key_by_id(self, key_id: str) -> KeyOwner | None:
        """The key and its user for a key's public id (tokens name the key that issued
        them)."""
        row = self.db.row(
            "SELECT k.id, k.user_id, k.key_hash, u.email FROM api_keys k "
            "JOIN users u ON u.id = k.user_id WHERE k.id = ?",
            (key_id,),
        )
        if row is None:
            return None
        return KeyOwner(
            id=row["id"], key_hash=row["key_hash"], user_id=row["user_id"], email=row["email"]
        )

    def _insert_user(self, email: str, now: str, *, secret: str | None = None) -> NewUser:
        from webapp.auth import hash_key, new_api_key

        user_id = new_id()
        secret = secret or new_api_key()
        self.db.execute(
            "INSERT INTO users (id, email, created) VALUES (?, ?, ?)", (user_id, email, now)
        )
        self.db.execute(
            "INSERT INTO api_keys (id, user_id, key_hash, comment, created) "
            "VALUES (?, ?, ?, NULL, ?)",
            (new_id(), user_id, hash_key(secret), now),
        )
        return NewUser(id=user_id, email=email, api_key=secret)

    def user_ids(self, id_or_email: str) -> list[str]:
        """The ids of the users with this id or (case-insensitively) this email, sorted."""
        rows = self.db.rows(
            "SELECT id FROM users WHERE id = ? OR lower(email) = lower(?)",
            (id_or_email, id_or_email),
        )
        return sorted({row["id"] for row in rows})

    def organization_summaries(self) -> list[OrganizationSummary]:
        """Every organization with its number of members and live images, by name."""
        rows = self.db.rows(
            "SELECT o.name, o.display_name, o.created, "
            "(SELECT count(*) FROM memberships m WHERE m.organization_id = o.id) AS members, "
            "(SELECT count(*) FROM sourceimages s WHERE s.organization_id = o.id "
            " AND s.deleted_at IS NULL) AS images "
            "FROM organizations o ORDER BY o.name"
        )
        return [
            OrganizationSummary(
                name=r["name"], display_name=r["display_name"], created=r["created"],
                members=int(r["members"]), images=int(r["images"]),
            )  # fmt: skip
            for r in rows
        ]

    def user_exists(self, user_id: str) -> bool:
        """Whether a user with this id exists."""
        return self.db.row("SELECT 1 FROM users WHERE id = ?", (user_id,)) is not None

    def keys_of(self, user_id: str) -> list[ApiKey]:
        """The user's keys, oldest first."""
        rows = self.db.rows(
            "SELECT id, comment, created FROM api_keys WHERE user_id = ? "
            f"ORDER BY created, {self.db.seq}",
            (user_id,),
        )
        return [_key_record(r) for r in rows]

    def key(self, user_id: str, key_id: str) -> ApiKey | None:
        """One of the user's keys, or None."""
        row = self.db.row(
            "SELECT id, comment, created FROM api_keys WHERE user_id = ? AND id = ?",
            (user_id, key_id),
        )
        return _key_record(row) if row else None

    def may_manage_keys(self, user_id: str) -> bool:
        """Whether the user may list, add and delete their own keys.

        True for a user without memberships, and for one with at least one membership
        that grants it (``grants_key_management``). So a key-restricted membership only
        restricts a user who has nothing else (the frontend or upload keys rokka's rule is
        for), and no membership that another organization adds can take the right away.
        """
        rows = self.db.rows("SELECT roles FROM memberships WHERE user_id = ?", (user_id,))
        if not rows:
            return True
        return any(grants_key_management(json.loads(row["roles"])) for row in rows)

    def add_key(self, user_id: str, comment: str | None) -> NewApiKey:
        """A new key for the user; ``Conflict`` past ``MAX_KEYS_PER_USER``."""
        from webapp.auth import hash_key, new_api_key
        from webapp.catalog import now_iso

        secret = new_api_key()
        key_id = new_id()
        now = now_iso()
        with self.db.transaction():
            counted = self.db.row(
                "SELECT count(*) AS n FROM api_keys WHERE user_id = ?", (user_id,)
            )
            if counted is not None and int(counted["n"]) >= MAX_KEYS_PER_USER:
                raise Conflict(f"A user may have at most {MAX_KEYS_PER_USER} API keys")
            self.db.execute(
                "INSERT INTO api_keys (id, user_id, key_hash, comment, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (key_id, user_id, hash_key(secret), comment, now),
            )
        return NewApiKey(id=key_id, api_key=secret, comment=comment, created=now)

    def delete_key(self, user_id: str, key_id: str, *, current_key_id: str) -> bool:
        """Delete one of the user's keys; False if it is not theirs; ``Conflict`` for the
        key of the current request."""
        if key_id == current_key_id:
            raise Conflict("The API key used for this request cannot be deleted")
        with self.db.transaction():
            return (
                self.db.execute(
                    "DELETE FROM api_keys WHERE user_id = ? AND id = ?", (user_id, key_id)
                )
                > 0
            )

    # -- organizations --------------------------------------------------------------

    def org_by_name(self, name: str) -> Organization | None:
        """The organization named ``name``, or None."""
        row = self.db.row(f"SELECT {_ORG_COLUMNS} FROM organizations o WHERE o.name = ?", (name,))
        return org_record(row) if row else None

    def _org_by_id(self, org_id: str) -> Organization:
        row = self.db.row(f"SELECT {_ORG_COLUMNS} FROM organizations o WHERE o.id = ?", (org_id,))
        if row is None:
            raise NotFound("Organization not found")
        return org_record(row)

    def _insert_org(
        self,
        name: str,
        *,
        display_name: str,
        billing_email: str,
        master_organization: str | None,
        admin_user_id: str | None,
        now: str,
    ) -> str:
        """Insert an organization (and its first admin, if given) inside a write
        transaction; its id. ``Conflict`` when the name is taken."""
        if self.db.row("SELECT 1 FROM organizations WHERE name = ?", (name,)):
            raise Conflict(f"Organization {name} already exists")
        org_id = new_id()
        signing_keys = [SigningKey(key=new_signing_key(), created=now)]
        self.db.execute(
            "INSERT INTO organizations (id, name, display_name, billing_email, "
            "master_organization, options, signing_keys, created) "
            "VALUES (?, ?, ?, ?, ?, '{}', ?, ?)",
            (
                org_id,
                name,
                display_name,
                billing_email,
                master_organization or name,
                _keys_json(signing_keys),
                now,
            ),
        )
        if admin_user_id is not None:
            self.db.execute(
                "INSERT INTO memberships (organization_id, user_id, roles, active, created) "
                "VALUES (?, ?, '[\"admin\"]', 1, ?)",
                (org_id, admin_user_id, now),
            )
        return org_id

    def signup(self, email: str, org_name: str | None) -> NewUser:
        """``POST /users``: a new user with a key, and (if named) a new org it administers.

        An existing organization is always a ``Conflict``, even when an admin of it has
        the same email: without authentication, handing out a key for that admin would
        let anyone who knows the address take the organization over.
        """
        from webapp.catalog import now_iso

        now = now_iso()
        with self.db.transaction():
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

    def provision(self, org_name: str, email: str, roles: list[str], api_key: str) -> Provisioned:
        """Seed an account (operators' tooling and test fixtures): a new user holding the
        secret ``api_key`` with ``roles`` in ``org_name``, which is created first (with
        no other member) when it does not exist. The same rules as everywhere else: the
        organization name is checked for uniqueness inside this transaction."""
        from webapp.catalog import now_iso

        now = now_iso()
        with self.db.transaction():
            found = self.db.row("SELECT id FROM organizations WHERE name = ?", (org_name,))
            if found is None:
                org_id = self._insert_org(
                    org_name,
                    display_name=org_name,
                    billing_email=f"billing@{org_name}.example",
                    master_organization=None,
                    admin_user_id=None,
                    now=now,
                )
            else:
                org_id = found["id"]
            user = self._insert_user(email, now, secret=api_key)
            self.db.execute(
                "INSERT INTO memberships (organization_id, user_id, roles, active, created) "
                "VALUES (?, ?, ?, 1, ?)",
                (org_id, user.id, json.dumps(roles), now),
            )
        return Provisioned(organization_id=org_id, user_id=user.id)

    def create_org(
        self,
        name: str,
        *,
        display_name: str,
        billing_email: str,
        master_organization: str | None,
        admin_user_id: str,
    ) -> Organization:
        """``PUT /organizations/{name}``: create it with the caller as admin;
        ``Conflict`` if the name is taken."""
        from webapp.catalog import now_iso

        with self.db.transaction():
            org_id = self._insert_org(
                name,
                display_name=display_name,
                billing_email=billing_email,
                master_organization=master_organization,
                admin_user_id=admin_user_id,
                now=now_iso(),
            )
            return self._org_by_id(org_id)

    def set_options(self, org_id: str, changes: dict[str, Any]) -> Organization:
        """Merge ``changes`` into the org's options (a ``None`` value removes the option).

        Read-modify-write in one transaction so concurrent updates of different options
        do not lose each other. Returns the organization as stored.
        """
        with self.db.transaction():
            options = dict(self._org_by_id(org_id).options)
            for name, value in changes.items():
                if value is None:
                    options.pop(name, None)
                else:
                    options[name] = value
            self.db.execute(
                "UPDATE organizations SET options = ? WHERE id = ?", (json.dumps(options), org_id)
            )
            return self._org_by_id(org_id)

    def add_signing_key(self, org_id: str) -> tuple[SigningKey, ...]:
        """Rotate: a new key goes first (clients sign with ``signing_keys[0]``), the older
        ones stay valid until removed. ``Conflict`` past ``MAX_SIGNING_KEYS``. All keys."""
        from webapp.catalog import now_iso

        with self.db.transaction():
            keys = list(self._org_by_id(org_id).signing_keys)
            if len(keys) >= MAX_SIGNING_KEYS:
                raise Conflict(
                    f"An organization may have at most {MAX_SIGNING_KEYS} signing keys; "
                    "remove old ones first"
                )
            keys.insert(0, SigningKey(key=new_signing_key(), created=now_iso()))
            self._store_signing_keys(org_id, keys)
        return tuple(keys)

    def _store_signing_keys(self, org_id: str, keys: list[SigningKey]) -> None:
        self.db.execute(
            "UPDATE organizations SET signing_keys = ? WHERE id = ?", (_keys_json(keys), org_id)
        )

    def drop_signing_keys(self, org_id: str, keep: int) -> tuple[SigningKey, ...]:
        """End the rotation overlap: keep only the ``keep`` newest keys (>= 1). Returns
        the remaining keys; URLs signed with a removed key stop verifying at once."""
        if keep < 1:
            raise ValueError("keep must be at least 1")
        with self.db.transaction():
            keys = list(self._org_by_id(org_id).signing_keys)[:keep]
            self._store_signing_keys(org_id, keys)
        return tuple(keys)

    def membership_of(
        self, org_name: str, user_id: str
    ) -> tuple[Organization, tuple[str, ...]] | None:
        """The organization and the user's roles in it, if the user is an active member."""
        row = self.db.row(
            f"SELECT {_ORG_COLUMNS}, m.roles AS member_roles FROM organizations o "
            "JOIN memberships m ON m.organization_id = o.id "
            "WHERE o.name = ? AND m.user_id = ? AND m.active = 1",
            (org_name, user_id),
        )
        if row is None:
            return None
        return org_record(row), tuple(json.loads(row["member_roles"]))

    # -- memberships ----------------------------------------------------------------

    def memberships(self, org_id: str) -> list[Membership]:
        """Every membership of the organization, oldest first."""
        rows = self.db.rows(_MEMBERSHIP_SELECT + f" ORDER BY m.created, m.{self.db.seq}", (org_id,))
        return [membership_record(r) for r in rows]

    def membership(self, org_id: str, user_id: str) -> Membership | None:
        """One membership, or None."""
        row = self.db.row(_MEMBERSHIP_SELECT + " AND m.user_id = ?", (org_id, user_id))
        return membership_record(row) if row else None

    def _other_admins(self, org_id: str, user_id: str) -> int:
        rows = self.db.rows(
            "SELECT roles FROM memberships WHERE organization_id = ? AND user_id != ? "
            "AND active = 1",
            (org_id, user_id),
        )
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
            for r in self.db.rows(
                "SELECT organization_id FROM memberships WHERE user_id = ?", (user_id,)
            )
        }
        if not theirs:
            return True
        administered = {
            r["organization_id"]
            for r in self.db.rows(
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
    ) -> tuple[str, Membership | None]:
        """Create or update a membership: ``("created"|"updated", membership)`` or
        ``("unchanged", None)``.

        ``Conflict`` when it would leave the organization without an admin; ``comment``
        None keeps the existing comment. A new membership for a user ``_may_enrol``
        refuses is the same ``NotFound`` "User not found" as an unknown id, so user ids
        cannot be probed.
        """
        from webapp.catalog import now_iso

        with self.db.transaction():
            current = self.db.row(
                "SELECT roles, comment FROM memberships WHERE organization_id = ? AND user_id = ?",
                (org_id, user_id),
            )
            if current is None and not self._may_enrol(user_id, acting_user_id):
                raise NotFound("User not found")
            if current is None:
                self.db.execute(
                    "INSERT INTO memberships (organization_id, user_id, roles, active, comment, "
                    "created) VALUES (?, ?, ?, 1, ?, ?)",
                    (org_id, user_id, json.dumps(roles), comment, now_iso()),
                )
                outcome = "created"
            else:
                old_roles = json.loads(current["roles"])
                new_comment = current["comment"] if comment is None else comment
                if old_roles == roles and new_comment == current["comment"]:
                    return "unchanged", None
                if (
                    "admin" in old_roles
                    and "admin" not in roles
                    and self._other_admins(org_id, user_id) == 0
                ):
                    raise Conflict("An organization needs at least one admin")
                self.db.execute(
                    "UPDATE memberships SET roles = ?, comment = ? "
                    "WHERE organization_id = ? AND user_id = ?",
                    (json.dumps(roles), new_comment, org_id, user_id),
                )
                outcome = "updated"
            return outcome, self.membership(org_id, user_id)

    def delete_membership(self, org_id: str, user_id: str) -> None:
        """Remove a membership; ``NotFound`` if there is none, ``Conflict`` for the last
        admin."""
        with self.db.transaction():
            current = self.db.row(
                "SELECT roles FROM memberships WHERE organization_id = ? AND user_id = ?",
                (org_id, user_id),
            )
            if current is None:
                raise NotFound("Membership not found")
            if "admin" in json.loads(current["roles"]) and self._other_admins(org_id, user_id) == 0:
                raise Conflict("An organization needs at least one admin")
            self.db.execute(
                "DELETE FROM memberships WHERE organization_id = ? AND user_id = ?",
                (org_id, user_id),
            )

    def create_member_user(
        self, org_id: str, email: str, roles: list[str], comment: str | None
    ) -> NewMember:
        """A new user (email copied from the creator, as rokka does) with a key and a
        membership in the org."""
        from webapp.catalog import now_iso

        now = now_iso()
        with self.db.transaction():
            user = self._insert_user(email, now)
            self.db.execute(
                "INSERT INTO memberships (organization_id, user_id, roles, active, comment, "
                "created) VALUES (?, ?, ?, 1, ?, ?)",
                (org_id, user.id, json.dumps(roles), comment, now),
            )
            membership = self.membership(org_id, user.id)
        assert membership is not None
        return NewMember(membership=membership, api_key=user.api_key)
