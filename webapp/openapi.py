"""The OpenAPI 3.1 description of the management API, served as ``GET /openapi.json``.

Written by hand from the routes (webapp/routes/), and kept true by two tests: every route
of the URL map is described here and every path here is a route
(tests/webapp/test_openapi.py), and schemathesis drives a live server from this document
and checks every answer against it (no 5xx, statuses, content types and bodies as
described). Render URLs (``/{org}/{stack}/...``), IIIF URLs (``/{org}/_iiif/...``) and
albums (``/{org}/_albums/...``, docs/render.md) are not described: they are the render
host's protocols, not the JSON API; nor are the browser console's static files
(``/console/...``, docs/console.md). rokka's ``COPY /sourceimages/{org}/{hash}`` method
cannot be written in OpenAPI; its ``POST .../copy`` twin is.
"""

from __future__ import annotations

from typing import Any

from webapp.auth import ROLES

JSON = "application/json"
_ERROR_STATUSES = {
    "400": "Bad input: the message says what is wrong.",
    "401": "An invalid or expired token (Authorization: Bearer).",
    "403": "No, or an invalid, API key; or the key's roles do not allow this.",
    "404": "Not found (unknown or malformed names and hashes).",
    "409": "Conflicts with the current state (locked image, existing name, last admin).",
    "413": "Request body too large.",
    "503": "Busy or storage unavailable; retry (``Retry-After`` when busy).",
    "507": "Storage full; retry later.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_BOOLEAN_TEXT = {"type": "boolean"}
_ANY_OBJECT = {"type": "object"}


def _schemas() -> dict[str, Any]:
    image_fields = {
        "organization": _STRING,
        "hash": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
        "short_hash": _STRING,
        "binary_hash": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
        "created": _STRING,
        "name": _STRING,
        "mimetype": _STRING,
        "format": _STRING,
        "size": {"type": "integer", "minimum": 0},
        "width": {"type": "integer", "minimum": 0},
        "height": {"type": "integer", "minimum": 0},
        "link": _STRING,
        "user_metadata": _ANY_OBJECT,
        "dynamic_metadata": _ANY_OBJECT,
        "static_metadata": _ANY_OBJECT,
        "opaque": {"type": "boolean"},
        "animated": {"type": "boolean"},
        "protected": {"type": "boolean"},
        "locked": {"type": "boolean"},
        "deleted": {
            "type": "boolean",
            "description": "Only with ?deleted=true and on restore answers.",
        },
    }
    receipt = [
        "organization", "hash", "short_hash", "binary_hash", "mimetype", "format", "size",
        "width", "height", "link", "protected", "locked", "name",
    ]  # fmt: skip
    full = [name for name in image_fields if name != "deleted"]
    key = _obj(["id", "comment", "created"], id=_STRING, comment=_NULLABLE_STRING, created=_STRING)
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "description": "Every error answer. Authentication failures repeat code and "
            "message at the top level with invalid_authentication: true, as rokka's do.",
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "integer", "minimum": 400, "maximum": 599},
                        "message": _STRING,
                    },
                }
            },
        },
        "SourceImage": {**_obj(full, **image_fields), "description": "rokka's image object."},
        "UploadedImage": {
            **_obj(receipt, **image_fields),
            "description": "A source image; a caller who may upload but not read images "
            "gets only these fields.",
        },
        "SourceImageList": _obj(
            ["total", "items", "links"],
            total={"type": "integer", "minimum": 0},
            items={"type": "array", "items": _ref("SourceImage")},
            cursor={"type": "string", "description": "Pass as offset for the next page."},
            links=_ANY_OBJECT,
            facets=_ANY_OBJECT,
        ),
        "UploadResult": _obj(
            ["total", "items"],
            total={"type": "integer", "minimum": 0},
            items={"type": "array", "items": _ref("UploadedImage")},
        ),
        "CopyResult": _obj(
            ["created", "existing", "notfound"],
            created={"type": "array", "items": _STRING},
            existing={"type": "array", "items": _STRING},
            notfound={"type": "array", "items": _STRING},
        ),
        "Status": _obj(["status"], status={"const": "ok"}),
        "ApiRoot": _obj(
            ["resources", "environment"],
            resources={"type": "array", "items": _STRING},
            environment=_STRING,
        ),
        "NewUser": _obj(["id", "email", "api_key"], id=_STRING, email=_STRING, api_key=_STRING),
        "User": _obj(
            ["user_id"],
            user_id=_STRING,
            email=_STRING,
            api_keys={"type": "array", "items": _ref("ApiKey")},
        ),
        "ApiKey": key,
        "NewApiKey": {
            **key,
            "required": ["id", "api_key", "comment", "created"],
            "properties": {**key["properties"], "api_key": _STRING},
        },
        "SigningKeys": _obj(
            ["signing_keys"],
            signing_keys={
                "type": "array",
                "items": _obj(["key", "created"], key=_STRING, created=_STRING),
            },
        ),
        "Organization": _obj(
            ["id", "display_name", "name", "billing_email", "created", "options"],
            id=_STRING,
            display_name=_STRING,
            name=_STRING,
            billing_email=_STRING,
            created=_STRING,
            master_organization=_NULLABLE_STRING,
            options=_ANY_OBJECT,
            signing_keys={"type": "array"},
        ),
        "Membership": _obj(
            ["user_id", "roles", "organization_id"],
            user_id=_STRING,
            email=_STRING,
            roles={"type": "array", "items": {"enum": list(ROLES)}},
            organization_id=_STRING,
            active={"type": "boolean"},
            created=_STRING,
            comment=_STRING,
            api_key={"type": "string", "description": "Only when a new user was made."},
        ),
        "MembershipList": _obj(
            ["total", "items"],
            total={"type": "integer", "minimum": 0},
            items={"type": "array", "items": _ref("Membership")},
        ),
        "MembershipInput": {
            "type": "object",
            "description": "roles (a list) or role (one name).",
            "properties": {
                "roles": {"type": "array", "items": {"enum": list(ROLES)}, "minItems": 1},
                "role": {"enum": list(ROLES)},
                "comment": {"type": "string", "maxLength": 255},
            },
        },
        "Stack": _obj(
            ["name", "organization", "created", "stack_operations", "stack_options"],
            name=_STRING,
            organization=_STRING,
            created=_STRING,
            description=_NULLABLE_STRING,
            stack_operations={"type": "array", "items": _ANY_OBJECT},
            stack_options=_ANY_OBJECT,
            stack_expressions={"type": "array"},
            stack_variables=_ANY_OBJECT,
            link=_STRING,
        ),
        "StackInput": {
            "description": "A stack (docs/stacks.md); a bare array of operations is the "
            "legacy form.",
            "oneOf": [
                {
                    "type": "object",
                    "properties": {
                        "description": _STRING,
                        "operations": {"type": "array", "items": _ANY_OBJECT},
                        "options": _ANY_OBJECT,
                        "expressions": {"type": "array", "items": _ANY_OBJECT},
                        "variables": _ANY_OBJECT,
                    },
                },
                {"type": "array", "items": _ANY_OBJECT},
            ],
        },
        "Token": _obj(["token", "payload"], token=_STRING, payload=_ANY_OBJECT),
        "CachePurge": _obj(
            ["status", "items"],
            status={"const": "ok"},
            items={"type": "array", "items": _STRING, "description": "Render paths purged."},
        ),
        "SignedUrl": _obj(
            ["signed_url", "original_url"],
            signed_url=_STRING,
            original_url=_STRING,
            until=_STRING,
        ),
    }


