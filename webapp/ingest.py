"""Turning uploaded bytes into catalogued source images, and deriving new identities.

Order matters for durability: every file of a request is validated first (a bad one
fails the whole request and stores nothing), then each blob is written durably, and only
then do the catalog rows commit. (A file part received into a spool is written and
``fsync``-ed while it is validated, but appears under its blob key only once every check
has passed.) A crash at any point leaves at worst an orphan blob,
which ``cropstack gc`` removes after its grace period — never a row without its blob.

These functions take the catalog, blob store and settings explicitly (no Flask globals)
so the kill -9 durability test drives exactly the code path the upload route uses.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import wait
from dataclasses import dataclass, field
from typing import Any

from engine import converts
from webapp.blobs import BlobStore, StoredBlob
from webapp.catalog.errors import CatalogBusy, Conflict, ImageLocked
from webapp.catalog.images import restore_cutoff
from webapp.catalog.interface import CatalogHandle
from webapp.catalog.records import NewImage, SourceImage, new_image_from
from webapp.imageinfo import inspect, optimise
from webapp.metadata import apply_user_patch, identity_hash
from webapp.settings import Settings
from webapp.uploadspool import Spool, seal_in_background

#: Seconds an upload waits for a collection deleting one of its blobs (normally a few ms).
DELETION_WAIT_S = 30.0


@dataclass
class Upload:
    """One file of an upload request and the metadata sent with it.

    ``None`` metadata means "not given": re-uploads keep what the image already has.
    """

    data: bytes
    name: str
    user_metadata: dict[str, Any] | None = None
    dynamic_metadata: dict[str, Any] = field(default_factory=dict)
    static_metadata: dict[str, Any] | None = None
    protected: bool = False
    # ``optimize_source``: store TIFF/PSD converted to this format (``png``/``jpg``), or None
    optimise: str | None = None
    # The hash the caller chose (a remote image's, webapp/remoteimages.py), else None: the
    # identity of bytes + dynamic metadata + protection
    identity: str | None = None
    # The file the bytes were received into (webapp/uploadspool.py), hashed and stored by
    # rename; ``data`` is then empty
    spool: Spool | None = None


def ingest(
    catalog: CatalogHandle,
    blobs: BlobStore,
    settings: Settings,
    organization_id: str,
    uploads: list[Upload],
    *,
    may_change_existing: bool = True,
) -> list[SourceImage]:
    """Store ``uploads`` in the organization; their rows, in order.

    ``may_change_existing`` is False for callers who may upload but not write images
    (role ``upload``): an image the organization already has is then returned exactly as
    it is (no metadata merged), and a deleted one still restorable is a ``Conflict``
    rather than brought back, since deleting it was the decision of someone who may write.

    Raises a 422 ``ApiError`` (nothing stored) if any file is not a usable image, a storage
    fault if the disk is full, and ``ImageLocked`` if a re-upload would change a locked
    image's user metadata.
    """
    infos = _check_all(blobs, settings, uploads)
    # optimize_source: the stored file is the converted one, the identity stays the
    # original's (rokka: "the binary hash … is the one of the original image")
    binary_hashes = [
        upload.spool.sha1 if upload.spool else hashlib.sha1(upload.data).hexdigest()
        for upload in uploads
    ]
    # The bytes to store; None: the upload's spool as it is (stored by rename)
    contents: list[bytes | None] = [None if u.spool else u.data for u in uploads]
    for i, (upload, info) in enumerate(zip(uploads, infos, strict=True)):
        if upload.optimise is not None and converts(info, upload.optimise):
            data = upload.data if upload.spool is None else upload.spool.read_all()
            contents[i], infos[i] = optimise(data, info, upload.optimise, settings)

    def store_all() -> list[StoredBlob]:
        # A full or read-only disk raises here, before any row is written (nothing partial
        # is left under a key); webapp.errors answers it (507, 503) like every storage fault.
        return [
            blobs.put(data) if data is not None else _adopt(blobs, upload.spool)
            for upload, data in zip(uploads, contents, strict=True)
        ]

    stored = store_all()
    waited = 0.0
    while True:
        with catalog.unit_of_work():
            # ``cropstack gc`` (on any node) deleting one of these blobs right now would
            # take it from under the rows: commit nothing, write it again after the delete.
            deleting = catalog.blob_deletions.in_progress([blob.key for blob in stored])
            if not deleting:
                return _insert_rows(
                    catalog, organization_id, uploads, infos, stored, binary_hashes, settings,
                    may_change_existing=may_change_existing,
                )  # fmt: skip
        while deleting:
            if waited >= DELETION_WAIT_S:
                raise CatalogBusy()  # 503: the client retries, as for a busy catalog
            time.sleep(0.05)
            waited += 0.05
            deleting = catalog.blob_deletions.in_progress(deleting)
        stored = store_all()


def _check_all(blobs: BlobStore, settings: Settings, uploads: list[Upload]) -> list[Any]:
    """The ``ImageInfo`` of each upload, checked in order (the first refusal raises).

    Spooled uploads are hashed and made durable (``fsync``) on a helper thread meanwhile
    (webapp/uploadspool.py): the check decodes in a render process on one core while the
    hashing and the disk use the other. Both are done before this returns, also when a
    check refuses (then the refusal is raised, and nothing was stored under any key).
    """
    spools = [upload.spool for upload in uploads if upload.spool is not None]
    syncing = seal_in_background(spools) if spools else None
    try:
        infos = [
            inspect(upload.spool if upload.spool is not None else upload.data, settings)
            for upload in uploads
        ]
    except BaseException:
        if syncing is not None and not syncing.cancel():
            wait([syncing])  # its descriptors close with the request; the refusal stands
        raise
    if syncing is not None:
        try:
            syncing.result()
        except OSError as exc:
            raise _store_fault(blobs, exc) from exc
    return infos


def _store_fault(blobs: BlobStore, exc: OSError) -> Exception:
    fault = getattr(blobs, "fault", None)
    return fault(exc) if fault is not None else exc


def _adopt(blobs: BlobStore, spool: Spool | None) -> StoredBlob:
    """Store a checked, synced spool as its blob (a store with a ``spool_directory``)."""
    assert spool is not None
    return blobs.adopt(spool.path, StoredBlob(spool.sha256, spool.sha1, spool.size))  # type: ignore[attr-defined]


def _insert_rows(
    catalog: CatalogHandle,
    organization_id: str,
    uploads: list[Upload],
    infos: list[Any],
    stored: list[StoredBlob],
    binary_hashes: list[str],
    settings: Settings,
    *,
    may_change_existing: bool,
) -> list[SourceImage]:
    """The rows of ``uploads`` whose blobs are ``stored`` (inside the unit of work)."""
    rows: list[SourceImage] = []
    for upload, info, blob, binary_hash in zip(uploads, infos, stored, binary_hashes, strict=True):
        new = NewImage(
            hash=upload.identity
            or identity_hash(binary_hash, upload.dynamic_metadata, upload.protected),
            binary_hash=binary_hash,
            blob_key=blob.key,
            name=upload.name,
            format=info.format,
            mimetype=info.mimetype,
            size=blob.size,
            width=info.width,
            height=info.height,
            user_metadata=upload.user_metadata or {},
            dynamic_metadata=upload.dynamic_metadata,
            static_metadata=upload.static_metadata or {},
            opaque=info.opaque,
            animated=info.animated,
            protected=upload.protected,
        )
        row, created = catalog.images.insert(organization_id, new)
        if not created and may_change_existing:
            row = _reupload(catalog, organization_id, row, new, upload)
        elif not created:
            row = _existing_for_uploader(catalog, organization_id, row, new, settings)
        rows.append(row)
    return rows


def _reupload(
    catalog: CatalogHandle,
    organization_id: str,
    row: SourceImage,
    new: NewImage,
    upload: Upload,
) -> SourceImage:
    """Bytes (and dynamic metadata) the organization already has: merge what was given."""
    if row.deleted_at is not None:
        return catalog.images.revive(organization_id, new)
    changes: dict[str, Any] = {}
    if upload.user_metadata:
        # Already validated by the upload form; a name replaces that name under any type.
        merged = apply_user_patch(row.user_metadata, upload.user_metadata)
        if merged != row.user_metadata:
            if row.locked:
                raise ImageLocked()
            changes["user_metadata"] = merged
    if upload.static_metadata:
        changes["static_metadata"] = {**row.static_metadata, **upload.static_metadata}
    if not changes:
        return row
    return catalog.images.update(organization_id, row.hash, **changes)


def _existing_for_uploader(
    catalog: CatalogHandle,
    organization_id: str,
    row: SourceImage,
    new: NewImage,
    settings: Settings,
) -> SourceImage:
    """Bytes the organization already has, sent by a caller without write access."""
    if row.deleted_at is None:
        return row
    if row.deleted_at >= restore_cutoff(settings.restore_days):
        raise Conflict(
            f"Source image {row.hash} was deleted in this organization; "
            "a key with write access can restore it"
        )
    # Past the restore window the deleted image is gone for good (only `cropstack gc`
    # has not purged the row yet): the bytes are a new upload like any other.
    return catalog.images.revive(organization_id, new)


def derive(
    catalog: CatalogHandle,
    organization_id: str,
    row: SourceImage,
    *,
    dynamic_metadata: dict[str, Any],
    protected: bool,
    delete_previous: bool,
) -> SourceImage | None:
    """The image with the same bytes but other dynamic metadata or protection.

    Returns None when nothing changes. If an image with the new hash exists it is reused
    as it is (restored if it was deleted); otherwise a new row copies the old one's name,
    user and static metadata and ``created``. ``delete_previous`` soft-deletes the old
    image (``ImageLocked`` if it is locked). Remote URLs recorded as the old image render
    the new one from now on (its subject area, its protection), whether or not the old
    image is deleted.
    """
    new_hash = identity_hash(row.binary_hash, dynamic_metadata, protected)
    if new_hash == row.hash:
        return None
    with catalog.unit_of_work():
        if delete_previous and row.locked:
            raise ImageLocked()
        new = new_image_from(
            row, hash=new_hash, dynamic_metadata=dynamic_metadata, protected=protected
        )
        result, created = catalog.images.insert(organization_id, new, created=row.created)
        if not created and result.deleted_at is not None:
            result = catalog.images.restore(organization_id, new_hash)
        if delete_previous:
            catalog.images.soft_delete(organization_id, [row.hash])
        catalog.remote_images.repoint(organization_id, row.hash, result.hash)
    return result


def keep_hash_update(
    catalog: CatalogHandle, organization_id: str, row: SourceImage, dynamic_metadata: dict[str, Any]
) -> SourceImage | None:
    """``keepHash=true``: change the dynamic metadata in place; None if unchanged."""
    if dynamic_metadata == row.dynamic_metadata:
        return None
    return catalog.images.update(organization_id, row.hash, dynamic_metadata=dynamic_metadata)
