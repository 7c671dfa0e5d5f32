"""Routes for users, API keys, organizations, options and memberships (docs/accounts.md).

Each route parses and validates its input, authorises through ``webapp.auth``, calls one
``catalog().accounts`` method and answers JSON. Validation lives in the ``_parse_*``
helpers below; the wire shapes in ``webapp.views``.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, request

from stacks.urlpattern import PatternError, compiled
from webapp import tokens
from webapp.accountfields import parse_email as _parse_email
from webapp.accountfields import parse_org_name as _parse_org_name
from webapp.app import catalog, settings, token_secret
from webapp.auth import ROLES, client_ip, current_principal, require, token_claims
from webapp.errors import ApiError, bad_request, json_response, not_found
from webapp.views import (
    key_object,
    membership_object,
    org_object,
    signing_keys_object,
)
from webapp.wire import json_body, json_or_text_body, parse_bool, query_int

bp = Blueprint("accounts", __name__)

#: Account bodies are tiny; refuse anything bigger before parsing it (bytes).
MAX_ACCOUNT_BODY = 64 * 1024

_MAX_TEXT = 255
_MAX_ID = 64

#: Organization options and the parser of each value (``None`` always unsets).
KNOWN_OPTIONS: tuple[str, ...] = (
    "remote_basepath",
    "remote_fullurl_allow",
    "remote_fullurl_whitelist",
    "render_org_fallback",
    "protect_dynamic_stack",
)


# -- input parsing -----------------------------------------------------------------------


def _object_body() -> dict[str, Any]:
    body = json_body(max_bytes=MAX_ACCOUNT_BODY)
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def _optional_object_body() -> dict[str, Any]:
    body = json_body(allow_empty=True, max_bytes=MAX_ACCOUNT_BODY)
    if body is None and not request.get_data(cache=True).strip():
        return {}  # no body at all: every field takes its default
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def _parse_text(value: Any, *, field: str) -> str | None:
    """An optional short text (None when absent), at most 255 characters."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise bad_request(f"{field} must be a string of at most {_MAX_TEXT} characters")
    return value


def _parse_roles(body: dict[str, Any]) -> list[str]:
    """``roles`` (a list) or ``role`` (one name); deduplicated, order kept; 400 if unknown."""
    if "roles" in body:
        raw = body["roles"]
        if not isinstance(raw, list) or not raw or len(raw) > len(ROLES):
            raise bad_request("roles must be a non-empty list of role names")
    elif "role" in body:
        raw = [body["role"]]
    else:
        raise bad_request("roles is required")
    roles: list[str] = []
    for role in raw:
        if not isinstance(role, str) or role not in ROLES:
            raise bad_request(f"Unknown role {role!r}; known: {', '.join(ROLES)}")
        if role not in roles:
            roles.append(role)
    return roles


def _parse_user_id(user_id: str) -> str:
    # Ids are UUIDs; anything absurd is simply not found (and never reaches SQL unbounded).
    if len(user_id) > _MAX_ID:
        raise not_found("User not found")
    return user_id


def _parse_option(name: str, value: Any) -> Any:
    """The validated value of one organization option (None unsets it); 400 if bad."""
    if value is None:
        return None
    if name in {"remote_fullurl_allow", "protect_dynamic_stack"}:
        if isinstance(value, str):
            return parse_bool(value, name=name)
        if not isinstance(value, bool):
            raise bad_request(f"{name} must be true or false")
        return value
    if name == "remote_basepath":
        if (
            not isinstance(value, str)
            or len(value) > 2048
            or not re.match(r"https?://[^\s/]+", value)
        ):
            raise bad_request(f"{name} must be an http(s) URL")
        return value
    if name == "remote_fullurl_whitelist":
        if not isinstance(value, list) or len(value) > 100:
            raise bad_request(f"{name} must be a list of at most 100 regular expressions")
        for pattern in value:
            if not isinstance(pattern, str) or len(pattern) > 1024:
                raise bad_request(f"{name} entries must be strings of at most 1024 characters")
            try:
                compiled(pattern)
            except PatternError as exc:
                raise bad_request(
                    f"{name}: invalid regular expression {pattern!r} (RE2 syntax: {exc})"
                ) from exc
        return value
    if name == "render_org_fallback":
        fallback = _parse_org_name(value, field=name)
        # rokka: the caller must be admin of both organizations.
        found = catalog().accounts.membership_of(fallback, current_principal().user_id)
        if found is None or "admin" not in found[1]:
            raise ApiError(403, f"{name}: you must be admin of organization {fallback}")
        return fallback
    raise bad_request(f"Unknown organization option {name!r}; known: {', '.join(KNOWN_OPTIONS)}")


