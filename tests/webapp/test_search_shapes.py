"""SQLite search query shapes of issue 14 (webapp/catalog/searchindexes.py): the page read
by rowid after its keys are chosen (``late``), all facets counted in one statement, and
the planner statistics refreshed at start-up. Each answers exactly what the plain shape
or a recount in Python answers, with ties on every sort key, soft-deleted and protected
images, offsets and cursors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.webapp.catalogsql import database, reading
from webapp.catalog import Catalog, CatalogBackend, SqliteBackend
from webapp.catalog.images import NewImage
from webapp.catalog.imagesearch import SqliteImageSearch, compile_search
from webapp.catalog.searchindexes import MIN_IMAGES, refresh_statistics, statistics_due
from webapp.search import encode_cursor, parse_search

N = 40
LABELS = ["lake", "city", "snow", "sea"]


def _image(n: int) -> NewImage:
    """Image ``n``: sizes, widths and formats repeat (ties), some fields are missing."""
    user: dict[str, Any] = {"int:n": n % 7}
    if n % 4:
        user["color"] = ["red", "green", "blue"][n % 3]
    if n % 3 == 1:
        user["text:caption"] = ["quiet lake at night", "busy city", "snow on the lake"][n % 4 % 3]
    if n % 5:
        user["array:labels"] = [LABELS[j] for j in range(4) if (n >> j) & 1] or ["lake"]
    return NewImage(
        hash=f"{(n * 7919) % 1000:03d}{n:037x}",
        binary_hash=f"{n + 1000:040x}",
        blob_key=f"{n:064x}",
        name=f"img{n % 6}.png",
        format=["png", "jpg", "webp"][n % 3],
        mimetype=["image/png", "image/jpeg", "image/webp"][n % 3],
        size=100 + n % 5,
        width=10 + n % 3,
        height=10 + n,
        user_metadata=user,
        dynamic_metadata={},
        static_metadata={},
        opaque=True,
        animated=False,
        protected=n % 6 == 0,
    )


def _catalog(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Catalog]:
    """A catalog of ``N`` images in organization o1 (some soft-deleted) on ``kind``."""
    if kind == "sqlite":
        backend: CatalogBackend = SqliteBackend(tmp_path / "catalog.db")
    else:
        from webapp.catalog.postgres import PostgresBackend

        backend = PostgresBackend(request.getfixturevalue("postgres").clean_database())
    backend.migrate()
    with database(backend) as db:
        db.execute(
            "INSERT INTO organizations (id, name, display_name, billing_email, created) "
            "VALUES ('o1', 'o1', 'o1', 'b@o.example', '2020-01-01T00:00:00+00:00')"
        )
    catalog = backend.open()
    for n in range(N):
        catalog.images.insert("o1", _image(n))
    with catalog.unit_of_work():
        # Ties on created: images share one of five instants.
        for n in range(N):
            catalog._db.execute(
                "UPDATE sourceimages SET created = ? WHERE hash = ?",
                (f"2020-01-0{1 + n % 5}T00:00:00+00:00", _image(n).hash),
            )
    catalog.images.soft_delete("o1", [_image(n).hash for n in range(0, N, 9)])
    yield catalog
    catalog.close()
    backend.close()


@pytest.fixture
def catalog(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Catalog]:
    yield from _catalog("sqlite", tmp_path, request)


@pytest.fixture(params=["sqlite", "postgresql"])
def both(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Catalog]:
    yield from _catalog(request.param, tmp_path, request)


SORTS = ["created desc", "size asc,width desc", "width", "name desc", "user:int:n desc"]
FILTERS: list[list[tuple[str, str]]] = [
    [],
    [("format", "png")],
    [("size", "[101,103]"), ("width", "{10,}")],
    [("user:int:n", "[1,4]")],
    [("user:str:color", "red"), ("name", "img1*"), ("operator", "or")],
    [("deleted", "true")],
]


def _answers(catalog: Catalog, params: list[tuple[str, str]]) -> list[Any]:
    """Pages by offset and the whole cursor walk (three per page): totals, hashes, keys."""
    answers: list[Any] = []
    for limit, offset in ((1, 0), (4, 3), (7, 10), (100, 0)):
        search = parse_search([*params, ("limit", str(limit)), ("offset", str(offset))])
        page = catalog.image_search.run(compile_search(search, "o1", restore_cutoff="2000"))
        answers.append((page.total, [i.hash for i in page.images], page.keys, page.more))
    search = parse_search([*params, ("limit", "3")])
    for _ in range(N):
        page = catalog.image_search.run(compile_search(search, "o1", restore_cutoff="2000"))
        answers.append(([i.hash for i in page.images], page.keys, page.more))
        answers.append([(i.protected, i.deleted_at is not None) for i in page.images])
        if not page.more:
            break
        cursor = encode_cursor(search.sort_signature(), page.keys[-1])
        search = parse_search([*params, ("limit", "3"), ("offset", cursor)])
    return answers


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("filters", FILTERS, ids=range(len(FILTERS)))
def test_late_page_answers_what_the_plain_page_answers(catalog, sort, filters, monkeypatch):
    """Reading the page's rows by rowid after choosing them changes no page, key, cursor
    or ``more`` (ties on created, size and width; deleted and protected images)."""
    params = [*filters, ("sort", sort)]
    late_flags: list[bool] = []
    plain_page = SqliteImageSearch._page

    def recording(self, *args: Any, late: bool = False, **kwargs: Any) -> Any:
        late_flags.append(late)
        return plain_page(self, *args, late=late and mode == "late", **kwargs)

    monkeypatch.setattr(SqliteImageSearch, "_page", recording)
    mode = "plain"
    expected = _answers(catalog, params)
    mode = "late"
    late_flags.clear()
    assert _answers(catalog, params) == expected
    if not sort.startswith("user:"):
        assert any(late_flags)  # the late shape was taken
    assert any(page[0] for page in expected if len(page) == 3)  # pages were not empty


def _recount(catalog: Catalog, params: list[tuple[str, str]], facet: str) -> list[Any]:
    """The facet computed in Python over every match (all pages of the search)."""
    search = parse_search([*params, ("limit", "2000")])
    page = catalog.image_search.search(search, "o1", restore_cutoff="2000")
    counts: Counter[str] = Counter()
    for image in page.images:
        if facet in ("format", "mimetype"):
            counts[getattr(image, facet)] += 1
            continue
        kind, name = facet.split(":")[1:]
        value = image.user_metadata.get(name if kind == "str" else f"{kind}:{name}")
        if value is None and kind == "str":
            value = image.user_metadata.get(f"str:{name}")
        counts.update(set(value if isinstance(value, list) else [value] if value else []))
    ranked = sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))
    return [{"value": v, "count": c} for v, c in ranked]


@pytest.mark.parametrize("filters", FILTERS[1:], ids=range(len(FILTERS) - 1))
@pytest.mark.parametrize(
    "facets", ["user:array:labels", "format,user:array:labels,user:str:color,mimetype"]
)
def test_facets_in_one_statement_count_every_match(both, filters, facets):
    """One facet or four at once, over filtered (and deleted) searches: each equals the
    recount over the matches, in count order then value order."""
    search = parse_search([*filters, ("facets", facets), ("limit", "1")])
    page = both.image_search.search(search, "o1", restore_cutoff="2000")
    assert list(page.facets) == facets.split(",")
    for facet in facets.split(","):
        assert page.facets[facet] == _recount(both, filters, facet), facet
    assert any(page.facets.values())


def _walk(catalog: Catalog, params: list[tuple[str, str]]) -> list[Any]:
    """Pages by offset and the whole cursor walk (three per page) through ``search``:
    totals, hashes, keys, ``more`` and each page's facets."""
    answers: list[Any] = []
    for limit, offset in ((1, 0), (4, 3), (7, 10), (100, 0), (5, 100)):
        search = parse_search([*params, ("limit", str(limit)), ("offset", str(offset))])
        page = catalog.image_search.search(search, "o1", restore_cutoff="2000")
        answers.append((page.total, [i.hash for i in page.images], page.keys, page.more))
        answers.append(page.facets)
    search = parse_search([*params, ("limit", "3")])
    for _ in range(N):
        page = catalog.image_search.search(search, "o1", restore_cutoff="2000")
        answers.append((page.total, [i.hash for i in page.images], page.keys, page.more))
        answers.append(page.facets)
        if not page.more:
            break
        cursor = encode_cursor(search.sort_signature(), page.keys[-1])
        search = parse_search([*params, ("limit", "3"), ("offset", cursor)])
    return answers


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("filters", FILTERS[1:], ids=range(len(FILTERS) - 1))
def test_facets_with_the_page_answer_what_each_answers_alone(both, filters, sort, monkeypatch):
    """PostgreSQL counts, facets and pages a filtered search sorted by image columns in
    one statement (pgsearch ``_counted_page``): every page, key, cursor, ``more`` and
    total is the one the search without facets answers, and every page's facets are the
    ones of the search with ``limit=0`` (counted apart from any page), on both backends."""
    from webapp.catalog.pgsearch import PgImageSearch

    folded: list[int] = []
    one_statement = PgImageSearch._counted_page

    def recording(self: PgImageSearch, *args: Any) -> Any:
        folded.append(1)
        return one_statement(self, *args)

    monkeypatch.setattr(PgImageSearch, "_counted_page", recording)
    facets = "format,user:array:labels,user:str:color"
    params = [*filters, ("sort", sort)]
    plain = _walk(both, params)
    assert not folded
    faceted = _walk(both, [*params, ("facets", facets)])
    postgresql = isinstance(both.image_search, PgImageSearch)
    assert bool(folded) == (postgresql and not sort.startswith("user:"))
    alone = parse_search([*params, ("facets", facets), ("limit", "0")])
    counted = both.image_search.search(alone, "o1", restore_cutoff="2000").facets
    assert faceted[0::2] == plain[0::2]
    assert all(page == counted for page in faceted[1::2])
    assert any(counted.values()) and any(p[1] for p in plain[0::2])
    for facet in facets.split(","):
        assert counted[facet] == _recount(both, filters, facet), facet


