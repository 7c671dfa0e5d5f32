"""Search over source images on PostgreSQL: a validated ``Search`` (webapp/search.py) as
SQL over ``sourceimages`` and the index ``sourceimage_values`` (pgschema.py).

The same answers as SQLite's (docs/search.md): filters, AND/OR, sort keys ending in the
hash, offset and keyset paging, facets. Values only ever reach SQL as bound parameters;
field names only through the allow-lists of webapp/search.py. PostgreSQL plans each
query itself over the per-column partial indexes (live images), the value indexes and
the GIN index of the words (``to_tsquery`` under the ``cropstack_words`` configuration).

Shapes that keep a search fast at 100,000 images (docs/search.md, "On PostgreSQL"):
word conditions on live images read the scoped word index of migration 5
(``wordindex.py``), and a search filtered by words only is counted and paged there; a
sort by a user field walks that field's value index and stops after the page; the total
of one metadata filter is counted on the value index, less its soft-deleted matches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from webapp.catalog.database import Database
from webapp.catalog.images import SELECT_COLUMNS, facet_counts, image_record
from webapp.catalog.postgres import julian_day
from webapp.catalog.records import SearchPage
from webapp.search import FACET_VALUES, Condition, Field, Search, SearchError, SortKey

_TOP_CHAR = "\U0010ffff"

#: How many times the images a uniform spread of a value's matches would need to fill a
#: page the walk of the sort order may read (``_walk_window``) before it gives up for
#: the plan that sorts every match: matches cluster (a label given only in one year).
WALK_MARGIN = 4
_INDEXED = (
    "SELECT sv.hash FROM sourceimage_values AS sv WHERE sv.organization_id = ? "
    "AND sv.source = ? AND sv.field = ? AND sv.type = ?"
)


def _numeric(kind: str) -> bool:
    return kind in ("int", "num", "bool", "date")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _ts_query(words: tuple[str, ...], prefix: bool) -> str:
    """A ``to_tsquery`` text requiring every word; each quoted (``\\w`` runs hold no
    quote), the last one a prefix (``:*``) when asked."""
    terms = [f"'{w}'" for w in words]
    if prefix:
        terms[-1] += ":*"
    return " & ".join(terms)


def _value(fld: Field, value: Any) -> Any:
    """A filter value as the index holds it (user dates as julian days)."""
    if fld.column is None and fld.kind == "date":
        return julian_day(value)
    return value


#: The live images' words of one field (``wordindex.py``): the query's stems, scoped.
_WORDS = (
    "SELECT w.hash, w.created FROM sourceimage_words AS w "
    "WHERE w.words @@ cropstack_scoped(?, to_tsquery('cropstack_words', ?))"
)


def _condition(
    cond: Condition, organization_id: str, scope: str | None = None
) -> tuple[str, list[Any]]:
    """One filter as SQL over ``sourceimages AS s``. A word condition on live images
    reads the word index under its ``scope`` (None: the field holds no words, so it
    matches nothing); ``scope=""`` (soft-deleted images) reads the value rows' words."""
    fld = cond.field
    if cond.op == "match" and scope is None:
        return "FALSE", []
    if cond.op == "match" and scope:
        words = _WORDS.replace("w.hash, w.created", "w.hash")
        return f"s.hash IN ({words})", [scope, _ts_query(cond.value, cond.prefix)]
    if cond.op == "match":
        assert fld.source is not None
        return (
            f"s.hash IN ({_INDEXED} AND sv.words @@ to_tsquery('cropstack_words', ?))",
            [organization_id, fld.source, fld.name, fld.type, _ts_query(cond.value, cond.prefix)],
        )
    if fld.column is not None:
        target, cast = f"s.{fld.column}", "?"
    elif _numeric(fld.kind):
        target, cast = "sv.value_num", "CAST(? AS NUMERIC)"
    else:
        target, cast = "sv.value_text", "?"
    parts: list[str] = []
    params: list[Any] = []
    if cond.op == "eq":
        parts.append(f"{target} = {cast}")
        params.append(_value(fld, cond.value))
    elif cond.op == "prefix":
        parts.append(f"{target} >= ? AND {target} < ? AND {target} LIKE ? ESCAPE '\\'")
        params.extend([cond.value, cond.value + _TOP_CHAR, _like_escape(cond.value) + "%"])
    else:
        if cond.low is not None:
            parts.append(f"{target} {'>=' if cond.low_inclusive else '>'} {cast}")
            params.append(_value(fld, cond.low))
        if cond.high is not None:
            parts.append(f"{target} {'<=' if cond.high_inclusive else '<'} {cast}")
            params.append(_value(fld, cond.high))
    sql = " AND ".join(parts)
    if fld.column is not None:
        return sql, params
    return f"s.hash IN ({_INDEXED} AND {sql})", [
        organization_id,
        fld.source,
        fld.name,
        fld.type,
        *params,
    ]