def _param(name: str, where: str, schema: dict[str, Any], description: str = "", **kw: Any):
    param = {"name": name, "in": where, "schema": schema, **kw}
    if where == "path":
        param["required"] = True
    if description:
        param["description"] = description
    return param


_ORG = _param("org", "path", _STRING, "Organization name.")
_NAME_ORG = _param("name", "path", _STRING, "Organization name.")
_HASHREF = _param("ref", "path", _STRING, "Image hash, short hash or a unique prefix (6-40 hex).")
_STACK = _param("name", "path", _STRING, "Stack name ([a-z0-9_-]).")
_BOOL_QUERY = {"type": "string", "enum": ["true", "false"]}
_DESTINATION = [
    _param("Destination", "header", _STRING, "Organization to copy to.", required=True),
    _param("Overwrite", "header", {"enum": ["T", "F"]}, "F: 412 if it exists there (T)."),
]


def _op(
    summary: str,
    params: list[dict[str, Any]],
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    public: bool = False,
    errors: tuple[str, ...] = ("400", "403", "404", "503", "507"),
) -> dict[str, Any]:
    answers = dict(responses)
    for status in errors:
        answers.setdefault(status, {"$ref": f"#/components/responses/E{status}"})
    # Anything else (405, 408, 411, 415, 431 ...) is still the error shape.
    answers["default"] = {"$ref": "#/components/responses/Error"}
    operation: dict[str, Any] = {"summary": summary, "responses": answers}
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = body
    if public:
        operation["security"] = []
    return operation


