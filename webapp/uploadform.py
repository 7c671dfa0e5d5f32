"""Reading the multipart upload request of ``POST /sourceimages/{org}``.

File parts count under any field name (rokka clients use ``filedata``, ``filename`` or
``f``) and are numbered 0, 1, … in request order; ``url[N]`` parts are numbered by their
``N``. Metadata parts are ``meta_user[N]``, ``meta_dynamic[N]`` (whole object, rokka.js),
``meta_dynamic[N][name]`` (PHP, Go, docs), ``meta_static[N]`` and ``options[N]``; ``[]``
or no index means 0. Values are JSON; rokka.js double-encodes them, so a value that
decodes to a string is decoded once more. ``optimize_source`` (``true``/``png``/``jpg``)
asks for TIFF and PSD originals to be stored converted (engine/conversion.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import IO, Any

from flask import Request, current_app, request
from werkzeug.utils import cached_property
from werkzeug.wsgi import get_input_stream

import engine
from webapp.errors import ApiError
from webapp.httpworker import socket_body
from webapp.ingest import Upload
from webapp.metadata import (
    MetadataError,
    validate_dynamic,
    validate_dynamic_object,
    validate_user_metadata,
)
from webapp.remote import FetchLimits, fetch
from webapp.renderer import ensure_engine
from webapp.settings import Settings
from webapp.uploadspool import Spool
from webapp.wire import loads_strict

_FIELD = re.compile(
    r"(meta_user|meta_dynamic|meta_static|options|url)(?:\[(\d{0,4})\])?(?:\[([A-Za-z0-9_]+)\])?"
)
_MAX_FILES = 100


def safe_name(raw: str | None, default: str = "upload") -> str:
    """A display file name: no directories, no control characters, at most 255 chars."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:255] or default


def _decode(text: str, field: str) -> Any:
    try:
        value = loads_strict(text)
        if isinstance(value, str):
            value = loads_strict(value)  # rokka.js double-encodes multipart metadata
    except ValueError as exc:
        raise ApiError(400, f"{field} is not valid JSON") from exc
    return value


def _options(value: Any, field: str) -> bool:
    if not isinstance(value, dict):
        raise ApiError(400, f"{field} must be a JSON object")
    protected = value.get("protected", False)
    if type(protected) is not bool:
        raise ApiError(400, f"{field}.protected must be true or false")
    return protected


def read_uploads(
    settings: Settings, fetcher: Callable[[str, FetchLimits], tuple[bytes, str]] = fetch
) -> list[Upload]:
    """The uploads of this request, metadata validated (400) and URLs fetched.

    400 when the request holds neither a file nor a URL, or holds both.
    """
    per_index: dict[int, dict[str, Any]] = {}
    urls: dict[int, str] = {}
    blank_counts: dict[str, int] = {}
    for key, text in request.form.items(multi=True):
        match = _FIELD.fullmatch(key)
        if match is None:
            continue  # unknown fields are ignored, as rokka does
        kind, index_text, sub = match.groups()
        if index_text:
            index = int(index_text)
        elif index_text == "" and sub is None:
            index = blank_counts.get(kind, 0)  # "options[]" repeated: 0, 1, …
            blank_counts[kind] = index + 1
        else:
            index = 0
        if index >= _MAX_FILES:
            raise ApiError(400, f"{key}: at most {_MAX_FILES} images per request")
        entry = per_index.setdefault(index, {})
        try:
            if kind == "url":
                urls[index] = text.strip()
            elif kind == "meta_dynamic" and sub is not None:
                entry.setdefault("dynamic", {})[sub] = validate_dynamic(sub, _decode(text, key))
            elif kind == "meta_dynamic":
                entry.setdefault("dynamic", {}).update(validate_dynamic_object(_decode(text, key)))
            elif kind == "meta_user":
                entry["user"] = validate_user_metadata(_decode(text, key), key)
            elif kind == "meta_static":
                value = _decode(text, key)
                if not isinstance(value, dict):
                    raise ApiError(400, f"{key} must be a JSON object")
                entry["static"] = value
            elif kind == "options":
                entry["protected"] = _options(_decode(text, key), key)
        except MetadataError as exc:
            raise ApiError(400, f"{key}: {exc}") from exc

    optimise = _optimise_target(request.form.get("optimize_source"))
    files = [f for _, f in request.files.items(multi=True)]
    if files and urls:
        raise ApiError(400, "Send either files or url[N] fields, not both")
    if len(files) + len(urls) > _MAX_FILES:
        raise ApiError(400, f"At most {_MAX_FILES} images per request")
    sources: list[tuple[int, bytes, str]] = []
    spools: dict[int, Spool] = {}
    for index, storage in enumerate(files):
        spool = getattr(storage.stream, "spool", None)
        if spool is not None:
            spools[index] = spool  # stored by rename, never read into memory here
            sources.append((index, b"", safe_name(storage.filename)))
        else:
            sources.append((index, storage.read(), safe_name(storage.filename)))
    if urls:
        limits = FetchLimits(
            total_timeout=settings.remote_fetch_timeout,
            connect_timeout=settings.remote_fetch_connect_timeout,
            max_redirects=settings.remote_fetch_max_redirects,
            max_bytes=settings.max_upload_bytes,
            allow_private=settings.remote_fetch_allow_private,
        )
        for index in sorted(urls):
            data, name = fetcher(urls[index], limits)
            sources.append((index, data, safe_name(name, "remote")))
    if not sources:
        raise ApiError(400, "No image: send a file part (filedata) or url[0]")
    uploads = []
    for index, data, name in sources:
        entry = per_index.get(index, {})
        uploads.append(
            Upload(
                data=data,
                name=name,
                user_metadata=entry.get("user"),
                dynamic_metadata=entry.get("dynamic", {}),
                static_metadata=entry.get("static"),
                protected=entry.get("protected", False),
                optimise=optimise,
                spool=spools.get(index) if not urls else None,
            )
        )
    return uploads


