"""Service routes without authentication: health, operation and option listings."""

from __future__ import annotations

import errno
import logging
import os
import secrets
from pathlib import Path

from flask import Blueprint, Response

from stacks.operations import describe_operations
from stacks.options import describe_stack_options
from webapp.blobs import StorageFull, StoreReadOnly, StoreUnavailable
from webapp.errors import error_response, json_response, storage_fault

bp = Blueprint("service", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> Response:
    """200 ``{"status": "ok"}`` when the catalog answers, the data directory takes
    writes and the blob store answers; else 503 in the error shape with ``reason``
    ``catalog_unavailable``, ``read_only``, ``disk_full``, ``blob_store_unavailable``,
    ``blob_store_read_only`` or ``blob_store_full`` (renders may still be served: see
    docs/operations.md).
    """
    from webapp.app import blobs, catalog, settings

    try:
        catalog().ping()
    except Exception as exc:  # any failure to read the catalog is the answer
        log.error("healthz: catalog unavailable: %s", exc)
        return _unhealthy("catalog_unavailable", "Catalog unavailable")
    data_dir = Path(settings().data_dir)
    problem = _write_probe(data_dir / "tmp")
    if problem is not None:
        return problem
    try:
        stat = os.statvfs(data_dir)
    except OSError:
        return _unhealthy("catalog_unavailable", "Data directory unavailable")
    free = stat.f_bavail * stat.f_frsize
    if free < settings().health_min_free_bytes:
        return _unhealthy(
            "disk_full",
            f"Data directory is nearly full ({free} bytes free, "
            f"{settings().health_min_free_bytes} needed)",
        )
    try:
        blobs().probe()
    except StorageFull as exc:
        log.error("healthz: %s", exc)
        return _unhealthy("blob_store_full", "Blob store is full")
    except StoreReadOnly as exc:
        log.error("healthz: %s", exc)
        return _unhealthy("blob_store_read_only", "Blob store is read-only")
    except StoreUnavailable as exc:
        log.error("healthz: %s", exc)
        return _unhealthy("blob_store_unavailable", "Blob store unavailable")
    return json_response({"status": "ok"})


def _write_probe(directory: Path) -> Response | None:
    """Create, write one block to and remove a file in ``directory``; an answer if that
    fails (a full disk may still create an empty file, so a block is written)."""
    probe = directory / f".healthz.{secrets.token_hex(6)}"
    try:
        try:
            with open(probe, "xb") as fh:
                fh.write(b"\0" * 4096)
                fh.flush()
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        fault = storage_fault(exc)
        if fault is not None and fault.status == 507:
            return _unhealthy("disk_full", "Data directory is full")
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return _unhealthy("read_only", "Data directory is read-only")
        log.error("healthz: data directory not writable: %s", exc)
        return _unhealthy("not_writable", f"Data directory is not writable ({exc.strerror})")
    return None


def _unhealthy(reason: str, message: str) -> Response:
    return error_response(503, message, reason=reason)


@bp.get("/operations")
def operations() -> Response:
    """Every implemented operation with its parameters (no auth, as rokka)."""
    return json_response(describe_operations())


@bp.get("/stackoptions")
def stackoptions() -> Response:
    """Every stack option with type, default and range (no auth, as rokka)."""
    return json_response(describe_stack_options())