def _body(schema: dict[str, Any], *, required: bool = True, text: bool = False):
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if text:
        content["text/plain"] = {"schema": _STRING}
    return {"required": required, "content": content}


_NO_CONTENT = {"description": "Done; no body."}


def _image_paths() -> dict[str, Any]:
    one = "/sourceimages/{org}/{ref}"
    created = _json(_ref("SourceImage"), "The image under its new hash (Location header).")
    same = {"description": "Nothing changed."}
    hash_change = [
        _param("deletePrevious", "query", _BOOL_QUERY, "Delete the image under the old hash."),
        _param("keepHash", "query", _BOOL_QUERY, "Keep the hash (answers 200 + Warning)."),
    ]
    form = {
        "type": "object",
        "properties": {
            "filedata": {"type": "string", "contentMediaType": "application/octet-stream"},
            "url[0]": {"type": "string", "description": "Fetch the image from this URL."},
            "meta_user[0]": {"type": "string", "description": "User metadata, JSON."},
            "meta_dynamic[0]": {"type": "string", "description": "Dynamic metadata, JSON."},
            "options[0]": {"type": "string", "description": "{\"protected\": true}, JSON."},
        },
    }
    return {
        "/sourceimages/{org}": {
            "post": _op(
                "Upload images (multipart files or url[N]); existing bytes answer the "
                "existing image.",
                [_ORG],
                {"200": _json(_ref("UploadResult"), "The images.")},
                body={"required": True, "content": {"multipart/form-data": {"schema": form}}},
                errors=("400", "403", "404", "413", "422", "503", "507"),
            ),
            "get": _op(
                "List and search images (docs/search.md); more filter fields exist than "
                "listed here (user:, dynamic:, static: ...).",
                [
                    _ORG,
                    _param("limit", "query", {"type": "integer", "minimum": 0, "maximum": 2000}),
                    _param("offset", "query", _STRING, "A number or a cursor."),
                    _param("sort", "query", _STRING, "field [asc|desc], comma separated."),
                    _param("deleted", "query", _BOOL_QUERY, "Only deleted, restorable images."),
                    _param("binaryHash", "query", {"type": "string", "pattern": "^[0-9a-f]{40}$"}),
                    _param("facets", "query", _STRING),
                ],
                {"200": _json(_ref("SourceImageList"), "A page of images.")},
            ),
            "delete": _op(
                "Delete every image with these bytes.",
                [
                    _ORG,
                    _param(
                        "binaryHash", "query", {"type": "string", "pattern": "^[0-9a-f]{40}$"},
                        required=True,
                    ),
                ],  # fmt: skip
                {"204": _NO_CONTENT},
            ),
        },
        "/sourceimages/{org}/binaryhash/{binary_hash}": {
            "get": _op(
                "Images with these bytes.",
                [_ORG, _param("binary_hash", "path", _STRING, "SHA-1 of the bytes, 40 hex.")],
                {"200": _json(_ref("SourceImageList"), "The images.")},
            )
        },
        "/sourceimages/{org}/copy": {
            "post": _op(
                "Copy up to 100 images to the Destination organization.",
                [_ORG, *_DESTINATION],
                {"200": _json(_ref("CopyResult"), "What was copied.")},
                body=_body({"type": "array", "items": _STRING, "maxItems": 100}),
            )
        },
        one: {
            "get": _op(
                "One image.",
                [_ORG, _HASHREF, _param("deleted", "query", _BOOL_QUERY, "Find deleted too.")],
                {"200": _json(_ref("SourceImage"), "The image.")},
            ),
            "delete": _op(
                "Delete the image (restorable for restore_days).",
                [_ORG, _HASHREF],
                {"204": _NO_CONTENT},
                errors=("400", "403", "404", "409", "503", "507"),
            ),
        },
        one + "/cache": {
            "delete": _op(
                "Forget the image's cached renders; lists the render paths purged.",
                [_ORG, _HASHREF],
                {"200": _json(_ref("CachePurge"), "Purged.")},
            )
        },
        one + "/restore": {
            "post": _op(
                "Undo a delete within the restore window.",
                [_ORG, _HASHREF],
                {"200": _json(_ref("SourceImage"), "The image, with deleted: false.")},
            )
        },
        one + "/download": {
            "get": _op(
                "The original bytes (Content-Disposition: attachment).",
                [_ORG, _HASHREF],
                {
                    "200": {
                        "description": "The original, with its own media type.",
                        "content": {"*/*": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        one + "/name": {
            "put": _op(
                "Rename the image; the body is a JSON string or plain text.",
                [_ORG, _HASHREF],
                {"204": _NO_CONTENT},
                body=_body({"type": "string", "minLength": 1}, text=True),
            )
        },
        one + "/options/locked": {
            "put": _op(
                "Lock (true) or unlock (false) the image.",
                [_ORG, _HASHREF],
                {"200": _json(_ref("SourceImage"), "The image.")},
                body=_body(_BOOLEAN_TEXT, text=True),
            )
        },
        one + "/options/protected": {
            "put": _op(
                "Protect (true) or unprotect (false) the image: a new hash.",
                [_ORG, _HASHREF, hash_change[0]],
                {"201": created, "204": same},
                body=_body(_BOOLEAN_TEXT, text=True),
            )
        },
        one + "/copy": {
            "post": _op(
                "Copy the image to the Destination organization (also as COPY).",
                [_ORG, _HASHREF, *_DESTINATION],
                {"201": _json(_ANY_OBJECT, "Copied."), "204": {"description": "Overwritten."}},
                errors=("400", "403", "404", "412", "503", "507"),
            )
        },
        one + "/meta/dynamic/{name}": {
            "put": _op(
                "Set dynamic metadata (subject_area, crop_area, version, detection_face).",
                [_ORG, _HASHREF, _param("name", "path", _STRING), *hash_change],
                {"200": _json(_ref("SourceImage"), "keepHash: same hash."), "201": created,
                 "204": same},
                body=_body(_ANY_OBJECT),
            ),
            "delete": _op(
                "Remove dynamic metadata.",
                [_ORG, _HASHREF, _param("name", "path", _STRING), *hash_change],
                {"200": _json(_ref("SourceImage"), "keepHash: same hash."), "201": created,
                 "204": same},
                body=_body(_ANY_OBJECT, required=False),
            ),
        },
        one + "/meta/user": {
            "get": _op(
                "The user metadata.",
                [_ORG, _HASHREF],
                {"200": _json(_ANY_OBJECT, "Fields with their type prefix.")},
            ),
            "put": _op(
                "Replace the user metadata.",
                [_ORG, _HASHREF],
                {"204": _NO_CONTENT},
                body=_body(_ANY_OBJECT),
                errors=("400", "403", "404", "409", "503", "507"),
            ),
            "patch": _op(
                "Add or replace fields; null removes one.",
                [_ORG, _HASHREF],
                {"204": _NO_CONTENT},
                body=_body(_ANY_OBJECT),
                errors=("400", "403", "404", "409", "503", "507"),
            ),
            "delete": _op(
                "Remove every user metadata field.",
                [_ORG, _HASHREF],
                {"204": _NO_CONTENT},
                errors=("400", "403", "404", "409", "503", "507"),
            ),
        },
        one + "/meta/user/{field}": {
            "get": _op(
                "One field's value.",
                [_ORG, _HASHREF, _param("field", "path", _STRING)],
                {"200": _json({}, "The value.")},
            ),
            "put": _op(
                "Set one field (JSON, or plain text for a string).",
                [_ORG, _HASHREF, _param("field", "path", _STRING)],
                {"204": _NO_CONTENT},
                body=_body({}, text=True),
                errors=("400", "403", "404", "409", "503", "507"),
            ),
            "delete": _op(
                "Remove one field.",
                [_ORG, _HASHREF, _param("field", "path", _STRING)],
                {"204": _NO_CONTENT},
                errors=("400", "403", "404", "409", "503", "507"),
            ),
        },
    }


def _account_paths() -> dict[str, Any]:
    org = "/organizations/{name}"
    members = "/organizations/{org}/memberships"
    user_id = _param("user_id", "path", _STRING)
    return {
        "/users": {
            "post": _op(
                "Sign up: a user, its key and optionally a new organization (only when "
                "signup is on; else 403).",
                [],
                {"200": _json(_ref("NewUser"), "The user and its only copy of the key.")},
                body=_body(
                    _obj(
                        ["email"],
                        email={"type": "string", "format": "email"},
                        organization=_STRING,
                    )
                ),
                public=True,
                errors=("400", "403", "409", "503", "507"),
            )
        },
        "/user": {"get": _op("The caller.", [], {"200": _json(_ref("User"), "The user.")})},
        "/user/apikeys": {
            "get": _op(
                "The caller's keys (never their secrets).",
                [],
                {"200": _json({"type": "array", "items": _ref("ApiKey")}, "The keys.")},
            ),
            "post": _op(
                "A new key for the caller.",
                [],
                {"200": _json(_ref("NewApiKey"), "The key with its only copy of the secret.")},
                body=_body(_obj([], comment={"type": "string", "maxLength": 255}), required=False),
                errors=("400", "403", "409", "503", "507"),
            ),
        },
        "/user/apikeys/token": {
            method: _op(
                "A JWT for the caller (send it as Authorization: Bearer); with a renewable "
                "token instead of a key, a renewed one.",
                [
                    _param("expires_in", "query", _STRING, "Seconds the token is valid."),
                    _param("renewable", "query", _BOOL_QUERY),
                    _param("no_ip_protection", "query", _BOOL_QUERY),
                    _param("ips", "query", _STRING, "Comma-separated addresses or networks."),
                ],
                {"200": _json(_ref("Token"), "The token and its decoded payload.")},
                errors=("400", "401", "403", "404", "503"),
            )
            for method in ("get", "post")
        },
        "/user/apikeys/current": {
            "get": _op("The key of this request.", [], {"200": _json(_ref("ApiKey"), "It.")})
        },
        "/user/apikeys/{key_id}": {
            "delete": _op(
                "Delete one of the caller's other keys.",
                [_param("key_id", "path", _STRING)],
                {"204": _NO_CONTENT},
                errors=("403", "404", "409", "503", "507"),
            )
        },
        org: {
            "put": _op(
                "Create an organization with the caller as admin.",
                [_NAME_ORG],
                {"200": _json(_ref("Organization"), "The organization.")},
                body=_body(
                    _obj(
                        [],
                        billing_email={"type": "string", "format": "email"},
                        display_name={"type": "string", "maxLength": 255},
                        master_organization=_STRING,
                    ),
                    required=False,
                ),
                errors=("400", "403", "409", "503", "507"),
            ),
            "get": _op(
                "The organization.", [_NAME_ORG], {"200": _json(_ref("Organization"), "It.")}
            ),
        },
        org + "/options": {
            "put": _op(
                "Set several organization options (null unsets).",
                [_NAME_ORG],
                {"200": _json(_ref("Organization"), "The organization.")},
                body=_body(_ANY_OBJECT),
            )
        },
        org + "/options/{option}": {
            "put": _op(
                "Set one organization option (JSON value, or plain text).",
                [_NAME_ORG, _param("option", "path", _STRING)],
                {"200": _json(_ref("Organization"), "The organization.")},
                body=_body({}, text=True),
            )
        },
        org + "/signing_keys": {
            "get": _op(
                "The signing keys, newest first.",
                [_NAME_ORG],
                {"200": _json(_ref("SigningKeys"), "The keys.")},
            ),
            "post": _op(
                "Add a new signing key in front.",
                [_NAME_ORG],
                {"201": _json(_ref("SigningKeys"), "The keys.")},
            ),
            "delete": _op(
                "Remove all but the newest keep keys.",
                [_NAME_ORG, _param("keep", "query", {"type": "integer", "minimum": 1,
                                                     "maximum": 100})],
                {"200": _json(_ref("SigningKeys"), "The keys left.")},
            ),
        },
        members: {
            "get": _op(
                "Every membership (admin only).",
                [_ORG],
                {"200": _json(_ref("MembershipList"), "The memberships.")},
            ),
            "post": _op(
                "A new user with a key and these roles.",
                [_ORG],
                {"201": _json(_ref("Membership"), "The membership, with api_key.")},
                body=_body(_ref("MembershipInput")),
            ),
        },
        members + "/{user_id}": {
            "get": _op(
                "One membership.", [_ORG, user_id], {"200": _json(_ref("Membership"), "It.")}
            ),
            "put": _op(
                "Create, update or confirm a membership.",
                [_ORG, user_id],
                {
                    "200": _json(_ref("Membership"), "Updated."),
                    "201": _json(_ref("Membership"), "Created."),
                    "204": {"description": "Unchanged."},
                },
                body=_body(_ref("MembershipInput")),
                errors=("400", "403", "404", "409", "503", "507"),
            ),
            "delete": _op(
                "Remove a membership.",
                [_ORG, user_id],
                {"204": _NO_CONTENT},
                errors=("403", "404", "409", "503", "507"),
            ),
        },
    }


def _other_paths() -> dict[str, Any]:
    stack = "/stacks/{org}/{name}"
    return {
        "/": {
            "get": _op(
                "The API's resources (checks a key).",
                [],
                {"200": _json(_ref("ApiRoot"), "The resources.")},
                errors=("403", "503"),
            )
        },
        "/operations": {
            "get": _op(
                "Every operation with its parameters.",
                [],
                {"200": _json(_ANY_OBJECT, "By operation name.")},
                public=True,
                errors=(),
            )
        },
        "/stackoptions": {
            "get": _op(
                "Every stack option with type, default and range.",
                [],
                {"200": _json(_obj(["properties"], properties=_ANY_OBJECT), "The options.")},
                public=True,
                errors=(),
            )
        },
        "/healthz": {
            "get": _op(
                "Health: catalog readable, data directory writable and not nearly full.",
                [],
                {"200": _json(_ref("Status"), "Healthy.")},
                public=True,
                errors=("503",),
            )
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format); 404 when turned off.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Text exposition format 0.0.4.",
                        "content": {"text/plain": {"schema": _STRING}},
                    },
                    "404": {"$ref": "#/components/responses/E404"},
                    "default": {"$ref": "#/components/responses/Error"},
                },
            }
        },
        "/openapi.json": {
            "get": _op(
                "This document.", [], {"200": _json(_ANY_OBJECT, "OpenAPI 3.1.")},
                public=True, errors=(),
            )  # fmt: skip
        },
        "/stacks/{org}": {
            "get": _op(
                "The organization's stacks, by name.",
                [
                    _ORG,
                    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    _param("offset", "query", {"type": "integer", "minimum": 0}),
                ],
                {"200": _json(_obj(["items"], items={"type": "array", "items": _ref("Stack")}),
                              "The stacks.")},
            )
        },
        stack: {
            "put": _op(
                "Create a stack (201), or replace it with ?overwrite=true (200).",
                [_ORG, _STACK, _param("overwrite", "query", _BOOL_QUERY)],
                {
                    "200": _json(_ref("Stack"), "Replaced."),
                    "201": _json(_ref("Stack"), "Created."),
                },
                body=_body(_ref("StackInput")),
                errors=("400", "403", "404", "409", "503", "507"),
            ),
            "get": _op("One stack.", [_ORG, _STACK], {"200": _json(_ref("Stack"), "It.")}),
            "delete": _op(
                "Delete a stack.",
                [_ORG, _STACK],
                {"204": _NO_CONTENT},
                errors=("400", "403", "404", "409", "503", "507"),
            ),
        },
        stack + "/cache": {
            "delete": _op(
                "Forget the stack's cached renders (* for every stack).",
                [_ORG, _STACK],
                {"200": _json(_ref("Status"), "Purged.")},
            )
        },
        "/utils/{org}/sign_url": {
            "post": _op(
                "Sign a render URL with the organization's signing key.",
                [_ORG],
                {"200": _json(_ref("SignedUrl"), "The signed URL.")},
                body=_body(
                    _obj(
                        ["url"],
                        url=_STRING,
                        until=_STRING,
                        round_date_up_to={"type": "integer", "minimum": 0},
                        key=_STRING,
                    ),
                    required=False,
                ),
            )
        },
    }


def _alias_paths() -> dict[str, Any]:
    one = "/sourceimages/{org}/alias/{name}"
    name = _param("name", "path", _STRING, "Alias name ([A-Za-z0-9_], 1-100).")
    alias = _obj(
        ["organization", "alias", "hash", "created"],
        organization=_STRING,
        alias=_STRING,
        hash={"type": "string", "pattern": "^[0-9a-f]{40}$"},
        created=_STRING,
    )
    writes = ("400", "403", "404", "409", "503", "507")
    return {
        one: {
            "put": _op(
                "Create an alias (201), or repoint it with ?overwrite=true (200).",
                [_ORG, name, _param("overwrite", "query", _BOOL_QUERY)],
                {"200": _json(alias, "Repointed."), "201": _json(alias, "Created.")},
                body=_body(_obj(["hash"], hash=_STRING)),
                errors=writes,
            ),
            "get": _op("One alias and its hash.", [_ORG, name], {"200": _json(alias, "It.")}),
            "delete": _op("Delete an alias.", [_ORG, name], {"204": _NO_CONTENT}, errors=writes),
        },
        one + "/cache": {
            "delete": _op(
                "Forget the cached renders of the alias's image.",
                [_ORG, name],
                {"200": _json(_obj(["status", "items"], status=_STRING,
                                   items={"type": "array", "items": _STRING}), "Purged.")},
            )  # fmt: skip
        },
    }


def _usage_paths() -> dict[str, Any]:
    """``/stats/{org}`` and ``/billing/{org}`` (docs/stats.md)."""
    point = _obj(
        ["timestamp", "value", "unit"],
        timestamp=_STRING,
        value={"type": "integer", "minimum": 0},
        unit=_NULLABLE_STRING,
    )
    series = {"type": "array", "items": point}
    names = (
        "space_in_bytes", "number_of_files", "bytes_downloaded", "bytes_downloaded_external",
        "number_of_renders", "number_of_renders_from_cache",
    )  # fmt: skip
    stats = _obj(list(names), **{name: series for name in names})
    dates = [
        _param("from", "query", _STRING, "First day, YYYY-MM-DD (UTC)."),
        _param("to", "query", _STRING, "Last day, YYYY-MM-DD (UTC), included."),
    ]
    return {
        "/stats/{org}": {
            "get": _op(
                "Storage and render deliveries of the organization per day (default: the "
                "30 days before today, and today).",
                [_ORG, *dates],
                {"200": _json(stats, "rokka's stats series, newest day first.")},
                errors=("400", "401", "403", "503"),
            )
        },
        "/billing/{org}": {
            "get": _op(
                "Usage of the organization and its sub organizations per calendar month "
                "(the months of from..to, default this month), without prices.",
                [_ORG, *dates],
                {"200": _json(_ANY_OBJECT, "{org: {YYYY-MM: {from, to, organizations, "
                              "combined}}}.")},
                errors=("400", "401", "403", "503"),
            )
        },
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    error_responses = {
        f"E{status}": _json(_ref("Error"), text) for status, text in _ERROR_STATUSES.items()
    }
    error_responses["E412"] = _json(_ref("Error"), "Precondition failed (Overwrite: F).")
    error_responses["E422"] = _json(_ref("Error"), "Not an image this server takes.")
    error_responses["Error"] = _json(_ref("Error"), "Any other error, in the same shape.")
    paths = {
        **_other_paths(), **_account_paths(), **_image_paths(), **_usage_paths(),
        **_alias_paths(),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cropstack",
            "version": "1",
            "description": "The management API of cropstack, a self-hosted image service "
            "that speaks rokka's API. Authenticate with the Api-Key header (or a JWT from "
            "/user/apikeys/token as Authorization: Bearer). Every error "
            "is {\"error\": {\"code\", \"message\"}}. Render URLs are described in "
            "docs/render.md.",
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "Api-Key"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
            "schemas": _schemas(),
            "responses": error_responses,
        },
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": dict(sorted(paths.items())),
    }