def _each_filter(
    conditions: tuple[Condition, ...], scopes: list[str | None], organization_id: str
) -> tuple[list[str], list[Any]]:
    """Each filter as a SELECT of the hashes it matches, each through its own index
    (filters that match nothing left out), with their parameters: metadata and word
    filters as their index subqueries (value rows name soft-deleted images too, word
    rows only live ones), image-column filters as the live images they match (the
    per-column partial indexes carry the hash: index-only)."""
    arms: list[str] = []
    params: list[Any] = []
    for cond, scope in zip(conditions, scopes, strict=True):
        sql, values = _condition(cond, organization_id, scope)
        if sql == "FALSE":
            continue
        if sql.startswith("s.hash IN (") and sql.endswith(")"):
            arms.append(sql.removeprefix("s.hash IN (").removesuffix(")"))
            params.extend(values)
        else:
            arms.append(
                "SELECT s.hash FROM sourceimages AS s WHERE s.organization_id = ? "
                f"AND s.deleted_at IS NULL AND {sql}"
            )
            params.extend([organization_id, *values])
    return arms, params


def _sort_keys(key: SortKey, n: int) -> tuple[list[tuple[str, bool]], str, list[Any]]:
    """SQL keys of one sort key (expression, descending), and for a user field the join
    that brings its value (alias ``sk<n>``) with its parameters. Images without the field
    sort last in either direction (a "missing" key first, 0 or 1 as cursors hold)."""
    fld = key.field
    if fld.column is not None:
        return [(f"s.{fld.column}", key.descending)], "", []
    column = f"sk{n}.value_num" if _numeric(fld.kind) else f"sk{n}.value_text"
    # Sortable user fields hold one value, so the join adds at most one row per image.
    join = (
        f" LEFT JOIN sourceimage_values AS sk{n} ON sk{n}.organization_id = s.organization_id "
        f"AND sk{n}.hash = s.hash AND sk{n}.source = 'user' AND sk{n}.field = ? "
        f"AND sk{n}.type = ?"
    )
    missing = f"(CASE WHEN {column} IS NULL THEN 1 ELSE 0 END)"
    return [(missing, False), (column, key.descending)], join, [fld.name, fld.type]


