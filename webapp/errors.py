"""The one JSON error shape, and the exceptions that produce it.

Every error answer, everywhere, is ``{"error": {"code": N, "message": "..."}}`` with
``Content-Type: application/json``. Errors raised by ``stacks`` and ``engine`` carry a
``status`` attribute and a ``message``; they are mapped here so neither package needs Flask.

Storage faults are answered, not crashed (docs/operations.md, "Faults"): a full disk or
quota (``ENOSPC``, ``EDQUOT``, SQLite ``SQLITE_FULL``) is 507; a read-only data directory
(``EROFS``, ``EACCES``, ``EPERM``, SQLite ``SQLITE_READONLY``) and other storage I/O
errors are 503. Both are logged at ERROR, since an operator has to act. The blob store's
own errors (webapp/blobs) are mapped here too: ``StorageFull`` 507, ``StoreReadOnly`` and
``StoreUnavailable`` 503, the same answers on local disk and on S3.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from webapp.blobs import StorageFull, StoreReadOnly, StoreUnavailable
from webapp.catalog.errors import (
    CatalogBusy,
    CatalogError,
    CatalogFull,
    CatalogReadOnly,
    CatalogUnavailable,
    Conflict,
    InvalidReference,
    NotFound,
    Refused,
)
from webapp.metrics import STORAGE_ERRORS

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered to the client: HTTP ``status``, public ``message``.

    ``extra`` keys are merged into the ``error`` object (rokka adds
    ``invalid_authentication`` to auth failures); ``headers`` are sent as they are.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def not_found(message: str = "Not found") -> ApiError:
    """A 404 in the error shape."""
    return ApiError(404, message)


def bad_request(message: str) -> ApiError:
    """A 400 in the error shape."""
    return ApiError(400, message)


INSUFFICIENT_STORAGE = "Insufficient storage: the server cannot store this now, retry later"
READ_ONLY = "Storage is read-only: the server accepts no writes now, retry later"
STORAGE_ERROR = "Storage error: the server cannot store this now, retry later"
STORE_UNAVAILABLE = "Blob store unavailable: originals cannot be read or stored now, retry later"

# SQLite primary result codes (the low byte of an extended code).
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


def storage_fault(exc: BaseException) -> ApiError | None:
    """The answer to a storage exception (507 full, 503 read-only or I/O), else None.

    Counted in ``cropstack_storage_errors_total`` (webapp/metrics.py) when it is one.
    """
    answer = _storage_answer(exc)
    if answer is not None:
        part = "catalog" if isinstance(exc, sqlite3.Error) else "store"
        if answer.status == 507:
            kind = "full"
        else:
            kinds = {READ_ONLY: "read_only", STORE_UNAVAILABLE: "unavailable"}
            kind = kinds.get(answer.message, "io")
        STORAGE_ERRORS.labels(part, kind).inc()
    return answer


def _storage_answer(exc: BaseException) -> ApiError | None:
    if isinstance(exc, StorageFull):
        return ApiError(507, INSUFFICIENT_STORAGE)
    if isinstance(exc, StoreReadOnly):
        return ApiError(503, READ_ONLY)
    if isinstance(exc, StoreUnavailable):
        return ApiError(503, STORE_UNAVAILABLE)
    if isinstance(exc, sqlite3.OperationalError):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code == _SQLITE_FULL:
            return ApiError(507, INSUFFICIENT_STORAGE)
        if code == _SQLITE_READONLY:
            return ApiError(503, READ_ONLY)
        if code in (_SQLITE_IOERR, _SQLITE_CANTOPEN):
            return ApiError(503, STORAGE_ERROR)
        return None
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in _FULL_ERRNOS:
            return ApiError(507, INSUFFICIENT_STORAGE)
        if exc.errno in _READ_ONLY_ERRNOS:
            return ApiError(503, READ_ONLY)
        if exc.errno == errno.EIO:
            return ApiError(503, STORAGE_ERROR)
    return None


def catalog_answer(exc: CatalogError) -> ApiError:
    """The HTTP answer to a catalog domain error (the one place they meet HTTP)."""
    if isinstance(exc, NotFound):
        return ApiError(404, exc.message)
    if isinstance(exc, Conflict):
        return ApiError(409, exc.message)
    if isinstance(exc, (InvalidReference, Refused)):
        return ApiError(400, exc.message)
    if isinstance(exc, CatalogBusy):
        return ApiError(503, exc.message, headers={"Retry-After": "1"})
    if isinstance(exc, CatalogFull):
        return ApiError(507, INSUFFICIENT_STORAGE)
    if isinstance(exc, CatalogReadOnly):
        return ApiError(503, READ_ONLY)
    if isinstance(exc, CatalogUnavailable):
        return ApiError(503, exc.message, headers={"Retry-After": "5"})
    return ApiError(500, "Internal server error")


class OriginalUnavailable(ApiError):
    """503: an image's original cannot be served (missing or damaged in the blob store).

    Not a 4xx (the request is fine) and not a 404 (the image exists and a re-upload or a
    restore from back-up brings it back); ``no-store`` keeps caches from keeping it.
    """

    def __init__(self, image_hash: str) -> None:
        super().__init__(
            503,
            f"Original of image {image_hash} is unavailable",
            headers={"Cache-Control": "no-store"},
        )


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer with ``Content-Type: application/json`` exactly (rokka.js needs it)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    response = Response(body.encode("utf-8"), status=status, headers=headers)
    response.headers["Content-Type"] = "application/json"
    return response


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """The error shape as a response."""
    error: dict[str, Any] = {"code": status, "message": message}
    error.update(extra)
    payload: dict[str, Any] = {"error": error}
    if extra.get("invalid_authentication"):
        # rokka's documented 403 body is flat; clients read either, so send both.
        payload.update({"code": status, "message": message, "invalid_authentication": True})
    return json_response(payload, status, headers)


# ApiError subclasses that stand for a storage fault: (part, kind) of the metric. By name,
# since catalog and storage import this module.
#: Catalog faults counted in ``cropstack_storage_errors_total`` (part ``catalog``).
_CATALOG_FAULTS: dict[type, str] = {
    CatalogBusy: "busy",
    CatalogFull: "full",
    CatalogReadOnly: "read_only",
    CatalogUnavailable: "unavailable",
}
_FAULT_KINDS = {
    "CatalogBusy": ("catalog", "busy"),
    "OriginalUnavailable": ("store", "unavailable"),
}


def register_error_handlers(app: Flask) -> None:
    """Answer every exception with the JSON error shape; nothing escapes as HTML."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        # Faults met before they became ApiErrors (storage_fault counts its own).
        fault = _FAULT_KINDS.get(type(exc).__name__)
        if fault is not None:
            STORAGE_ERRORS.labels(*fault).inc()
        return error_response(exc.status, exc.message, exc.headers, **exc.extra)

    @app.errorhandler(CatalogError)
    def _catalog_error(exc: CatalogError) -> Response:
        answer = catalog_answer(exc)
        kind = _CATALOG_FAULTS.get(type(exc))
        if kind is not None:
            STORAGE_ERRORS.labels("catalog", kind).inc()
        if answer.status >= 500:
            detail = getattr(exc, "detail", "")
            log.error("catalog fault, answered %d: %s %s", answer.status, exc.message, detail)
        return error_response(answer.status, answer.message, answer.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {}
        if status == 405 and exc.get_response().headers.get("Allow"):
            headers["Allow"] = exc.get_response().headers["Allow"]
        message = exc.description or exc.name
        if status == 413:
            message = "Request body too large"
        return error_response(status, message, headers)

    @app.errorhandler(RecursionError)
    def _too_deep(exc: RecursionError) -> Response:
        return error_response(400, "Request body is nested too deeply")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        fault = storage_fault(exc)
        if fault is not None:
            log.error("storage fault, answered %d: %s", fault.status, exc)
            return error_response(fault.status, fault.message)
        status = getattr(exc, "status", None)
        message = getattr(exc, "message", None)
        if isinstance(status, int) and 400 <= status < 600 and isinstance(message, str):
            # StackError / EngineError and friends: public message by design.
            return error_response(status, message)
        log.exception("unhandled error")
        return error_response(500, "Internal server error")
