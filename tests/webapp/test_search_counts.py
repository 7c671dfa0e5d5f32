"""The maintained search structures (docs/search.md "How it is stored"): facet counts of
live images stay equal to a recount through every write, and the index-driven page of a
user-field sort answers exactly what the per-image query answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.webapp.catalogsql import database
from webapp.catalog import Catalog, SqliteBackend
from webapp.catalog.images import NewImage, restore_cutoff
from webapp.catalog.imagesearch import ImageQuery, compile_search
from webapp.catalog.migrations import MIGRATIONS
from webapp.search import parse_search


def _image(n: int, **user: Any) -> NewImage:
    return NewImage(
        hash=f"{n:040x}",
        binary_hash=f"{n + 1000:040x}",
        blob_key=f"{n:064x}",
        name=f"img{n}.png",
        format="png" if n % 3 else "jpg",
        mimetype="image/png" if n % 3 else "image/jpeg",
        size=n,
        width=n,
        height=n,
        user_metadata=user,
        dynamic_metadata={},
        static_metadata={},
        opaque=True,
        animated=False,
        protected=False,
    )


def _recount(catalog: Catalog) -> set[tuple[str, str, str, int]]:
    """Facet counts computed from scratch over live images (what the table must hold)."""
    rows = catalog._db.rows(
        "SELECT s.organization_id, 'user:' || v.type || ':' || v.field AS facet, "
        "v.value_text AS value, COUNT(DISTINCT s.hash) AS n FROM sourceimages AS s "
        "JOIN sourceimage_values AS v ON v.organization_id = s.organization_id "
        "AND v.hash = s.hash WHERE s.deleted_at IS NULL AND v.source = 'user' "
        "AND v.type IN ('str', 'array') AND v.value_text IS NOT NULL "
        "GROUP BY 1, 2, 3 "
        "UNION ALL SELECT organization_id, 'format', format, COUNT(*) FROM sourceimages "
        "WHERE deleted_at IS NULL GROUP BY 1, 3 "
        "UNION ALL SELECT organization_id, 'mimetype', mimetype, COUNT(*) FROM sourceimages "
        "WHERE deleted_at IS NULL GROUP BY 1, 3"
    )
    return {tuple(r) for r in rows}


def _table(catalog: Catalog) -> set[tuple[str, str, str, int]]:
    rows = catalog._db.rows(
        "SELECT organization_id, facet, value, count FROM sourceimage_facet_counts"
    )
    return {tuple(r) for r in rows}


@pytest.fixture
def catalog(tmp_path: Path):
    backend = SqliteBackend(tmp_path / "catalog.db")
    backend.migrate()
    catalog = backend.open()
    with database(backend) as db:
        for org in ("o1", "o2"):
            db.execute(
                "INSERT INTO organizations (id, name, display_name, billing_email, created) "
                "VALUES (?, ?, ?, 'b@o.example', '2020-01-01T00:00:00+00:00')",
                (org, org, org),
            )
    yield catalog
    catalog.close()


def test_facet_counts_follow_every_write(catalog: Catalog):
    images = catalog.images
    same = {"color": "red", "array:labels": ["lake", "lake", "city"], "int:n": 1}
    images.insert("o1", _image(1, **same))
    images.insert("o1", _image(2, color="red", **{"array:labels": ["city"], "text:t": "x"}))
    images.insert("o1", _image(3, **{"str:color": "blue"}))
    images.insert("o2", _image(1, **same))  # same image in another organization
    assert _table(catalog) == _recount(catalog)
    assert ("o1", "user:array:labels", "lake", 1) in _table(catalog)  # once per image
    assert ("o1", "user:str:color", "red", 2) in _table(catalog)
    assert ("o1", "user:str:color", "blue", 1) in _table(catalog)
    assert ("o1", "format", "png", 2) in _table(catalog)
    assert not any(f.startswith(("user:int", "user:text")) for _, f, _, _ in _table(catalog))

    steps = [
        lambda: images.update("o1", f"{1:040x}", user_metadata={"color": "green"}),
        lambda: images.update("o1", f"{2:040x}", name="renamed.png"),
        lambda: images.soft_delete("o1", [f"{2:040x}"]),
        lambda: images.soft_delete("o1", [f"{2:040x}"]),  # already deleted: no change
        lambda: images.update("o1", f"{2:040x}", user_metadata={"color": "gone"}),
        lambda: images.restore("o1", f"{2:040x}"),
        lambda: images.soft_delete("o1", [f"{3:040x}"]),
        lambda: images.revive("o1", _image(3, color="back", **{"array:labels": ["snow"]})),
        lambda: images.soft_delete("o1", [f"{1:040x}"]),
        lambda: images.purge_expired("9999-01-01T00:00:00+00:00"),  # hard delete of 1
        lambda: images.copy_to(images.get_exact("o1", f"{3:040x}"), "o2", overwrite=True),
    ]
    for step in steps:
        step()
        assert _table(catalog) == _recount(catalog)
    assert ("o1", "user:str:color", "gone", 1) in _table(catalog)
    assert ("o1", "user:str:color", "green", 1) not in _table(catalog)  # purged: row removed
    assert all(count > 0 for *_, count in _table(catalog))
    with catalog.unit_of_work():  # hard delete of a live image, organization cascade
        catalog._db.execute("DELETE FROM organizations WHERE id = 'o2'")
    assert _table(catalog) == _recount(catalog)
    assert {org for org, *_ in _table(catalog)} == {"o1"}


def test_facet_counts_answer_unfiltered_searches(catalog: Catalog):
    for n in range(1, 8):
        catalog.images.insert("o1", _image(n, color=["red", "blue"][n % 2]))
    catalog.images.soft_delete("o1", [f"{1:040x}"])
    search = parse_search([("facets", "user:str:color,format"), ("limit", "0")])
    query = compile_search(search, "o1", restore_cutoff=restore_cutoff(30))
    assert query.unfiltered
    result = catalog.image_search.run(query, search.facets)
    assert result.total == 6
    assert result.facets == {
        "user:str:color": [{"value": "blue", "count": 3}, {"value": "red", "count": 3}],
        "format": [{"value": "png", "count": 4}, {"value": "jpg", "count": 2}],
    }
    # The filtered path (recount) agrees with the maintained counts.
    filtered = ImageQuery("o1", limit=0, where=["1"])
    assert not filtered.unfiltered
    again = catalog.image_search.run(filtered, search.facets)
    assert again.total == result.total and again.facets == result.facets


def test_startup_backfills_facet_counts(catalog: Catalog):
    for n in range(1, 5):
        catalog.images.insert("o1", _image(n, **{"array:labels": ["a", "b"][: n % 3]}))
    catalog.images.soft_delete("o1", [f"{4:040x}"])
    expected = _table(catalog)
    assert expected == _recount(catalog)
    with catalog.unit_of_work():
        catalog._db.execute("DELETE FROM sourceimage_facet_counts")  # as if from before it
        catalog._db.execute("DROP TABLE schema_migrations")  # ... and before migrations
    backend = SqliteBackend(catalog._db.path)
    assert backend.migrate() == [m.version for m in MIGRATIONS["sqlite"]]
    assert _table(catalog) == expected
    assert backend.migrate() == []  # up to date
    assert _table(catalog) == expected