def _plain(value: Any) -> Any:
    """A key value as JSON can hold it (cursors): NUMERIC as int or float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class PgImageSearch:
    """The search part of the catalog on PostgreSQL (``Catalog.image_search``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def search(
        self,
        search: Search,
        organization_id: str,
        *,
        restore_cutoff: str,
        binary_hash: str | None = None,
    ) -> SearchPage:
        """Total, one page (``limit`` images after ``offset`` or the ``after`` keyset) with
        each image's sort key values, whether more follow, and value counts per facet.
        ``SearchError`` when the cursor does not fit the sort."""
        session = getattr(self.db, "session", None)
        if session is None:
            return self._search(search, organization_id, restore_cutoff, binary_hash)
        with session():
            return self._search(search, organization_id, restore_cutoff, binary_hash)

    def _search(
        self,
        search: Search,
        organization_id: str,
        restore_cutoff: str,
        binary_hash: str | None,
    ) -> SearchPage:
        live = not search.deleted
        clauses = ["s.organization_id = ?"]
        params: list[Any] = [organization_id]
        if search.deleted:
            clauses.append("s.deleted_at IS NOT NULL AND s.deleted_at >= ?")
            params.append(restore_cutoff)
        else:
            clauses.append("s.deleted_at IS NULL")
        if binary_hash is not None:
            clauses.append("s.binary_hash = ?")
            params.append(binary_hash)
        unfiltered_where, unfiltered_params = " AND ".join(clauses), list(params)
        scopes = [
            self._scope(organization_id, c.field) if c.op == "match" and live else ""
            for c in search.conditions
        ]
        if search.conditions:
            parts = []
            for cond, scope in zip(search.conditions, scopes, strict=True):
                sql, values = _condition(cond, organization_id, scope)
                parts.append(f"({sql})")
                params.extend(values)
            clauses.append("(" + (" OR " if search.any_of else " AND ").join(parts) + ")")
        where = " AND ".join(clauses)
        sort: list[tuple[str, bool]] = []
        joins, join_params = "", []
        later_joins, later_params = "", []  # those of the keys after the first
        for n, key in enumerate(search.sort):
            keys, join, params_of_join = _sort_keys(key, n)
            sort.extend(keys)
            joins += join
            join_params.extend(params_of_join)
            if n:
                later_joins += join
                later_params.extend(params_of_join)
        sort.append(("s.hash", sort[-1][1]))
        if search.after is not None and len(search.after) != len(sort):
            raise SearchError("offset: the cursor belongs to another sort order")
        # Filtered by words only (live images, AND): counted and paged on the word index.
        words: tuple[str, list[Any]] | None = None
        if (
            live
            and binary_hash is None
            and search.conditions
            and all(c.op == "match" for c in search.conditions)
            and (not search.any_of or len(search.conditions) == 1)
            and all(scopes)
        ):
            words = self._word_matches(search.conditions, scopes)
        # Every live image of the organization: totals and facets from the counts the
        # trigger keeps (pgschema.py), not from counting the images.
        unfiltered = not search.conditions and binary_hash is None and not search.deleted
        lead = search.sort[0].field
        by_words = words is not None and all(sql in ("s.created", "s.hash") for sql, _ in sort)
        if search.facets and not unfiltered and search.limit and lead.column and not by_words:
            # Facets over filtered matches with a page sorted by image columns: the
            # matches read once for the total, the facets and the page's keys.
            total, facets, rows = self._counted_page(
                search, sort, (joins, join_params), where, params, organization_id
            )
            return self._page_of(search, sort, total, rows, facets)
        if unfiltered:
            total = self._live_count(organization_id)
        elif words is not None:
            counting = f"SELECT COUNT(*) AS n FROM ({words[0]}) AS m"
            if len(search.conditions) == 1 and search.conditions[0].field.type != "array_text":
                # One value per image and field: every match is one image, and the count
                # reads the GIN index only (no table row).
                counting = _WORDS.replace("w.hash, w.created", "COUNT(*) AS n")
            total = self._count(counting, words[1])
        elif (
            live
            and binary_hash is None
            and search.any_of
            and len(search.conditions) > 1
            and (either := self._any_of_total(search, scopes, organization_id)) is not None
        ):
            total = either
        elif (
            live
            and binary_hash is None
            and self._single_value_filter(search)
            and (single := self._value_filter_total(search.conditions[0], organization_id))
            is not None
        ):
            total = single
        else:
            counting = f"SELECT COUNT(*) AS n FROM sourceimages AS s WHERE {where}"
            total = self._count(counting, params)
        if unfiltered:
            facets = {f.key: self._counted_facet(f, organization_id) for f in search.facets}
        else:
            facets = self._facets(search.facets, organization_id, where, params)
        if search.limit == 0:
            return SearchPage(total, [], [], total > 0, facets)
        if by_words:
            assert words is not None
            rows = self._page_by_words(search, sort, words, organization_id)
        elif lead.column is None and self._lead_pays(search, binary_hash, total, organization_id):
            rows = self._page_by_lead(
                search, sort, (later_joins, later_params), where, params, organization_id
            )
        else:
            rows = None
            if (
                binary_hash is None
                and self._single_value_filter(search)
                and not joins
                and (window := self._walk_window(search, total, organization_id)) is not None
            ):
                rows = self._page_by_walk(
                    search,
                    sort,
                    (unfiltered_where, unfiltered_params),
                    search.conditions[0],
                    window,
                    organization_id,
                )
            if rows is None:
                rows = self._page(
                    search, sort, joins, [*join_params, *params], where, organization_id
                )
        return self._page_of(search, sort, total, rows, facets)

    @staticmethod
    def _page_of(
        search: Search,
        sort: list[tuple[str, bool]],
        total: int,
        rows: list[Any],
        facets: dict[str, list[dict[str, Any]]],
    ) -> SearchPage:
        """The answer from up to ``limit + 1`` page rows (each with its keys ``_kN``)."""
        more = len(rows) > search.limit
        rows = rows[: search.limit]
        keys = [tuple(_plain(r[f"_k{i}"]) for i in range(len(sort))) for r in rows]
        return SearchPage(total, [image_record(r) for r in rows], keys, more, facets)

    def _count(self, sql: str, params: list[Any]) -> int:
        counted = self.db.row(sql, params)
        return int(counted["n"]) if counted else 0

    def _live_count(self, organization_id: str) -> int:
        """Live images of the organization: each counts once under ``format``."""
        return self._count(
            "SELECT COALESCE(SUM(count), 0) AS n FROM sourceimage_facet_counts "
            "WHERE organization_id = ? AND facet = 'format'",
            [organization_id],
        )

    def _scope(self, organization_id: str, fld: Field) -> str | None:
        """The lexeme prefix of one field's words (``wordindex.py``), None when no live
        or past image of the organization ever held words there."""
        found = self.db.row(
            "SELECT id FROM sourceimage_word_scopes WHERE organization_id = ? AND source = ? "
            "AND type = ? AND field = ?",
            (organization_id, fld.source, fld.type, fld.name),
        )
        return f"{found['id']}|" if found else None

    @staticmethod
    def _word_matches(
        conditions: tuple[Condition, ...], scopes: list[str | None]
    ) -> tuple[str, list[Any]]:
        """``(hash, created)`` of the live images every word condition matches, once each."""
        selects, params = [], []
        for cond, scope in zip(conditions, scopes, strict=True):
            selects.append(_WORDS)
            params.extend([scope, _ts_query(cond.value, cond.prefix)])
        if len(selects) == 1 and conditions[0].field.type != "array_text":
            return selects[0], params  # one word row per image and field
        if len(selects) == 1:
            # Array elements are rows of their own: an image may match in several.
            return selects[0].replace("SELECT", "SELECT DISTINCT", 1), params
        return " INTERSECT ".join(selects), params

    @staticmethod
    def _single_value_filter(search: Search) -> bool:
        """One filter on an indexed metadata value (no words, no image column)."""
        if len(search.conditions) != 1:
            return False
        cond = search.conditions[0]
        return cond.field.column is None and cond.op != "match"

    def _deleted_past(self, organization_id: str, matches: int) -> int:
        """The organization's soft-deleted images, counted up to ``matches`` + 1 (enough to
        tell whether subtracting them from a total of ``matches`` is the cheaper way)."""
        return self._count(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM sourceimages WHERE organization_id = ? "
            "AND deleted_at IS NOT NULL LIMIT ?) AS d",
            [organization_id, matches + 1],
        )

    def _value_filter_total(self, cond: Condition, organization_id: str) -> int | None:
        """The live images one metadata filter matches: the images its value index rows
        name (read from the index alone), less the soft-deleted ones among them (found
        from the deleted side), rather than checking every match for being live. None
        (count the general way) when the organization holds more deleted images than
        the filter matches."""
        sql, params = _condition(cond, organization_id)
        assert sql.startswith("s.hash IN (") and sql.endswith(")")
        inner = sql.removeprefix("s.hash IN (").removesuffix(")")
        # One index row per image, unless the field holds arrays (a row per element) or
        # a JSON path two documents' keys can spell alike.
        once = cond.field.source == "user" and cond.field.type not in ("array", "array_text")
        everyone = self._count(
            f"SELECT COUNT({'*' if once else 'DISTINCT hash'}) AS n FROM ({inner}) AS m", params
        )
        deleted = self._deleted_past(organization_id, everyone)
        if deleted == 0:
            return everyone
        if deleted > everyone:
            return None
        dead = self._count(
            "SELECT COUNT(*) AS n FROM sourceimages AS s WHERE s.organization_id = ? "
            f"AND s.deleted_at IS NOT NULL AND {_probe(inner, 's.hash')}",
            [organization_id, *params],
        )
        return everyone - dead

    def _any_of_total(
        self, search: Search, scopes: list[str | None], organization_id: str
    ) -> int | None:
        """The live images an OR of filters matches: the union of each filter's hashes
        (read from indexes, not by testing every image of the organization, which an OR
        of ``IN (subquery)`` terms makes PostgreSQL do: 86-120 ms at 100,000 images),
        less the soft-deleted images in it (found from the deleted side, as for one
        filter). None (count the general way) when the organization holds more deleted
        images than the union."""
        arms, params = _each_filter(search.conditions, scopes, organization_id)
        if not arms:
            return 0
        everyone = self._count(f"SELECT COUNT(*) AS n FROM ({' UNION '.join(arms)}) AS m", params)
        deleted = self._deleted_past(organization_id, everyone)
        if deleted == 0:
            return everyone
        if deleted > everyone:
            return None
        dead = self._count(
            "SELECT COUNT(*) AS n FROM sourceimages AS s WHERE s.organization_id = ? "
            f"AND s.deleted_at IS NOT NULL AND s.hash IN ({' UNION ALL '.join(arms)})",
            [organization_id, *params],
        )
        return everyone - dead

    def _lead_pays(
        self, search: Search, binary_hash: str | None, total: int, organization_id: str
    ) -> bool:
        """Whether walking the first sort key's value index (stopping after the page)
        beats joining and sorting every match: unless the filters keep few images."""
        if search.deleted or binary_hash is not None:
            return False
        if not search.conditions:
            return True
        return total * 20 >= self._live_count(organization_id)

    def _walk_window(self, search: Search, total: int, organization_id: str) -> int | None:
        """How many live images, in sort order from the offset or cursor, a page of one
        metadata filter's matches may read probing each (``_page_by_walk``): ``WALK_MARGIN``
        times the images a uniform spread of its ``total`` matches over the organization's
        would need to fill the page. None when reading all the matches and sorting them
        costs fewer index reads than that (a rare value), or for soft-deleted images.

        Why: PostgreSQL estimates a value's matches from per-column statistics as if the
        organization, field and value were independent (183 images for a label 9,858 of
        100,000 images hold), so it reads and sorts every match for the first page (30 ms)
        where walking the sort index with a probe each stops after ~900 images (3 ms)."""
        if search.deleted or total == 0:
            return None
        live = self._live_count(organization_id)
        window = int(-(-WALK_MARGIN * (search.offset + search.limit + 1) * live // total))
        return window if window < total else None

    def _page_by_walk(
        self,
        search: Search,
        sort: list[tuple[str, bool]],
        unfiltered: tuple[str, list[Any]],
        cond: Condition,
        window: int,
        organization_id: str,
    ) -> list[Any] | None:
        """The page (``limit + 1`` rows with ``_kN``) of one metadata filter sorted by image
        columns: the first ``window`` live images in sort order from the offset or cursor
        (their column's index, no table row), each probed in the value index; then those
        images. None when the window ends before the page fills: the matches cluster
        where the walk has not reached, and the caller sorts them all instead."""
        where, params = unfiltered
        columns = [sql for sql, _ in sort]
        selected, order, keyset, keyset_params = _keyed(
            columns, sort, search.after, "IS NOT DISTINCT FROM"
        )
        if search.after is not None and search.after[0] is not None:
            # Image columns first: the index walk starts at the cursor.
            keyset = f"_k0 {'<=' if sort[0][1] else '>='} ? AND {keyset}"
            keyset_params.insert(0, search.after[0])
        sql, values = _condition(cond, organization_id)
        inner = sql.removeprefix("s.hash IN (").removesuffix(")")
        keys = ", ".join(f"p._k{i}" for i in range(len(columns)))
        rows = self.db.rows(
            f"SELECT {SELECT_COLUMNS.replace('sourceimages.', 's.')}, {keys} FROM "
            # OFFSET 0 keeps the probe a per-row filter: pulled up into a join, PostgreSQL
            # would plan it by its estimate again.
            f"(SELECT * FROM (SELECT * FROM (SELECT s.hash AS _h, {selected} FROM "
            f"sourceimages AS s WHERE {where}) AS page WHERE {keyset} ORDER BY {order} "
            f"LIMIT ?) AS w WHERE {_probe(inner, 'w._h', keep=True)} ORDER BY {order} "
            "LIMIT ? OFFSET ?) AS p JOIN sourceimages AS s ON s.organization_id = ? "
            f"AND s.hash = p._h ORDER BY {order}",
            [
                *params,
                *keyset_params,
                window,
                *values,
                search.limit + 1,
                search.offset,
                organization_id,
            ],
        )
        return rows if len(rows) > search.limit else None

    def _ordered(
        self,
        search: Search,
        sort: list[tuple[str, bool]],
        source: str,
        params: list[Any],
        *,
        columns: list[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        bound: tuple[str, Any] | None = None,
        late: str | None = None,
    ) -> list[Any]:
        """``limit + 1`` rows of ``source`` (``FROM … WHERE …`` over ``s``) after the
        offset or keyset, in sort order, each with its keys ``_kN`` (``columns``, by
        default the sort expressions). ``bound`` is an extra sargable condition on the
        first varying key that lets an index walk start at the cursor. ``late`` (the
        organization id): choose the page's hashes and keys first, then read only those
        images (a sort over many matches then reads no image row where an index covers
        the filter and the keys: sourceimages_live_by_hash covers ``created``)."""
        columns = columns if columns is not None else [sql for sql, _ in sort]
        selected, order, keyset, keyset_params = _keyed(
            columns, sort, search.after, "IS NOT DISTINCT FROM"
        )
        if search.after is not None and bound is not None:
            keyset = f"{bound[0]} AND {keyset}"
            keyset_params.insert(0, bound[1])
        page = [
            *keyset_params,
            (search.limit if limit is None else limit) + 1,
            search.offset if offset is None else offset,
        ]
        image_columns = SELECT_COLUMNS.replace("sourceimages.", "s.")
        if late is not None:
            keys = ", ".join(f"p._k{i}" for i in range(len(columns)))
            return self.db.rows(
                f"SELECT {image_columns}, {keys} FROM (SELECT * FROM (SELECT s.hash AS _h, "
                f"{selected} {source}) AS page WHERE {keyset} ORDER BY {order} "
                "LIMIT ? OFFSET ?) AS p JOIN sourceimages AS s ON s.organization_id = ? "
                f"AND s.hash = p._h ORDER BY {order}",
                [*params, *page, late],
            )
        return self.db.rows(
            f"SELECT * FROM (SELECT {image_columns}, "
            f"{selected} {source}) AS page WHERE {keyset} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, *page],
        )

    def _page(
        self,
        search: Search,
        sort: list[tuple[str, bool]],
        joins: str,
        params: list[Any],
        where: str,
        organization_id: str,
    ) -> list[Any]:
        """``limit + 1`` images after the offset or keyset, in sort order, with ``_kN``."""
        bound = None
        if search.after is not None and search.after[0] is not None and sort[0][0].startswith("s."):
            # An image column first: its index walk can start at the cursor.
            bound = (f"_k0 {'<=' if sort[0][1] else '>='} ?", search.after[0])
        return self._ordered(
            search,
            sort,
            f"FROM sourceimages AS s{joins} WHERE {where}",
            params,
            bound=bound,
            late=organization_id,
        )

    def _page_by_words(
        self,
        search: Search,
        sort: list[tuple[str, bool]],
        words: tuple[str, list[Any]],
        organization_id: str,
    ) -> list[Any]:
        """The page of a words-only search sorted by ``created``/``hash``: the keys of the
        page from the word index's narrow rows, then those images."""
        columns = [sql.replace("s.", "m.") for sql, _ in sort]
        # created/hash are never NULL: plain equality
        selected, order, keyset, keyset_params = _keyed(columns, sort, search.after, "=")
        keys = (
            f"SELECT * FROM (SELECT {selected}, m.hash FROM ({words[0]}) AS m) AS k "
            f"WHERE {keyset} ORDER BY {order} LIMIT ? OFFSET ?"
        )
        return self.db.rows(
            f"SELECT {SELECT_COLUMNS.replace('sourceimages.', 's.')}, "
            + ", ".join(f"k._k{i}" for i in range(len(sort)))
            + f" FROM ({keys}) AS k JOIN sourceimages AS s ON s.organization_id = ? "
            f"AND s.hash = k.hash ORDER BY {order}",
            [*words[1], *keyset_params, search.limit + 1, search.offset, organization_id],
        )

    def _page_by_lead(
        self,
        search: Search,
        sort: list[tuple[str, bool]],
        joins: tuple[str, list[Any]],
        where: str,
        params: list[Any],
        organization_id: str,
    ) -> list[Any]:
        """The page when the first sort key is a user field (keys: missing, value, the
        other keys, hash): the images holding the field in the order of its value index,
        joined one by one so that the LIMIT ends the walk; then, when the page is not
        full, the images without the field. ``joins`` (SQL, parameters) bring the other
        keys' user fields."""
        join_sql, join_params = joins
        fld = search.sort[0].field
        column = "sk.value_num" if _numeric(fld.kind) else "sk.value_text"
        rest = [sql for sql, _ in sort[2:-1]]
        has_value = (
            "sk.organization_id = ? AND sk.source = 'user' AND sk.field = ? AND sk.type = ? "
            f"AND {column} IS NOT NULL"
        )
        lead_params = [organization_id, fld.name, fld.type]
        after = search.after
        rows: list[Any] = []
        offset = search.offset
        if after is None or not after[0]:
            bound = None
            if after is not None and after[1] is not None:
                bound = (f"_k1 {'<=' if sort[1][1] else '>='} ?", after[1])
            # Sorting by sk.hash (equal to s.hash by the join) follows the index's order.
            rows = self._ordered(
                search,
                sort,
                "FROM sourceimage_values AS sk JOIN sourceimages AS s "
                f"ON s.organization_id = sk.organization_id AND s.hash = sk.hash{join_sql} "
                f"WHERE {has_value} AND {where}",
                [*join_params, *lead_params, *params],
                columns=["0", column, *rest, "sk.hash"],
                bound=bound,
            )
            if len(rows) > search.limit:
                return rows
            if rows or offset == 0:
                offset = 0
            else:
                # The offset lies beyond the images with the field: skip those.
                holding = self._count(
                    "SELECT COUNT(*) AS n FROM sourceimage_values AS sk JOIN sourceimages AS s "
                    "ON s.organization_id = sk.organization_id AND s.hash = sk.hash "
                    f"WHERE {has_value} AND {where}",
                    [*lead_params, *params],
                )
                offset = max(0, offset - holding)
        missing = self._ordered(
            search,
            sort,
            f"FROM sourceimages AS s{join_sql} WHERE {where} AND NOT EXISTS (SELECT 1 FROM "
            f"sourceimage_values AS sk WHERE {has_value} AND sk.hash = s.hash)",
            [*join_params, *params, *lead_params],
            columns=[
                "1",
                f"CAST(NULL AS {'NUMERIC' if _numeric(fld.kind) else 'TEXT'})",
                *rest,
                "s.hash",
            ],
            limit=search.limit - len(rows),
            offset=offset,
        )
        return [*rows, *missing]

    def _counted_facet(self, fld: Field, organization_id: str) -> list[dict[str, Any]]:
        """The most frequent values of ``fld`` among all live images, from the counts."""
        facet = fld.column if fld.column is not None else f"user:{fld.type}:{fld.name}"
        rows = self.db.rows(
            "SELECT value, count FROM sourceimage_facet_counts WHERE organization_id = ? "
            "AND facet = ? AND count > 0 ORDER BY count DESC, value ASC LIMIT ?",
            (organization_id, facet, FACET_VALUES),
        )
        return [{"value": r["value"], "count": int(r["count"])} for r in rows]

    def _facets(
        self, facets: tuple[Field, ...], organization_id: str, where: str, params: list[Any]
    ) -> dict[str, list[dict[str, Any]]]:
        """The most frequent values (≤ FACET_VALUES, by count then value) of each facet
        field among the matches, in one statement: the matches once (a CTE, materialized
        when several facets read it), each field counted over them through covering
        indexes keyed by hash (probeindexes.py; ``format``/``mimetype``:
        sourceimages_live_by_hash; user fields: sourceimage_values_strings_by_hash)."""
        if not facets:
            return {}
        arms, arm_params = _facet_arms(facets, organization_id)
        return facet_counts(
            self.db,
            f"SELECT s.hash, s.format, s.mimetype FROM sourceimages AS s WHERE {where}",
            arms,
            [*params, *arm_params],
            [f.key for f in facets],
        )

    def _counted_page(
        self,
        search: Search,
        sort: list[tuple[str, bool]],
        joins: tuple[str, list[Any]],
        where: str,
        params: list[Any],
        organization_id: str,
    ) -> tuple[int, dict[str, list[dict[str, Any]]], list[Any]]:
        """Total, facets and the page (``limit + 1`` rows with ``_kN``, after the offset
        or keyset) of a search sorted by image columns, in one statement: the matches
        with their facet columns and sort keys are read once (a materialized CTE, each
        match probed once for liveness, ``format``, ``mimetype`` and ``created`` on
        sourceimages_live_by_hash), then counted, counted per facet value and sorted
        for the page, whose rows alone are read in full. Separately (a total, the
        facets, the page: four statements) the matches were read three times."""
        join_sql, join_params = joins
        columns = [sql for sql, _ in sort]
        selected, order, keyset, keyset_params = _keyed(
            columns, sort, search.after, "IS NOT DISTINCT FROM"
        )
        arms, arm_params = _facet_arms(search.facets, organization_id)
        image_columns = SELECT_COLUMNS.replace("sourceimages.", "s.")
        keys = ", ".join(f"p._k{i}" for i in range(len(columns)))
        # The facets as one JSON text (parsed once, not once per page row).
        rows = self.db.rows(
            f"WITH m AS MATERIALIZED (SELECT s.hash, s.format, s.mimetype, {selected} "
            f"FROM sourceimages AS s{join_sql} WHERE {where}), "
            f"f AS ({' UNION ALL '.join(arms)}) "
            "SELECT c._total, c._facets, "
            f"{image_columns}, {keys} FROM (SELECT (SELECT COUNT(*) FROM m) AS _total, "
            "(SELECT json_agg(json_build_array(f.facet, f.value, f.count) "
            "ORDER BY f.facet, f.count DESC, f.value ASC)::text FROM f) AS _facets) AS c "
            f"LEFT JOIN ((SELECT * FROM m WHERE {keyset} ORDER BY {order} LIMIT ? OFFSET ?) "
            "AS p JOIN sourceimages AS s ON s.organization_id = ? AND s.hash = p.hash) ON TRUE "
            f"ORDER BY {order}",
            [
                *join_params,
                *params,
                *arm_params,
                *keyset_params,
                search.limit + 1,
                search.offset,
                organization_id,
            ],
        )
        counted: dict[str, list[dict[str, Any]]] = {f.key: [] for f in search.facets}
        for facet, value, count in json.loads(rows[0]["_facets"] or "[]"):
            counted[search.facets[facet].key].append({"value": value, "count": int(count)})
        # Without a page row, the one row of the total and facets has NULL image columns.
        return int(rows[0]["_total"]), counted, [r for r in rows if r["hash"] is not None]


def _facet_arms(facets: tuple[Field, ...], organization_id: str) -> tuple[list[str], list[Any]]:
    """One SELECT per facet field over the matches ``m`` (``hash``, ``format``,
    ``mimetype``): ``facet`` (its index), ``value``, ``count``, its ``FACET_VALUES`` most
    frequent values; with their parameters."""
    arms: list[str] = []
    arm_params: list[Any] = []
    for i, fld in enumerate(facets):
        if fld.column is not None:
            # fld.column is allow-listed (parse_facets: format or mimetype).
            arms.append(
                f"SELECT * FROM (SELECT {i} AS facet, m.{fld.column} AS value, "
                f"COUNT(*) AS count FROM m GROUP BY m.{fld.column} "
                f"ORDER BY count DESC, value ASC LIMIT ?) AS f{i}"
            )
            arm_params.append(FACET_VALUES)
        else:
            # The type as a literal (allow-listed: str or array) lets the planner
            # prove the partial index's condition. LATERAL (kept by OFFSET 0) probes
            # the index once per match: from the column statistics alone PostgreSQL
            # expects a field to hold few rows and would hash all of them instead.
            assert fld.type in ("str", "array")
            arms.append(
                f"SELECT * FROM (SELECT {i} AS facet, v.value, COUNT(DISTINCT m.hash) "
                "AS count FROM m CROSS JOIN LATERAL (SELECT sv.value_text AS value "
                "FROM sourceimage_values AS sv WHERE sv.organization_id = ? "
                "AND sv.hash = m.hash AND sv.source = 'user' AND sv.field = ? "
                f"AND sv.type = '{fld.type}' AND sv.value_text IS NOT NULL OFFSET 0) AS v "
                f"GROUP BY v.value ORDER BY count DESC, value ASC LIMIT ?) AS f{i}"
            )
            arm_params.extend([organization_id, fld.name, FACET_VALUES])
    return arms, arm_params


def _probe(inner: str, hash_sql: str, *, keep: bool = False) -> str:
    """``EXISTS`` over a filter's value-index subquery (``SELECT sv.hash … WHERE …``) for
    the one image ``hash_sql`` names; ``keep``: as a filter evaluated per image (OFFSET 0
    stops PostgreSQL turning it into a join it would plan by its own estimate)."""
    probe = inner.replace("SELECT sv.hash", "SELECT 1", 1)
    return f"EXISTS ({probe} AND sv.hash = {hash_sql}{' OFFSET 0' if keep else ''})"


def _keyed(
    columns: list[str],
    sort: list[tuple[str, bool]],
    after: Sequence[Any] | None,
    equal: str,
) -> tuple[str, str, str, list[Any]]:
    """The sort keys of a page as columns ``_k0…`` (``selected``), their ``ORDER BY``, and
    the keyset condition of the rows after cursor ``after`` ("TRUE" without one) with its
    parameters. ``equal`` compares the keys before the varying one (``=``, or ``IS NOT
    DISTINCT FROM`` where a key may be NULL)."""
    selected = ", ".join(f"{sql} AS _k{i}" for i, sql in enumerate(columns))
    order = ", ".join(f"_k{i} {'DESC' if desc else 'ASC'}" for i, (_, desc) in enumerate(sort))
    if after is None:
        return selected, order, "TRUE", []
    alternatives, params = [], []
    for i, (_, descending) in enumerate(sort):
        terms = [f"_k{j} {equal} ?" for j in range(i)]
        terms.append(f"_k{i} {'<' if descending else '>'} ?")
        params.extend([*after[:i], after[i]])
        alternatives.append("(" + " AND ".join(terms) + ")")
    return selected, order, "(" + " OR ".join(alternatives) + ")", params