ANY_OF: list[list[tuple[str, str]]] = [
    [("user:str:color", "red"), ("name", "img1*")],
    [("format", "webp"), ("user:int:n", "[5,}"), ("user:array:labels", "sea")],
    [("size", "[104,}"), ("user:text:caption", "lake"), ("width", "12")],
    [("user:text:caption", "night"), ("user:text:nowords", "lake")],  # a field without words
    [("user:text:nowords", "x"), ("user:str:nothing", "y")],  # neither matches anything
    [("user:str:color", "blue"), ("height", "{20,30}"), ("deleted", "true")],
]


def _hashes(catalog: Catalog, params: list[tuple[str, str]]) -> tuple[int, list[str]]:
    search = parse_search([*params, ("limit", "2000")])
    page = catalog.image_search.search(search, "o1", restore_cutoff="2000")
    return page.total, [i.hash for i in page.images]


@pytest.mark.parametrize("filters", ANY_OF, ids=range(len(ANY_OF)))
def test_or_is_the_union_of_each_filter(both, filters):
    """``operator=or`` over column, value and word filters (live or deleted images)
    answers the union of what each filter answers alone, in the same order, counted
    once, and pages by cursor through exactly that."""
    scope = [p for p in filters if p[0] == "deleted"]
    single = [p for p in filters if p[0] != "deleted"]
    union: set[str] = set()
    for one in single:
        union |= set(_hashes(both, [one, *scope])[1])
    everyone = _hashes(both, scope)[1]  # every image of that scope, in the default order
    expected = [h for h in everyone if h in union]
    assert expected or filters == ANY_OF[4]  # only the case built to match nothing
    assert _hashes(both, [*filters, ("operator", "or")]) == (len(expected), expected)
    seen: list[str] = []
    search = parse_search([*filters, ("operator", "or"), ("limit", "4")])
    for _ in range(N):
        page = both.image_search.search(search, "o1", restore_cutoff="2000")
        seen += [i.hash for i in page.images]
        if not page.more:
            break
        cursor = encode_cursor(search.sort_signature(), page.keys[-1])
        search = parse_search([*filters, ("operator", "or"), ("limit", "4"), ("offset", cursor)])
    assert seen == expected
    if not scope:  # again with no soft-deleted image in the organization
        for n in range(0, N, 9):
            both.images.restore("o1", _image(n).hash)
        union = set().union(*(_hashes(both, [one])[1] for one in single))
        expected = [h for h in _hashes(both, [])[1] if h in union]
        assert _hashes(both, [*filters, ("operator", "or")]) == (len(expected), expected)


