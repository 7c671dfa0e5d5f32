"""Routes for source images (docs/sourceimages.md lists each with its statuses).

Thin: parse the request, authorise, call ``webapp.ingest`` / the catalog, answer.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, request

from webapp import renderer
from webapp.app import blobs, catalog, render_cache, settings
from webapp.auth import Grant, authorise, require
from webapp.blobs.originals import read_original
from webapp.catalog.images import restore_cutoff
from webapp.catalog.records import Organization, SourceImage
from webapp.errors import ApiError, json_response, not_found
from webapp.httpworker import body_time_limit
from webapp.ingest import derive, ingest, keep_hash_update
from webapp.metadata import (
    DERIVED_NAMES,
    DETECTED_NAMES,
    DYNAMIC_NAMES,
    MetadataError,
    apply_user_patch,
    face_landmark_metadata,
    face_metadata,
    find_user_key,
    validate_dynamic,
)
from webapp.routes import ORIGINAL_CSP
from webapp.search import SearchError, encode_cursor, parse_search
from webapp.uploadform import read_uploads, safe_name
from webapp.views import image_object
from webapp.wire import json_body, json_or_text_body, parse_bool, query_bool

bp = Blueprint("sourceimages", __name__)

_REF = re.compile(r"[0-9a-f]{6,40}")
_BINARY_HASH = re.compile(r"[0-9a-f]{40}")
_ORG_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")
_MAX_BATCH_COPY = 100
_KEEP_HASH_WARNING = '299 - "keepHash: hash kept although dynamic metadata changed"'
BASE = "/sourceimages/<org>"
ONE = "/sourceimages/<org>/<ref>"


# -- helpers -------------------------------------------------------------------------------


def _cutoff() -> str:
    return restore_cutoff(settings().restore_days)


def _image(org: Organization, ref: str, *, deleted: bool = False) -> SourceImage:
    """The image ``ref`` (hash, short hash or unique prefix) names, else 404.

    Malformed references (not 6-40 lowercase hex) are 404 too, like unknown ones.
    """
    if not _REF.fullmatch(ref):
        raise not_found(f"Source image {ref[:64]} not found")
    image = catalog().images.find(org.id, ref, deleted_since=_cutoff() if deleted else None)
    if image is None:
        raise not_found(f"Source image {ref} not found")
    return image


def _answer(org: Organization, image: SourceImage, status: int = 200, **kw: Any) -> Response:
    return json_response(image_object(image, org.name, **kw), status)


def _created(org: Organization, image: SourceImage) -> Response:
    response = _answer(org, image, 201)
    response.headers["Location"] = f"/sourceimages/{org.name}/{image.hash}"
    return response


def _no_content() -> Response:
    return Response(status=204)


def _binary_hash_arg(*, lowercase_name: bool = True) -> str | None:
    value = request.args.get("binaryHash")
    if value is None and lowercase_name:
        value = request.args.get("binaryhash")
    if value is None:
        return None
    if not _BINARY_HASH.fullmatch(value):
        raise ApiError(400, "binaryHash must be 40 lowercase hex characters")
    return value


def _list(org: Organization, binary_hash: str | None) -> Response:
    """Search/list (docs/search.md): filters, sort, offset or cursor paging, facets."""
    try:
        search = parse_search(request.args.items(multi=True))
        result = catalog().image_search.search(
            search, org.id, restore_cutoff=_cutoff(), binary_hash=binary_hash
        )
    except SearchError as exc:
        raise ApiError(400, str(exc)) from exc
    kept = [(k, v) for k, v in request.args.items(multi=True) if k not in ("limit", "offset")]

    def href(offset: int | str) -> dict[str, str]:
        params = [*kept, ("limit", str(search.limit))]
        if offset:
            params.append(("offset", str(offset)))
        return {"href": f"{request.path}?{urlencode(params)}"}

    body: dict[str, Any] = {"total": result.total, "items": []}
    cursor = None
    if result.keys:
        cursor = encode_cursor(search.sort_signature(), result.keys[-1])
        body["cursor"] = cursor
    links: dict[str, Any] = {}
    if search.after is None and search.offset > 0 and search.limit > 0:
        links["prev"] = href(max(0, search.offset - search.limit))
    if result.more and search.limit > 0:
        # Cursor paging continues with a cursor; offset paging with the next offset.
        use_cursor = search.after is not None
        links["next"] = href(cursor if use_cursor else search.offset + search.limit)
    body["items"] = [image_object(r, org.name, with_deleted=search.deleted) for r in result.images]
    body["links"] = links
    if search.facets:
        body["facets"] = result.facets
    return json_response(body)


def _delete_previous(*, body: Any = None) -> bool:
    value = query_bool("deletePrevious")
    if isinstance(body, dict) and "deletePrevious" in body:
        # rokka.js sends {"deletePrevious":"true"} in the body of DELETE …/meta/dynamic.
        value = value or parse_bool(body["deletePrevious"], name="deletePrevious")
    return value


def _change_dynamic(
    org: Organization, image: SourceImage, new_dm: dict[str, Any], delete_previous: bool
) -> Response:
    if query_bool("keepHash"):
        if delete_previous:
            raise ApiError(400, "keepHash and deletePrevious cannot be combined")
        updated = keep_hash_update(catalog(), org.id, image, new_dm)
        if updated is None:
            return _no_content()
        response = _answer(org, updated)
        response.headers["Warning"] = (
            '299 - "keepHash: hash kept although dynamic metadata changed"'
        )
        return response
    result = derive(
        catalog(),
        org.id,
        image,
        dynamic_metadata=new_dm,
        protected=image.protected,
        delete_previous=delete_previous,
    )
    return _no_content() if result is None else _created(org, result)


# -- collection ----------------------------------------------------------------------------


def _upload_receipt(image: SourceImage, org_name: str, sent_name: str) -> dict[str, Any]:
    """What a caller who may upload but not read images learns about its upload.

    Only what the sent bytes and options determine (identity, format, size), the name
    this request gave and the ``protected``/``locked`` flags rokka's PHP client needs;
    never the organization's metadata, stored name or dates, since the image may be an
    existing one that belongs to others in the organization.
    """
    full = image_object(image, org_name)
    return {field: full[field] for field in _RECEIPT_FIELDS} | {"name": sent_name}


# The fields of the rokka source image object an upload-only caller gets (name: its own).
_RECEIPT_FIELDS = (
    "organization",
    "hash",
    "short_hash",
    "binary_hash",
    "mimetype",
    "format",
    "size",
    "width",
    "height",
    "link",
    "protected",
    "locked",
)


@bp.post(BASE)
def create(org: str) -> Response:
    """Upload one or more images (multipart files or url[N]); 200 ``{total, items}``.

    Without ``images:write`` an existing image is returned unchanged; without
    ``images:read`` the answer holds only ``_upload_receipt`` fields (docs/accounts.md).
    """
    grant = authorise(org, "images:upload")
    organization = grant.org
    with renderer.upload_slot(settings(), organization.id):
        with body_time_limit(request.environ):
            uploads = read_uploads(settings())
        rows = ingest(
            catalog(),
            blobs(),
            settings(),
            organization.id,
            uploads,
            may_change_existing=grant.allows("images:write"),
        )
    if grant.allows("images:read"):
        items = [image_object(r, organization.name) for r in rows]
    else:
        items = [
            _upload_receipt(r, organization.name, u.name)
            for r, u in zip(rows, uploads, strict=True)
        ]
    return json_response({"total": len(items), "items": items})


@bp.get(BASE)
def list_images(org: str) -> Response:
    """List images, newest first: ``limit`` 0..2000, ``offset``, ``binaryHash``, ``deleted``."""
    organization = require(org, "images:read")
    # Lowercase ``binaryhash`` is a search field (prefixes allowed); binaryHash is exact.
    return _list(organization, _binary_hash_arg(lowercase_name=False))


@bp.get(BASE + "/binaryhash/<binary_hash>")
def list_by_binary_hash(org: str, binary_hash: str) -> Response:
    """Images with these bytes (swagger route), as a list."""
    organization = require(org, "images:read")
    if not _BINARY_HASH.fullmatch(binary_hash):
        raise ApiError(400, "binary hash must be 40 lowercase hex characters")
    return _list(organization, binary_hash)


@bp.delete(BASE)
def delete_by_binary_hash(org: str) -> Response:
    """``?binaryHash=``: soft-delete every image with these bytes; 204, 404 if none."""
    organization = require(org, "images:write")
    binary_hash = _binary_hash_arg()
    if binary_hash is None:
        raise ApiError(400, "binaryHash is required")
    rows = catalog().images.live_by_binary_hash(organization.id, binary_hash)
    if not rows:
        raise not_found(f"No source image with binary hash {binary_hash}")
    catalog().images.soft_delete(organization.id, [r.hash for r in rows])
    return _no_content()


@bp.post(BASE + "/copy")
def copy_many(org: str) -> Response:
    """Copy up to 100 hashes (JSON array) to ``Destination``; created/existing/notfound.

    403 before anything is copied if one of them is protected and the caller may not
    download protected originals."""
    grant = authorise(org, "images:read")
    organization = grant.org
    destination, overwrite = _copy_target()
    hashes = json_body()
    if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
        raise ApiError(400, "Body must be a JSON array of hashes")
    if len(hashes) > _MAX_BATCH_COPY:
        raise ApiError(400, f"At most {_MAX_BATCH_COPY} hashes per request")
    found: list[tuple[str, SourceImage | None]] = []
    for ref in hashes:
        image = catalog().images.find(organization.id, ref) if _REF.fullmatch(ref) else None
        if image is not None:
            _check_original_access(grant, image, "copy")
        found.append((ref, image))
    result: dict[str, list[str]] = {"created": [], "existing": [], "notfound": []}
    for ref, image in found:
        if image is None:
            result["notfound"].append(ref)
            continue
        outcome = catalog().images.copy_to(image, destination.id, overwrite=overwrite)
        result["created" if outcome == "created" else "existing"].append(image.hash)
    return json_response(result)


# -- one image -----------------------------------------------------------------------------


@bp.get(ONE)
def get_image(org: str, ref: str) -> Response:
    """One image; ``?deleted=true`` also finds restorable deleted images (with ``deleted``)."""
    organization = require(org, "images:read")
    deleted = query_bool("deleted")
    image = _image(organization, ref, deleted=deleted)
    return _answer(organization, image, with_deleted=deleted)


@bp.delete(ONE)
def delete_image(org: str, ref: str) -> Response:
    """Soft-delete (restorable for ``restore_days``); 204, 404, 409 if locked."""
    organization = require(org, "images:write")
    image = _image(organization, ref)
    catalog().images.soft_delete(organization.id, [image.hash])
    render_cache().purge_image(organization.id, image.hash)
    return _no_content()


@bp.delete(ONE + "/cache")
def purge_image_cache(org: str, ref: str) -> Response:
    """Forget every cached render of the image, through any stack, on every node: 200
    with ``status`` and ``items``, the render paths (``/{org}/{stack}/{hash}.{ext}``) that
    were cached on the node answering, as rokka lists the paths it invalidates."""
    organization = require(org, "images:write")
    image = _image(organization, ref)
    catalog().purges.purge_image(organization.id, image.hash)  # every node's copies
    purged = render_cache().purge_image(organization.id, image.hash)
    items = [f"/{org}/{stack}/{image.hash}.{ext}" for stack, ext in purged]
    return json_response({"status": "ok", "items": items})


@bp.post(ONE + "/restore")
def restore_image(org: str, ref: str) -> Response:
    """Undo a delete within the restore window; 200 + image with ``deleted: false``."""
    organization = require(org, "images:write")
    image = _image(organization, ref, deleted=True)
    if image.deleted_at is not None:
        image = catalog().images.restore(organization.id, image.hash)
    return _answer(organization, image, with_deleted=True)


def _check_original_access(grant: Grant, image: SourceImage, action: str) -> None:
    """403 unless the caller may have the original of ``image`` (``action`` names what
    was attempted): protected originals need ``images:download:protected``."""
    if image.protected and not grant.allows("images:download:protected"):
        raise ApiError(
            403,
            f"Not allowed to {action} the original of protected image {image['hash']}: "
            "needs the admin or sourceimages:download:protected role",
        )


@bp.get(ONE + "/download")
def download(org: str, ref: str) -> Response:
    """The original bytes with their content type and a safe Content-Disposition; 403 for
    a protected image unless the caller may download protected originals."""
    grant = authorise(org, "images:download")
    organization = grant.org
    image = _image(organization, ref)
    _check_original_access(grant, image, "download")
    data = read_original(blobs(), image)
    name = safe_name(image.name)
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "download"
    response = Response(data, status=200)
    response.headers["Content-Type"] = image.mimetype
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
    )
    # Originals may be SVG: never let a browser run them in the API's origin.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = ORIGINAL_CSP
    return response


@bp.put(ONE + "/name")
def rename(org: str, ref: str) -> Response:
    """Body: a JSON string or bare text; 204."""
    organization = require(org, "images:write")
    image = _image(organization, ref)
    value = json_or_text_body()
    if not isinstance(value, str) or not safe_name(value, ""):
        raise ApiError(400, "name must be a non-empty string")
    catalog().images.update(organization.id, image.hash, name=safe_name(value))
    return _no_content()


@bp.put(ONE + "/options/locked")
def set_locked(org: str, ref: str) -> Response:
    """Body ``true``/``false``; 200 + image. Unlocking needs admin or sourceimages:unlock."""
    value = parse_bool(json_or_text_body(), name="locked")
    if value:
        try:
            organization = require(org, "images:write")
        except ApiError:
            organization = require(org, "images:unlock")
    else:
        organization = require(org, "images:unlock")
    image = _image(organization, ref)
    if image.locked != value:
        image = catalog().images.update(organization.id, image.hash, locked=value)
    return _answer(organization, image)


@bp.put(ONE + "/options/protected")
def set_protected(org: str, ref: str) -> Response:
    """Body ``true``/``false``: the image under its new hash (201 + Location), 204 if same.

    Unprotecting publishes the original (unsigned renders), so it needs what downloading
    a protected original needs."""
    grant = authorise(org, "images:write")
    organization = grant.org
    value = parse_bool(json_or_text_body(), name="protected")
    image = _image(organization, ref)
    if not value:
        _check_original_access(grant, image, "unprotect")
    result = derive(
        catalog(),
        organization.id,
        image,
        dynamic_metadata=image.dynamic_metadata,
        protected=value,
        delete_previous=_delete_previous(),
    )
    return _no_content() if result is None else _created(organization, result)


@bp.route(ONE, methods=["COPY"])
@bp.post(ONE + "/copy")
def copy_one(org: str, ref: str) -> Response:
    """Copy to ``Destination``: 201 new, 204 overwritten, 412 exists with ``Overwrite: F``;
    403 for a protected image unless the caller may download protected originals."""
    grant = authorise(org, "images:read")
    organization = grant.org
    destination, overwrite = _copy_target()
    image = _image(organization, ref)
    _check_original_access(grant, image, "copy")
    outcome = catalog().images.copy_to(image, destination.id, overwrite=overwrite)
    if outcome == "exists":
        raise ApiError(412, "Source image exists in the destination and Overwrite is F")
    if outcome == "overwritten":
        return _no_content()
    return json_response({}, 201)


def _copy_target() -> tuple[Organization, bool]:
    """(destination organization, overwrite?) from the COPY headers; 400/403."""
    name = request.headers.get("Destination", "").strip()
    if not _ORG_NAME.fullmatch(name):
        raise ApiError(400, "Destination header must name an organization")
    overwrite_header = request.headers.get("Overwrite", "T").strip().upper()
    if overwrite_header not in ("T", "F"):
        raise ApiError(400, "Overwrite header must be T or F")
    if catalog().accounts.org_by_name(name) is None:
        raise ApiError(400, f"Destination organization {name} does not exist")
    destination = require(name, "images:write")
    return destination, overwrite_header == "T"


# -- dynamic metadata ----------------------------------------------------------------------


@bp.put(ONE + "/meta/dynamic/<name>")
def put_dynamic(org: str, ref: str, name: str) -> Response:
    """Set dynamic metadata ``name``: 201 + image under its new hash + Location; 204 if same."""
    organization = require(org, "images:write")
    image = _image(organization, ref)
    if name in DETECTED_NAMES:
        values = _detected(name, image)
    else:
        try:
            values = {name: validate_dynamic(name, json_body())}
        except MetadataError as exc:
            raise ApiError(400, str(exc)) from exc
    new_dm = {**image.dynamic_metadata, **values}
    return _change_dynamic(organization, image, new_dm, _delete_previous())


def _detected(name: str, image: SourceImage) -> dict[str, Any]:
    """The values of computed dynamic metadata ``name`` (``detection_face``) for ``image``
    and of what it derives (``detection_eyemouth``: the eye and mouth landmarks).

    The body must be empty, ``{}`` or ``null`` (rokka's example sends ``{}``); the detector
    runs in a render process under the render budgets (webapp.renderer.detect_faces).
    """
    body = json_body(allow_empty=True, max_bytes=1024)
    if body not in (None, {}):
        raise ApiError(400, f"{name} takes no value: send an empty body or {{}}")
    faces = renderer.detect_faces(
        settings(), image, read_source=lambda: read_original(blobs(), image)
    )
    return {name: face_metadata(faces), "detection_eyemouth": face_landmark_metadata(faces)}


@bp.delete(ONE + "/meta/dynamic/<name>")
def delete_dynamic(org: str, ref: str, name: str) -> Response:
    """Remove dynamic metadata ``name``: 201 + image + Location; 204 if it was not set."""
    organization = require(org, "images:write")
    body = json_body(allow_empty=True)
    image = _image(organization, ref)
    if name not in DYNAMIC_NAMES:
        raise ApiError(400, f"Unknown dynamic metadata {name[:100]!r}")
    # What a detection derived goes with it.
    gone = {name} | {k for k, source in DERIVED_NAMES.items() if source == name}
    new_dm = {k: v for k, v in image.dynamic_metadata.items() if k not in gone}
    return _change_dynamic(organization, image, new_dm, _delete_previous(body=body))


# -- user metadata -------------------------------------------------------------------------
# Field names are the identity of a field: the type prefix decides how the value is
# validated and indexed (docs/search.md). User metadata never changes the hash.


def _user_error(exc: MetadataError) -> ApiError:
    return ApiError(400, str(exc))


def _set_user_metadata(org: Organization, image: SourceImage, metadata: dict[str, Any]) -> Response:
    """Store ``metadata`` (computed from ``image``, read in the same unit of work, so a
    concurrent change is never lost); 409 if the image is locked."""
    if metadata != image.user_metadata:
        catalog().images.update(org.id, image.hash, unless_locked=True, user_metadata=metadata)
    return _no_content()


@bp.get(ONE + "/meta/user")
def get_user_metadata(org: str, ref: str) -> Response:
    """The user metadata object (non-string keys with their type prefix)."""
    organization = require(org, "images:read")
    return json_response(_image(organization, ref).user_metadata)


@bp.route(ONE + "/meta/user", methods=["PUT", "PATCH"])
def write_user_metadata(org: str, ref: str) -> Response:
    """PUT replaces all fields; PATCH adds/replaces, ``null`` deletes; 204, 400 naming
    the field, 409 if locked."""
    organization = require(org, "images:write")
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "User metadata must be a JSON object")
    with catalog().unit_of_work():
        image = _image(organization, ref)
        current = {} if request.method == "PUT" else image.user_metadata
        try:
            metadata = apply_user_patch(current, body)
        except MetadataError as exc:
            raise _user_error(exc) from exc
        return _set_user_metadata(organization, image, metadata)


@bp.delete(ONE + "/meta/user")
def delete_user_metadata(org: str, ref: str) -> Response:
    """Remove every user metadata field; 204, 409 if locked."""
    organization = require(org, "images:write")
    with catalog().unit_of_work():
        return _set_user_metadata(organization, _image(organization, ref), {})


def _stored_key(metadata: dict[str, Any], field: str) -> str:
    try:
        key = find_user_key(metadata, field)
    except MetadataError as exc:
        raise _user_error(exc) from exc
    if key is None:
        raise not_found(f"User metadata field {field[:100]} not found")
    return key


@bp.get(ONE + "/meta/user/<field>")
def get_user_field(org: str, ref: str, field: str) -> Response:
    """One user metadata value (``x`` or ``int:x``); 404 if the field is not set."""
    organization = require(org, "images:read")
    metadata = _image(organization, ref).user_metadata
    return json_response(metadata[_stored_key(metadata, field)])


@bp.put(ONE + "/meta/user/<field>")
def put_user_field(org: str, ref: str, field: str) -> Response:
    """Set one field; the body is JSON or bare text (rokka.js); 204, 400, 409 if locked."""
    organization = require(org, "images:write")
    value = json_or_text_body()
    if value is None:
        raise ApiError(400, f"user metadata field {field[:100]}: value must not be null")
    with catalog().unit_of_work():
        image = _image(organization, ref)
        try:
            metadata = apply_user_patch(image.user_metadata, {field: value})
        except MetadataError as exc:
            raise _user_error(exc) from exc
        return _set_user_metadata(organization, image, metadata)


@bp.delete(ONE + "/meta/user/<field>")
def delete_user_field(org: str, ref: str, field: str) -> Response:
    """Remove one field; 204, 404 if it is not set, 409 if locked."""
    organization = require(org, "images:write")
    with catalog().unit_of_work():
        image = _image(organization, ref)
        key = _stored_key(image.user_metadata, field)
        metadata = {k: v for k, v in image.user_metadata.items() if k != key}
        return _set_user_metadata(organization, image, metadata)