def _require_key_management() -> None:
    principal = current_principal()
    if not catalog().accounts.may_manage_keys(principal.user_id):
        raise ApiError(
            403,
            "Only users with a membership without read, upload or sourceimages:read roles "
            "(or with admin) can manage keys",
        )


# -- users and keys ----------------------------------------------------------------------


@bp.post("/users")
def create_user() -> Response:
    """Sign up: a user, its first key and (optionally) a new organization it administers."""
    if not settings().signup:
        raise ApiError(
            403,
            "Signup is disabled on this server: an operator creates accounts with "
            "`cropstack users create`, or enables signup (CROPSTACK_SIGNUP=true)",
        )
    body = _object_body()
    email = _parse_email(body.get("email"), field="email")
    org_name = body.get("organization")
    if org_name is not None:
        org_name = _parse_org_name(org_name)
    user = catalog().accounts.signup(email, org_name)
    return json_response({"id": user.id, "email": user.email, "api_key": user.api_key})


@bp.get("/user")
def get_user() -> Response:
    """The caller: ``user_id``, plus ``email`` and ``api_keys`` unless key-restricted."""
    principal = current_principal()
    accounts = catalog().accounts
    payload: dict[str, Any] = {"user_id": principal.user_id}
    if accounts.may_manage_keys(principal.user_id):
        payload["email"] = principal.email
        payload["api_keys"] = [key_object(k) for k in accounts.keys_of(principal.user_id)]
    return json_response(payload)


@bp.get("/user/apikeys")
def list_keys() -> Response:
    """The caller's keys (never their secrets)."""
    _require_key_management()
    keys = catalog().accounts.keys_of(current_principal().user_id)
    return json_response([key_object(k) for k in keys])


@bp.post("/user/apikeys")
def add_key() -> Response:
    """A new key for the caller; the secret is in this answer only."""
    _require_key_management()
    body = _optional_object_body()
    comment = _parse_text(body.get("comment"), field="comment")
    return json_response(catalog().accounts.add_key(current_principal().user_id, comment).as_dict())


@bp.get("/user/apikeys/current")
def current_key() -> Response:
    """The key used for this request."""
    principal = current_principal()
    key = catalog().accounts.key(principal.user_id, principal.key_id)
    if key is None:  # deleted by a concurrent request
        raise not_found("API key not found")
    return json_response(key_object(key))


@bp.route("/user/apikeys/token", methods=["GET", "POST"])
def new_token() -> Response:
    """A JWT for the caller, as rokka's ``GET /user/apikeys/token`` (POST also accepted):
    ``{"token", "payload"}``. With a token instead of a key, only a renewable token renews,
    never for longer or from more addresses than it had (403)."""
    principal = current_principal()
    owner = catalog().accounts.key_by_id(principal.key_id)
    if owner is None:  # deleted by a concurrent request
        raise not_found("API key not found")
    query = {k: v for k, v in request.args.items() if isinstance(v, str)}
    try:
        options = tokens.parse_options(query, client_ip(settings()))
        current = token_claims()
        if current is not None:
            options = tokens.renewal(current, options, query)
    except tokens.TokenRefused as exc:
        raise ApiError(exc.status, str(exc)) from None
    token, payload = tokens.issue(
        token_secret(),
        user_id=principal.user_id,
        key_id=principal.key_id,
        key_digest=owner.key_hash,
        options=options,
    )
    return json_response({"token": token, "payload": payload})


@bp.delete("/user/apikeys/<key_id>")
def delete_key(key_id: str) -> Response:
    """Delete one of the caller's other keys: 204; 404 unknown; 409 the current key."""
    _require_key_management()
    principal = current_principal()
    if len(key_id) > _MAX_ID or not catalog().accounts.delete_key(
        principal.user_id, key_id, current_key_id=principal.key_id
    ):
        raise not_found("API key not found")
    return Response(status=204)


# -- organizations -----------------------------------------------------------------------


@bp.put("/organizations/<name>")
def create_organization(name: str) -> Response:
    """Create an organization with the caller as admin: 200 org; 409 if the name is taken."""
    principal = current_principal()
    name = _parse_org_name(name, field="name")
    body = _optional_object_body()
    billing_email = body.get("billing_email")
    billing_email = (
        principal.email
        if billing_email is None
        else _parse_email(billing_email, field="billing_email")
    )
    display_name = _parse_text(body.get("display_name"), field="display_name") or name
    master = body.get("master_organization")
    if master is not None and master != name:
        master = _parse_org_name(master, field="master_organization")
        found = catalog().accounts.membership_of(master, principal.user_id)
        if found is None or "admin" not in found[1]:
            raise ApiError(403, f"master_organization: you must be admin of {master}")
    org = catalog().accounts.create_org(
        name,
        display_name=display_name,
        billing_email=billing_email,
        master_organization=master,
        admin_user_id=principal.user_id,
    )
    return json_response(org_object(org))