def test_statistics_are_taken_once_the_catalog_is_large(tmp_path: Path):
    backend = SqliteBackend(tmp_path / "catalog.db")
    backend.migrate()
    with reading(backend) as db:
        assert not statistics_due(db)  # empty: any plan is fast
    with database(backend) as db:
        db.execute(
            "INSERT INTO organizations (id, name, display_name, billing_email, created) "
            "VALUES ('o1', 'o1', 'o1', 'b@o.example', '2020-01-01T00:00:00+00:00')"
        )
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO sourceimages (organization_id, hash, short_hash, binary_hash, "
            "blob_key, name, format, mimetype, size, width, height, user_metadata, created) "
            "SELECT 'o1', printf('%040x', i), printf('%010x', i), printf('%040x', i), "
            "printf('%064x', i), 'a.png', 'png', 'image/png', i, i, i, '{\"color\": \"red\"}', "
            "'2020-01-01T00:00:00+00:00' FROM n",
            (MIN_IMAGES,),
        )
    with reading(backend) as db:
        assert statistics_due(db)
    assert backend.migrate() == []  # nothing to migrate, statistics taken
    with reading(backend) as db:
        assert not statistics_due(db)
        stat = db.row("SELECT stat FROM sqlite_stat1 WHERE idx = 'sourceimages_live_columns'")
        assert stat is not None and int(stat["stat"].split()[0]) > 0
        assert refresh_statistics(db) is False  # fresh: not taken again
        # Planner statistics of the new indexes exist beside the others.
        names = {r["idx"] for r in db.rows("SELECT idx FROM sqlite_stat1")}
        assert {"sourceimages_live_columns", "sourceimage_values_facets"} <= names


