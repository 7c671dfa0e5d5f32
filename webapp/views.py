"""The JSON objects the API answers for catalog records (rokka's shapes).

The catalog hands out records (``webapp.catalog.records``); how they look on the wire is
decided here, in the web layer, once.
"""

from __future__ import annotations

from typing import Any

from webapp.catalog.records import ApiKey, Membership, Organization, SigningKey, SourceImage


def image_object(
    image: SourceImage, org_name: str, *, with_deleted: bool = False
) -> dict[str, Any]:
    """The rokka source image object; every field always present.

    ``deleted`` is added when ``with_deleted`` (``?deleted=true`` and restore answers).
    """
    obj: dict[str, Any] = {
        "organization": org_name,
        "hash": image.hash,
        "short_hash": image.short_hash,
        "binary_hash": image.binary_hash,
        "created": image.created,
        "name": image.name,
        "mimetype": image.mimetype,
        "format": image.format,
        "size": image.size,
        "width": image.width,
        "height": image.height,
        "link": f"/sourceimages/{org_name}/{image.hash}",
        "user_metadata": image.user_metadata,
        "dynamic_metadata": image.dynamic_metadata,
        "static_metadata": image.static_metadata,
        "opaque": image.opaque,
        "animated": image.animated,
        "protected": image.protected,
        "locked": image.locked,
    }
    if with_deleted:
        obj["deleted"] = image.deleted_at is not None
    return obj


def signing_keys_object(keys: tuple[SigningKey, ...]) -> list[dict[str, str]]:
    """Signing keys as answered: ``[{"key", "created"}]``, newest first."""
    return [{"key": k.key, "created": k.created} for k in keys]


def org_object(org: Organization) -> dict[str, Any]:
    """The organization object as the API answers it (recorded keys first)."""
    return {
        "id": org.id,
        "display_name": org.display_name,
        "name": org.name,
        "billing_email": org.billing_email,
        "created": org.created,
        "master_organization": org.master_organization,
        "options": org.options,
        "signing_keys": signing_keys_object(org.signing_keys),
    }


def membership_object(membership: Membership) -> dict[str, Any]:
    """A membership as the API answers it; ``comment`` and ``last_access`` are left out
    when unset, as rokka does."""
    item: dict[str, Any] = {
        "user_id": membership.user_id,
        "email": membership.email,
        "roles": list(membership.roles),
        "organization_id": membership.organization_id,
        "active": membership.active,
        "created": membership.created,
    }
    if membership.comment is not None:
        item["comment"] = membership.comment
    if membership.last_access is not None:
        item["last_access"] = membership.last_access
    return item


def key_object(key: ApiKey) -> dict[str, Any]:
    """An API key as listed: ``id``, ``comment``, ``created`` (never the secret)."""
    return {"id": key.id, "comment": key.comment, "created": key.created}