def _optimise_target(value: str | None) -> str | None:
    """``optimize_source``: absent/``false`` → None; ``true``/``png`` → ``png``; ``jpg``."""
    text = (value or "").strip().lower()
    if text in ("", "false", "0"):
        return None
    if text in ("true", "1", "png"):
        return "png"
    if text in ("jpg", "jpeg"):
        return "jpg"
    raise ApiError(400, "optimize_source must be true, false, png or jpg")


# Bytes of a file part looked at before the rest is parsed: enough for every magic number
# libvips checks (SVG's "<svg" may follow an XML declaration and comments).
_SNIFF_BYTES = 4096
# A header-first format (JPEG, PNG, GIF, WebP) must have a readable header within this
# many bytes (engine.header_in_prefix).
_HEADER_BYTES = 16 * 1024 * 1024
_NOT_AN_IMAGE = "not an image, or an unsupported format"


def _recognised(prefix: bytes) -> bool:
    """An image format libvips loads, or a TTF/OTF font (uploaded for ``text``)."""
    return engine.recognised(prefix) or engine.font_format(prefix) is not None


class _SniffedFile:
    """The spool of one uploaded file part that refuses a non-image early.

    Parsing a 150 MB multipart body costs about a second of the web worker's CPU. A part
    whose first 4 KB no libvips loader recognises, or whose first 16 MB hold no readable
    header of a format that puts its header first, is answered 422 at once; the rest of
    the body is received and dropped, never parsed (``webapp.httpworker.finish_body``, as
    for any body an answer leaves unread).
    """

    def __init__(
        self, spool: IO[bytes] | Spool, fault: Callable[[OSError], Exception] | None = None
    ) -> None:
        self._spool = spool
        # The file in the blob store the bytes went to (None: werkzeug's own spool), and
        # the store's error for a failed write to it (a full disk is a 507, not a 500)
        self.spool = spool if isinstance(spool, Spool) else None
        self._fault = fault
        self._written = 0
        self._checks = [_SNIFF_BYTES, _HEADER_BYTES]

    def write(self, data: bytes) -> int:
        try:
            written = self._spool.write(data)
        except OSError as exc:
            if self._fault is None:
                raise
            raise self._fault(exc) from exc
        self._written += len(data)
        if self._checks and self._written >= self._checks[0]:
            limit = self._checks.pop(0)
            position = self._spool.tell()
            self._spool.seek(0)
            prefix = self._spool.read(limit)
            self._spool.seek(position)
            check = _recognised if limit == _SNIFF_BYTES else engine.header_in_prefix
            if not check(prefix):
                self._checks.clear()
                kind = engine.refused_kind(prefix)
                if kind is not None:
                    raise ApiError(415, f"{kind} files are not supported as source images")
                raise ApiError(422, _NOT_AN_IMAGE)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spool, name)


class UploadRequest(Request):
    """Flask's request, with file parts spooled through :class:`_SniffedFile`: into a
    ``Spool`` in the blob store's directory when the store has one (the file then becomes
    the blob, webapp/uploadspool.py), else where werkzeug puts them."""

    _spools: list[Spool]

    @cached_property
    def stream(self) -> IO[bytes]:
        """A multipart body is received straight from gunicorn's socket (webapp/httpworker.py
        ``SocketBody``), under werkzeug's length and size checks; any other body as usual."""
        fast = None
        if self.mimetype == "multipart/form-data" and not self.shallow:
            fast = socket_body(self.environ)
        if fast is None:
            return super().stream
        return get_input_stream(
            {**self.environ, "wsgi.input": fast}, max_content_length=self.max_content_length
        )

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        ensure_engine(current_app.extensions["cropstack.settings"])
        store = current_app.extensions["cropstack.blobs"]
        directory = getattr(store, "spool_directory", None)
        if directory is None:
            stream = super()._get_file_stream(
                total_content_length, content_type, filename, content_length
            )
            return _SniffedFile(stream)  # type: ignore[return-value]
        try:
            spool = Spool(directory)
        except OSError as exc:
            # A full or read-only disk: answered like the same fault of a blob write.
            raise store.fault(exc) from exc
        if not hasattr(self, "_spools"):
            self._spools = []
        self._spools.append(spool)  # removed in close(), also of a refused part
        return _SniffedFile(spool, store.fault)  # type: ignore[return-value]

    def close(self) -> None:
        """Close the file parts, and remove every spool this request made."""
        try:
            super().close()
        finally:
            for spool in getattr(self, "_spools", ()):
                spool.close()