COMMON_VALUES: list[list[tuple[str, str]]] = [
    [("user:array:labels", "lake")],  # 16 of the 35 live images
    [("user:int:n", "[1,4]")],  # 21
    [("user:str:color", "red")],  # 7: the windows rarely fill a page
]


@pytest.mark.parametrize("sort", ["created desc", "size asc,width desc", "name desc"])
@pytest.mark.parametrize("filters", COMMON_VALUES, ids=range(len(COMMON_VALUES)))
def test_a_common_value_walks_the_sort_order_to_the_same_pages(
    tmp_path, request, filters, sort, monkeypatch
):
    """PostgreSQL pages one metadata filter sorted by image columns by walking the sort
    order with a probe per image (pgsearch ``_page_by_walk``) when the value is common,
    and sorts every match when the walk's window ends before the page fills: every page,
    key, cursor, ``more`` and total is the one the plan that sorts every match answers."""
    from webapp.catalog import pgsearch

    catalog = next(_catalog("postgresql", tmp_path, request))
    outcomes: list[bool] = []
    walk = pgsearch.PgImageSearch._page_by_walk

    def recording(self: pgsearch.PgImageSearch, *args: Any) -> Any:
        rows = walk(self, *args)
        outcomes.append(rows is not None)
        return rows

    monkeypatch.setattr(pgsearch.PgImageSearch, "_page_by_walk", recording)
    params = [*filters, ("sort", sort)]
    monkeypatch.setattr(pgsearch, "WALK_MARGIN", N * N)  # never walks
    expected = _walk(catalog, params)
    assert not outcomes
    assert any(page[1] for page in expected[0::2])
    for margin in (0.3, 0.6, 1, 2, 3):
        monkeypatch.setattr(pgsearch, "WALK_MARGIN", margin)
        assert _walk(catalog, params) == expected, margin
    assert False in outcomes  # a window too short fell back to sorting every match
    if filters != COMMON_VALUES[-1]:
        assert True in outcomes  # and pages came from the walk
    catalog.close()
