"""``Catalog.table_rows`` (webapp/catalog/tablerows.py), the whole-row access ``cropstack
migrate`` copies with, on both backends (SQLite and a real PostgreSQL): rows read back as
written, paging covers every row once, and image rows written this way are searchable,
counted in the facets and found by the domain calls exactly like rows the domain calls made.
"""

from __future__ import annotations

import pytest

from tests.webapp.test_catalog_contract import backend, catalog, image, org  # noqa: F401
from webapp.catalog import Catalog
from webapp.catalog.records import Organization
from webapp.catalog.tablerows import COPIED, DERIVED, NOT_COPIED, TABLES
from webapp.search import parse_search

pytestmark = pytest.mark.parametrize(
    "catalog_backend", ["sqlite", "postgresql"], indirect=True, scope="module"
)


def _search(handle: Catalog, org_id: str, *params: tuple[str, str]) -> tuple[int, list[str]]:
    page = handle.image_search.search(
        parse_search([*params, ("facets", "user:str:color,format")]), org_id,
        restore_cutoff="2000-01-01T00:00:00+00:00",
    )  # fmt: skip
    return page.total, sorted(i.hash for i in page.images)


def _fill(handle: Catalog, org: Organization) -> None:  # noqa: F811
    for n in range(1, 8):
        handle.images.insert(
            org.id,
            image(n, name=f"quiet lake {n}.png",
                  user_metadata={"color": "red" if n % 2 else "blue", "int:n": n},
                  dynamic_metadata={"subject_area": {"x": n, "y": 1, "width": 5, "height": 5}}),
        )  # fmt: skip
    handle.images.soft_delete(org.id, [image(7).hash])
    handle.stacks.put(org.id, "thumb", {"operations": []}, overwrite=False)
    handle.accounts.add_key(handle.accounts.memberships(org.id)[0].user_id, "second")


def test_pages_cover_every_row_once_and_lookup_finds_them(catalog: Catalog, org: Organization):  # noqa: F811
    _fill(catalog, org)
    rows = catalog.table_rows
    for spec in COPIED:
        every = [row for page in rows.pages(spec.name, page_rows=3) for row in page]
        keys = [spec.key_of(row) for row in every]
        assert len(every) == rows.count(spec.name) == len(set(keys)), spec.name
        assert set(rows.keys(spec.name)) == set(keys)
        assert rows.lookup(spec.name, keys[:5]) == {spec.key_of(r): r for r in every[:5]}
    assert rows.count("sourceimages") == 7
    with pytest.raises(ValueError):
        rows.count("schema_migrations")


def test_written_rows_are_what_the_domain_calls_made(catalog: Catalog, org: Organization):  # noqa: F811
    _fill(catalog, org)
    rows = catalog.table_rows
    before = {h: catalog.images.get_exact(org.id, image(h).hash) for h in range(1, 8)}
    searched = _search(catalog, org.id, ("user:str:color", "red"))
    words = _search(catalog, org.id, ("name_text", "lake"))
    derived = {name: rows.count(name) for name in DERIVED}
    images = [row for page in rows.pages("sourceimages") for row in page]
    spec = TABLES["sourceimages"]

    assert rows.delete("sourceimages", [spec.key_of(row) for row in images]) == 7
    assert _search(catalog, org.id)[0] == 0
    assert all(rows.count(name) == 0 for name in DERIVED)

    rows.write("sourceimages", images, [])
    assert {h: catalog.images.get_exact(org.id, image(h).hash) for h in range(1, 8)} == before
    assert _search(catalog, org.id, ("user:str:color", "red")) == searched
    assert _search(catalog, org.id, ("name_text", "lake")) == words
    assert {name: rows.count(name) for name in DERIVED} == derived

    # A changed row is overwritten in place, its search rows and counts follow.
    name_at = spec.columns.index("name")
    changed = list(images[0])
    changed[name_at] = "busy street.png"
    rows.write("sourceimages", [], [tuple(changed)])
    moved = rows.lookup("sourceimages", [spec.key_of(images[0])])[spec.key_of(images[0])]
    assert moved[name_at] == "busy street.png"
    assert _search(catalog, org.id, ("name_text", "street"))[0] == (
        0 if images[0][spec.columns.index("deleted_at")] else 1
    )


def test_every_table_of_the_catalog_is_copied_or_derived(catalog: Catalog):  # noqa: F811
    """A migration that adds a table must say how ``cropstack migrate`` carries it."""
    db = catalog._db
    if db.dialect == "sqlite":
        found = db.rows("SELECT name FROM sqlite_master WHERE type = 'table' "
                        "AND name NOT LIKE 'sqlite_%'")  # fmt: skip
    else:
        found = db.rows("SELECT table_name AS name FROM information_schema.tables "
                        "WHERE table_schema = current_schema()")  # fmt: skip
    names = {row["name"] for row in found}
    # FTS5's shadow tables carry the name of their table with a suffix.
    names = {n for n in names if not n.startswith("sourceimage_words_")}
    assert names == set(TABLES) | set(DERIVED) | (set(NOT_COPIED) & names)