@bp.get("/organizations/<name>")
def get_organization(name: str) -> Response:
    """The organization, for any member with a read role."""
    return json_response(org_object(require(name, "org:read")))


@bp.put("/organizations/<name>/options")
def set_options(name: str) -> Response:
    """Set several options from a JSON object (null unsets); answers the organization."""
    org = require(name, "org:write")
    body = _object_body()
    changes = {option: _parse_option(option, value) for option, value in body.items()}
    org = catalog().accounts.set_options(org.id, changes)
    return json_response(org_object(org))


@bp.put("/organizations/<name>/options/<option>")
def set_option(name: str, option: str) -> Response:
    """Set one option from a JSON value (or rokka.js's bare string); answers the org."""
    org = require(name, "org:write")
    if option not in KNOWN_OPTIONS:
        raise bad_request(f"Unknown organization option {option[:64]!r}")
    value = _parse_option(option, json_or_text_body(max_bytes=MAX_ACCOUNT_BODY))
    org = catalog().accounts.set_options(org.id, {option: value})
    return json_response(org_object(org))


# -- signing keys ------------------------------------------------------------------------


@bp.get("/organizations/<name>/signing_keys")
def list_signing_keys(name: str) -> Response:
    """``{"signing_keys": [{key, created}]}``, newest (the one to sign with) first."""
    org = require(name, "org:read")
    return json_response({"signing_keys": signing_keys_object(org.signing_keys)})


@bp.post("/organizations/<name>/signing_keys")
def rotate_signing_key(name: str) -> Response:
    """Add a new signing key in front (201); older keys keep verifying until removed."""
    org = require(name, "org:write")
    keys = catalog().accounts.add_signing_key(org.id)
    return json_response({"signing_keys": signing_keys_object(keys)}, 201)


@bp.delete("/organizations/<name>/signing_keys")
def drop_signing_keys(name: str) -> Response:
    """Remove all but the ``keep`` newest keys (``?keep=``, default 1): 200 the rest."""
    org = require(name, "org:write")
    keep = query_int("keep", 1, 1, 100)
    keys = catalog().accounts.drop_signing_keys(org.id, keep)
    return json_response({"signing_keys": signing_keys_object(keys)})


# -- memberships -------------------------------------------------------------------------


@bp.get("/organizations/<org>/memberships")
def list_memberships(org: str) -> Response:
    """``{"total", "items"}`` of every membership (admin only)."""
    items = catalog().accounts.memberships(require(org, "memberships").id)
    return json_response({"total": len(items), "items": [membership_object(m) for m in items]})


@bp.post("/organizations/<org>/memberships")
def create_membership_with_new_user(org: str) -> Response:
    """A new user with a key and the given roles: 201 membership + ``api_key``."""
    organization = require(org, "memberships")
    body = _object_body()
    roles = _parse_roles(body)
    comment = _parse_text(body.get("comment"), field="comment")
    made = catalog().accounts.create_member_user(
        organization.id, current_principal().email, roles, comment
    )
    return json_response({**membership_object(made.membership), "api_key": made.api_key}, 201)


@bp.get("/organizations/<org>/memberships/<user_id>")
def get_membership(org: str, user_id: str) -> Response:
    """One membership: 200 or 404."""
    organization = require(org, "memberships")
    membership = catalog().accounts.membership(organization.id, _parse_user_id(user_id))
    if membership is None:
        raise not_found("Membership not found")
    return json_response(membership_object(membership))


@bp.put("/organizations/<org>/memberships/<user_id>")
def put_membership(org: str, user_id: str) -> Response:
    """Create (201), update (200) or confirm (204) a membership; 409 for the last admin."""
    organization = require(org, "memberships")
    user_id = _parse_user_id(user_id)
    body = _object_body()
    roles = _parse_roles(body)
    comment = _parse_text(body.get("comment"), field="comment")
    outcome, membership = catalog().accounts.put_membership(
        organization.id, user_id, roles, comment, acting_user_id=current_principal().user_id
    )
    if membership is None:
        return Response(status=204)
    return json_response(membership_object(membership), 201 if outcome == "created" else 200)


@bp.delete("/organizations/<org>/memberships/<user_id>")
def delete_membership(org: str, user_id: str) -> Response:
    """Remove a membership: 204; 404 if none; 409 for the last admin."""
    organization = require(org, "memberships")
    catalog().accounts.delete_membership(organization.id, _parse_user_id(user_id))
    return Response(status=204)
