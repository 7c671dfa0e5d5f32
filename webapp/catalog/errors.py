"""The catalog's domain errors. Every backend raises these; only ``webapp.errors`` turns
them into HTTP answers (``catalog_answer``), so the catalog knows nothing of HTTP.
"""

from __future__ import annotations


class CatalogError(Exception):
    """Base of every catalog error; ``message`` is safe to show a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CatalogError):
    """The thing a write names does not exist (or may not be revealed to exist)."""


class Conflict(CatalogError):
    """The write conflicts with the current state (name taken, last admin, limits)."""


class ImageLocked(Conflict):
    """A locked image would be deleted or its user metadata changed."""

    def __init__(self) -> None:
        super().__init__("Source image is locked; unlock it first")


class InvalidReference(CatalogError):
    """The write refers to something that must exist and does not (a stack's
    ``basestack``); ``parameter`` names the field that holds the reference."""

    def __init__(self, message: str, *, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class Refused(CatalogError):
    """The write breaks a rule about the current state (e.g. protecting a stack by
    overwrite); the client's request, not the state, must change."""


class CatalogBusy(CatalogError):
    """The database stayed locked past the busy timeout; retrying shortly may work."""

    def __init__(self) -> None:
        super().__init__("Catalog is busy, retry shortly")


class CatalogReadOnly(CatalogError):
    """The catalog accepts no writes now (read-only data directory or database)."""

    def __init__(self) -> None:
        super().__init__("Catalog is read-only")


class CatalogFull(CatalogError):
    """The catalog's storage is full."""

    def __init__(self) -> None:
        super().__init__("Catalog storage is full")


class CatalogUnavailable(CatalogError):
    """The database cannot be reached (down, refused, credentials); ``detail`` is for
    the log and the operator, never for clients."""

    def __init__(self, detail: str) -> None:
        super().__init__("Catalog unavailable, retry shortly")
        self.detail = detail
