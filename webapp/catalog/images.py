"""Catalog queries for images."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webapp.catalog import Catalog


class Images:
    """The images part of the catalog interface."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
