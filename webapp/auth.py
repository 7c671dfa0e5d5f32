"""API keys, users and what each membership role may do.

Keys are random 64-character secrets shown once; the catalog stores only their SHA-256
and looks keys up by that digest (a unique index), then confirms with a constant-time
comparison. A missing or unknown key is a 403 with ``invalid_authentication: true``,
as rokka answers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

from flask import g, request

from webapp import tokens
from webapp.catalog.records import Organization
from webapp.errors import ApiError
from webapp.settings import Settings

_ALPHABET = string.ascii_letters + string.digits

#: What each role may do. Permissions are checked per organization.
#: ``images:download`` fetches unprotected originals; the original of a protected image
#: also needs ``images:download:protected`` (admin and sourceimages:download:protected
#: only: the reference says sourceimages:read/write "cannot download protected originals").
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {
            "org:read",
            "org:write",
            "memberships",
            "images:read",
            "images:write",
            "images:upload",
            "images:unlock",
            "images:download",
            "images:download:protected",
            "stacks:read",
            "stacks:write",
            "billing:read",
        }
    ),
    "write": frozenset(
        {
            "org:read",
            "images:read",
            "images:write",
            "images:upload",
            "images:download",
            "stacks:read",
            "stacks:write",
            "billing:read",
        }
    ),
    "read": frozenset({"org:read", "images:read", "images:download", "stacks:read"}),
    "upload": frozenset({"images:upload"}),
    "sourceimages:read": frozenset({"images:read", "images:download"}),
    "sourceimages:write": frozenset(
        {"images:read", "images:write", "images:upload", "images:download"}
    ),
    # A download-only grant: originals, protected or not, of images whose hash is known.
    "sourceimages:download:protected": frozenset({"images:download", "images:download:protected"}),
    "sourceimages:unlock": frozenset({"images:unlock"}),
    # rokka: the billing overview (GET /billing) and nothing else; admin and write see it too.
    "billing:read": frozenset({"billing:read"}),
}
ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: user id, email and the id of the key used."""

    user_id: str
    email: str
    key_id: str


def new_api_key() -> str:
    """A fresh 64-character alphanumeric secret (32 lowercase + 32 mixed, as rokka's)."""
    lower = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(lower) for _ in range(32)) + "".join(
        secrets.choice(_ALPHABET) for _ in range(32)
    )


def hash_key(secret: str) -> str:
    """The SHA-256 hex digest under which a key is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _invalid() -> ApiError:
    return ApiError(
        403,
        "Api credentials are not supplied or not a valid format.",
        invalid_authentication=True,
    )


def _invalid_token(reason: str) -> ApiError:
    return ApiError(401, f"Invalid token: {reason}", invalid_authentication=True)


def current_principal() -> Principal:
    """The caller identified by the ``Api-Key`` header (403 when wrong or missing), or,
    without one, by an ``Authorization: Bearer`` token (401 when invalid, as rokka)."""
    cached = g.get("principal")
    if cached is not None:
        return cached
    secret = request.headers.get("Api-Key", "")
    bearer = _bearer_token()
    if not secret and bearer is not None:
        principal = _token_principal(bearer)
    else:
        principal = _key_principal(secret)
    g.principal = principal
    return principal


def _key_principal(secret: str) -> Principal:
    if not secret or len(secret) > 256:
        raise _invalid()
    from webapp.app import catalog

    digest = hash_key(secret)
    owner = catalog().accounts.key_by_hash(digest)
    if owner is None or not hmac.compare_digest(owner.key_hash, digest):
        raise _invalid()
    return Principal(user_id=owner.user_id, email=owner.email, key_id=owner.id)


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    if not token.strip() or len(token) > 4096:
        raise _invalid_token("the token is not a valid JWT")
    return token.strip()


def _token_principal(token: str) -> Principal:
    from webapp.app import catalog, settings, token_secret

    try:
        owner = catalog().accounts.key_by_id(tokens.unverified_key_id(token))
        if owner is None:  # the key that issued it was deleted: its tokens are revoked
            raise tokens.InvalidToken("the API key of the token no longer exists")
        claims = tokens.verify(
            token, token_secret(), key_digest=owner.key_hash, client_ip=client_ip(settings())
        )
    except tokens.InvalidToken as exc:
        raise _invalid_token(str(exc)) from None
    g.token_claims = claims
    return Principal(user_id=owner.user_id, email=owner.email, key_id=owner.id)


def token_claims() -> tokens.Claims | None:
    """The verified token of this request, when it authenticated with one."""
    current_principal()
    return g.get("token_claims")


def client_ip(settings: Settings) -> str:
    """The caller's address: the connecting one, or with ``proxy_count`` trusted proxies
    in front, the one they appended to ``X-Forwarded-For`` (counted from the right, so a
    client can't forge it)."""
    if settings.proxy_count:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        hops = [h for h in hops if h]
        if len(hops) >= settings.proxy_count:
            return hops[-settings.proxy_count]
    return request.remote_addr or ""


@dataclass(frozen=True, slots=True)
class Grant:
    """An organization and everything the caller's roles there allow."""

    org: Organization
    permissions: frozenset[str]

    def allows(self, permission: str) -> bool:
        """Whether the caller holds ``permission`` in ``org``."""
        return permission in self.permissions


def permissions_of(roles: list[str] | tuple[str, ...]) -> frozenset[str]:
    """The union of the permissions of ``roles`` (unknown role names grant nothing)."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    return frozenset(granted)


def authorise(org_name: str, permission: str) -> Grant:
    """The caller's grant in the organization ``org_name`` if it includes ``permission``.

    Unknown organizations and organizations the caller is no member of answer the same
    403, so a key never learns what other organizations exist or hold.
    """
    principal = current_principal()
    from webapp.app import catalog

    found = catalog().accounts.membership_of(org_name, principal.user_id)
    if found is None:
        raise ApiError(403, f"Not allowed to access organization {org_name}")
    org, roles = found
    grant = Grant(org=org, permissions=permissions_of(roles))
    if not grant.allows(permission):
        raise ApiError(403, f"Not allowed: needs {permission} on organization {org_name}")
    return grant


def require(org_name: str, permission: str) -> Organization:
    """The organization named ``org_name`` if the caller may ``permission`` there."""
    return authorise(org_name, permission).org
