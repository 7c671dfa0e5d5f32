"""Search over source images on SQLite: a validated ``Search`` compiled to SQL, and the
queries that answer it (totals, pages by offset or keyset, facet counts).

``webapp/search.py`` validated everything; every value here is a bound parameter. The
search index tables (``sourceimage_values``, ``sourceimage_words``, ``sourceimage_keys``,
``sourceimage_facet_counts``) are kept by triggers, see ``schema.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webapp.catalog.database import Database
from webapp.catalog.images import facet_counts, image_record
from webapp.catalog.records import SearchPage
from webapp.catalog.schema import scope_token
from webapp.search import FACET_VALUES, Condition, Field, Search, SearchError, SortKey

Row = Mapping[str, Any]


@dataclass
class ImageQuery:
    """A list query over one organization's images.

    ``where`` fragments (bound ``params`` only) are joined with AND, or with OR when
    ``any_of``; ``sort`` holds ``(sql, params, descending)`` keys ending in a unique
    tie-break (``hash``), so keyset paging with ``after`` (the last row's key values)
    never repeats or skips a row. Build one from a ``Search`` with ``compile_search``.
    """

    organization_id: str
    limit: int = 100
    offset: int = 0
    #: True lists only soft-deleted images still inside the restore window.
    deleted: bool = False
    restore_cutoff: str = ""
    binary_hash: str | None = None
    where: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    any_of: bool = False
    sort: list[tuple[str, list[Any], bool]] = field(
        default_factory=lambda: [("created", [], True), ("hash", [], True)]
    )
    #: Key values of the last row of the previous page (keyset paging), or None.
    after: tuple[Any, ...] | None = None
    #: When the first sort key is a user field: (index value column, field name, type).
    #: Its keys are then ``sort[0]`` (missing?) and ``sort[1]`` (the value).
    lead: tuple[str, str, str] | None = None
    #: When every filter is a word condition (combined with AND): their FTS5 queries.
    word_matches: list[str] | None = None
    #: The filter when there is exactly one (its total may be counted on its index).
    single: Condition | None = None

    @property
    def unfiltered(self) -> bool:
        """Every live image of the organization matches (answered from maintained counts)."""
        return not self.where and self.binary_hash is None and not self.deleted

    def sql_where(self) -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters."""
        clauses = ["sourceimages.organization_id = ?"]
        params: list[Any] = [self.organization_id]
        if self.deleted:
            clauses.append("sourceimages.deleted_at IS NOT NULL AND sourceimages.deleted_at >= ?")
            params.append(self.restore_cutoff)
        else:
            clauses.append("sourceimages.deleted_at IS NULL")
        if self.binary_hash is not None:
            clauses.append("sourceimages.binary_hash = ?")
            params.append(self.binary_hash)
        if self.where:
            joiner = " OR " if self.any_of else " AND "
            clauses.append("(" + joiner.join(f"({w})" for w in self.where) + ")")
            params.extend(self.params)
        return " AND ".join(clauses), params


# -- search: Search → SQL (webapp/search.py validated everything; values are bound) ------------

_INDEX_SUBQUERY = (
    "SELECT sv.hash FROM sourceimage_values AS sv WHERE sv.organization_id = ? "
    "AND sv.source = ? AND sv.field = ? AND sv.type = ?"
)
# The image keys (sourceimage_keys.id) of one word condition: the FTS5 rowid carries the key
# (schema.py), and the scope token in the MATCH keeps only this organization's field.
_WORD_KEYS = "SELECT rowid >> 32 FROM sourceimage_words WHERE sourceimage_words MATCH ?"
_FTS_SUBQUERY = f"SELECT k.hash FROM sourceimage_keys AS k WHERE k.id IN ({_WORD_KEYS})"
# Beyond every character a prefix can be followed by, for the index range of a prefix.
_TOP_CHAR = "\U0010ffff"


def like_escape(text: str) -> str:
    """``text`` as a literal LIKE pattern (``ESCAPE '\\'``): ``%``, ``_`` and ``\\`` escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _value_column(kind: str) -> str:
    return "sv.value_num" if kind in ("int", "num", "bool", "date") else "sv.value_text"


def _condition_sql(cond: Condition, organization_id: str) -> tuple[str, list[Any]]:
    """One filter as SQL over ``sourceimages``; only allow-listed names enter the text."""
    fld = cond.field
    if fld.column is not None:
        target = f"sourceimages.{fld.column}"
        placeholder = "?"
        outer: tuple[str, list[Any]] | None = None
    else:
        target = _value_column(fld.kind)
        # User dates are indexed as julianday() of their canonical text (schema.py).
        placeholder = "julianday(?)" if fld.kind == "date" else "?"
        outer = (_INDEX_SUBQUERY, [organization_id, fld.source, fld.name, fld.type])
    if cond.op == "match":
        return f"sourceimages.hash IN ({_FTS_SUBQUERY})", [_word_match(cond, organization_id)]
    parts: list[str] = []
    params = []
    if cond.op == "eq":
        parts.append(f"{target} = {placeholder}")
        params.append(cond.value)
    elif cond.op == "prefix":
        # The range narrows through the index; LIKE (escaped) states the prefix exactly.
        parts.append(f"{target} >= ? AND {target} < ? AND {target} LIKE ? ESCAPE '\\'")
        params.extend([cond.value, cond.value + _TOP_CHAR, like_escape(cond.value) + "%"])
    else:
        if cond.low is not None:
            parts.append(f"{target} {'>=' if cond.low_inclusive else '>'} {placeholder}")
            params.append(cond.low)
        if cond.high is not None:
            parts.append(f"{target} {'<=' if cond.high_inclusive else '<'} {placeholder}")
            params.append(cond.high)
    sql = " AND ".join(parts)
    if outer is None:
        return sql, params
    return f"sourceimages.hash IN ({outer[0]} AND {sql})", [*outer[1], *params]


def _word_match(cond: Condition, organization_id: str) -> str:
    """The FTS5 query of a word condition: its scope token and its (quoted) words."""
    fld = cond.field
    assert fld.source is not None and fld.name is not None and fld.type is not None
    scope = scope_token(organization_id, fld.source, fld.type, fld.name)
    # Each word quoted, so no FTS5 syntax a client sends reaches the engine.
    quoted = ['"' + w.replace('"', '""') + '"' for w in cond.value]
    if cond.prefix:
        quoted[-1] += "*"
    return f'{{scope}} : "{scope}" AND {{words}} : ({" ".join(quoted)})'


def _sort_sql(key: SortKey) -> list[tuple[str, list[Any], bool]]:
    """SQL keys for one sort key; user fields sort images without the field last."""
    fld = key.field
    if fld.column is not None:
        return [(f"sourceimages.{fld.column}", [], key.descending)]
    column = _value_column(fld.kind)
    value = (
        f"(SELECT {column} FROM sourceimage_values AS sv "
        "WHERE sv.organization_id = sourceimages.organization_id "
        "AND sv.hash = sourceimages.hash AND sv.source = 'user' AND sv.field = ? "
        "AND sv.type = ? LIMIT 1)"
    )
    params = [fld.name, fld.type]
    return [(f"{value} IS NULL", params, False), (value, params, key.descending)]


def compile_search(
    search: Search,
    organization_id: str,
    *,
    restore_cutoff: str,
    binary_hash: str | None = None,
) -> ImageQuery:
    """The ``ImageQuery`` for a validated ``Search``; ``SearchError`` if its cursor does
    not fit its sort."""
    query = ImageQuery(
        organization_id=organization_id,
        limit=search.limit,
        offset=search.offset,
        deleted=search.deleted,
        restore_cutoff=restore_cutoff,
        binary_hash=binary_hash,
        any_of=search.any_of,
        sort=[],
    )
    for cond in search.conditions:
        sql, params = _condition_sql(cond, organization_id)
        query.where.append(sql)
        query.params.extend(params)
    if len(search.conditions) == 1:
        query.single = search.conditions[0]
    if search.conditions and all(c.op == "match" for c in search.conditions):
        if not search.any_of or len(search.conditions) == 1:
            query.word_matches = [_word_match(c, organization_id) for c in search.conditions]
    for key in search.sort:
        query.sort.extend(_sort_sql(key))
    first = search.sort[0].field
    if first.column is None:
        assert first.name is not None and first.type is not None
        query.lead = (_value_column(first.kind), first.name, first.type)
    # hash is unique within an organization: the tie-break that makes the order total.
    query.sort.append(("sourceimages.hash", [], query.sort[-1][2]))
    if search.after is not None:
        if len(search.after) != len(query.sort):
            raise SearchError("offset: the cursor belongs to another sort order")
        query.after = search.after
    return query


#: Sort columns sourceimage_keys holds too (a word search sorted by these reads it only).
_KEY_COLUMNS = {"sourceimages.created": "k.created", "sourceimages.hash": "k.hash"}
#: The index of sourceimages in the order of a first sort column (schema.py): walking it,
#: SQLite reads rows in that order and sorts only ties on the column by the remaining keys.
_SORT_INDEXES = {
    f"sourceimages.{column}": f"sourceimages_{column}_live"
    for column in ("size", "width", "height", "name", "format", "mimetype")
} | {"sourceimages.created": "sourceimages_created"}


def _word_keys(query: ImageQuery) -> tuple[str, list[Any]] | None:
    """The keys of the images all word conditions match (SQL, params), when the search
    filters by words only (live images, no binaryHash); else None."""
    if query.word_matches is None or query.deleted or query.binary_hash is not None:
        return None
    return " INTERSECT ".join(_WORD_KEYS for _ in query.word_matches), list(query.word_matches)


def _keyset(query: ImageQuery) -> tuple[str, list[Any]]:
    """``(k0, k1, …) after query.after`` in each key's direction, over ``_kN`` columns.

    ``IS`` is used for equality so NULL keys (missing user fields) compare as equal;
    strict comparisons with NULL are false, which is right because the preceding
    ``IS NULL`` key already separates images with and without the field.
    """
    assert query.after is not None
    alternatives: list[str] = []
    params: list[Any] = []
    for i, (_, _, descending) in enumerate(query.sort):
        terms = [f"_k{j} IS ?" for j in range(i)]
        terms.append(f"_k{i} {'<' if descending else '>'} ?")
        params.extend([*query.after[:i], query.after[i]])
        alternatives.append("(" + " AND ".join(terms) + ")")
    sql = "(" + " OR ".join(alternatives) + ")"
    first = query.after[0]
    if first is not None and not query.sort[0][0].endswith("IS NULL"):
        # A sargable bound on the first key lets SQLite start the index scan at the cursor.
        sql = f"_k0 {'<=' if query.sort[0][2] else '>='} ? AND " + sql
        params.insert(0, first)
    return sql, params


class SqliteImageSearch:
    """The search part of the catalog on SQLite (``Catalog.image_search``)."""

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
        query = compile_search(
            search, organization_id, restore_cutoff=restore_cutoff, binary_hash=binary_hash
        )
        return self.run(query, search.facets)

    def run(self, query: ImageQuery, facets: tuple[Field, ...] = ()) -> SearchPage:
        """``search`` for a compiled query (tests compare the plans of one query)."""
        where, params = query.sql_where()
        words = _word_keys(query)
        single_total = self._single_filter_total(query)
        if query.unfiltered:
            total = self._live_count(query.organization_id)
        elif single_total is not None:
            total = single_total
        elif words is not None:
            # Only the FTS doclists and a small index of live keys: no image is read.
            total_row = self.db.row(
                "SELECT COUNT(*) AS n FROM sourceimage_keys AS k INDEXED BY sourceimage_keys_live "
                f"WHERE k.deleted_at IS NULL AND k.id IN ({words[0]})",
                words[1],
            )
            total = int(total_row["n"]) if total_row else 0
        else:
            total_row = self.db.row(f"SELECT COUNT(*) AS n FROM sourceimages WHERE {where}", params)
            total = int(total_row["n"]) if total_row else 0
        counted = self._facets(facets, query, where, params)
        if query.limit == 0:
            return SearchPage(total, [], [], total > 0, counted)
        if query.lead is not None and self._lead_pays(query, total):
            rows = self._page_by_lead(query, where, params)
        elif words is not None and all(sql in _KEY_COLUMNS for sql, _, _ in query.sort):
            rows = self._page_by_words(query, words, total)
        else:
            index = self._sort_walk(query, total)
            source = "sourceimages" if index is None else f"sourceimages INDEXED BY {index}"
            # A walk reads each visited row for the filter anyway (the sort indexes hold
            # no deleted_at); SQLite's own plan may sort many matches: read those late.
            rows = self._page(query, where, params, source, "1", [], late=index is None)
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        n = len(query.sort)
        keys = [tuple(r[f"_k{i}"] for i in range(n)) for r in rows]
        images = [image_record(r) for r in rows]
        return SearchPage(total, images, keys, more, counted)

    def _page_by_words(
        self, query: ImageQuery, words: tuple[str, list[Any]], total: int
    ) -> list[Row]:
        """The page of a word search sorted by ``created``/``hash`` only, read through
        sourceimage_keys: unless the words match very few images, by walking the sort key's
        index and probing the match set (the LIMIT ends the walk), else from the matches."""
        columns = [_KEY_COLUMNS[sql] for sql, _, _ in query.sort]
        index = ""
        # Walk when about 20,000 index entries (cheap probes) give the page; else read
        # the few matches and sort them.
        wanted = query.offset + query.limit + 1
        if wanted * self._live_count(query.organization_id) <= total * 20_000:
            lead = query.sort[0][0]
            index = "INDEXED BY " + (
                "sourceimage_keys_created"
                if lead == "sourceimages.created"
                else "sourceimage_keys_image"
            )
        return self._page(
            query,
            "1",
            [],
            f"sourceimage_keys AS k {index} CROSS JOIN sourceimages "
            "ON sourceimages.organization_id = k.organization_id AND sourceimages.hash = k.hash",
            f"k.organization_id = ? AND k.deleted_at IS NULL AND k.id IN ({words[0]})",
            [query.organization_id, *words[1]],
            columns=columns,
        )

    def _count(self, sql: str, params: list[Any]) -> int:
        counted = self.db.row(sql, params)
        return int(counted["n"]) if counted else 0

    def _single_filter_total(self, query: ImageQuery) -> int | None:
        """The live images of a search with one metadata or word filter, counted on its
        index alone (every image it names) less the soft-deleted ones among them, which
        are found from the deleted side: no match is checked for being live. None (count
        the general way) for other searches, or when the organization holds more deleted
        images than the filter matches."""
        cond = query.single
        if cond is None or cond.field.column is not None or query.deleted:
            return None
        if query.binary_hash is not None:
            return None
        org = query.organization_id
        if cond.op == "match":
            match = _word_match(cond, org)
            keys = "SELECT rowid >> 32 AS k FROM sourceimage_words WHERE sourceimage_words MATCH ?"
            everyone = self._count(f"SELECT COUNT(DISTINCT k) AS n FROM ({keys})", [match])
        else:
            sql, params = _condition_sql(cond, org)
            inner = sql.removeprefix("sourceimages.hash IN (").removesuffix(")")
            # One index row per image, unless the field holds arrays (a row per element)
            # or a JSON path two documents' keys can spell alike.
            once = cond.field.source == "user" and cond.field.type not in ("array", "array_text")
            everyone = self._count(
                f"SELECT COUNT({'*' if once else 'DISTINCT hash'}) AS n FROM ({inner})", params
            )
        deleted = self._count(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM sourceimages WHERE organization_id = ? "
            "AND deleted_at IS NOT NULL LIMIT ?)",
            [org, everyone + 1],
        )
        if deleted == 0:
            return everyone
        if deleted > everyone:
            return None
        if cond.op == "match":
            dead = self._count(
                f"SELECT COUNT(DISTINCT k) AS n FROM ({keys}) WHERE k IN (SELECT ks.id "
                "FROM sourceimages AS s JOIN sourceimage_keys AS ks "
                "ON ks.organization_id = s.organization_id AND ks.hash = s.hash "
                "WHERE s.organization_id = ? AND s.deleted_at IS NOT NULL)",
                [match, org],
            )
        else:
            probe = inner.replace("SELECT sv.hash", "SELECT 1", 1)
            dead = self._count(
                "SELECT COUNT(*) AS n FROM sourceimages INDEXED BY sourceimages_deleted "
                "WHERE organization_id = ? AND deleted_at IS NOT NULL AND EXISTS "
                f"({probe} AND sv.hash = sourceimages.hash)",
                [org, *params],
            )
        return everyone - dead

    def _live_count(self, organization_id: str) -> int:
        """Live images of the organization: each counts once under ``format``."""
        row = self.db.row(
            "SELECT COALESCE(SUM(count), 0) AS n FROM sourceimage_facet_counts "
            "WHERE organization_id = ? AND facet = 'format'",
            (organization_id,),
        )
        return int(row["n"]) if row else 0

    def _lead_pays(self, query: ImageQuery, total: int) -> bool:
        """Whether walking the sort field's index (stopping after the page) beats keying
        every match: yes unless the filters leave few of the organization's images."""
        if query.unfiltered:
            return True
        if query.deleted or query.binary_hash is not None:
            return False
        return total * 20 >= self._live_count(query.organization_id)

    def _sort_walk(self, query: ImageQuery, total: int) -> str | None:
        """The index to walk for the page when the first sort key is an indexed column and
        the walk is cheaper than reading every match, else None (SQLite's own plan).

        Walking visits about ``wanted * live / total`` index entries (one table row each,
        then the filter); the alternative reads all ``total`` matches and sorts them. The
        query is the same either way, only its plan differs, so pages and cursors are too.
        """
        index = _SORT_INDEXES.get(query.sort[0][0])
        if index is None or query.deleted or query.binary_hash is not None:
            return None
        wanted = query.offset + query.limit + 1
        if wanted * self._live_count(query.organization_id) <= total * total:
            return index
        return None

    def _page(
        self,
        query: ImageQuery,
        where: str,
        params: list[Any],
        source: str,
        extra: str,
        extra_params: list[Any],
        *,
        columns: list[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        constant_keys: int = 0,
        late: bool = False,
    ) -> list[Row]:
        """``limit + 1`` rows (one more tells whether another page follows) of ``source``
        matching ``where`` and ``extra`` after the keyset, in sort order, with ``_kN``.

        The first ``constant_keys`` columns are the same for every row of ``source`` and
        stay out of ORDER BY (a constant there would stop SQLite using an index's order).
        ``late``: choose the page's rows by rowid and sort keys first, then read only those
        rows (a sort over many matches then carries, and an index that covers the filter
        and the keys reads, no image row; ``sourceimages_live_columns`` covers ``created``).
        """
        if columns is None:
            columns = [sql for sql, _, _ in query.sort]
            column_params = [p for _, ps, _ in query.sort for p in ps]
        else:
            column_params = []
        selected = ", ".join(f"{sql} AS _k{i}" for i, sql in enumerate(columns))
        order = ", ".join(
            f"_k{i} {'DESC' if desc else 'ASC'}"
            for i, (_, _, desc) in enumerate(query.sort)
            if i >= constant_keys
        )
        keyset, keyset_params = ("1", []) if query.after is None else _keyset(query)
        sql = (
            f"SELECT * FROM (SELECT sourceimages.*, {selected} FROM {source} "
            f"WHERE {extra} AND {where}) WHERE {keyset} ORDER BY {order} LIMIT ? OFFSET ?"
        )
        if late:
            keys = ", ".join(f"_k{i}" for i in range(len(columns)))
            sql = (
                f"SELECT sourceimages.*, p.* FROM (SELECT _r, {keys} FROM (SELECT "
                f"sourceimages.rowid AS _r, {selected} FROM {source} WHERE {extra} AND {where}) "
                f"WHERE {keyset} ORDER BY {order} LIMIT ? OFFSET ?) AS p "
                f"CROSS JOIN sourceimages ON sourceimages.rowid = p._r ORDER BY {order}"
            )
        return self.db.rows(
            sql,
            [
                *column_params,
                *extra_params,
                *params,
                *keyset_params,
                (query.limit if limit is None else limit) + 1,
                query.offset if offset is None else offset,
            ],
        )

    def _page_by_lead(self, query: ImageQuery, where: str, params: list[Any]) -> list[Row]:
        """The page when the first sort key is a user field: images holding the field in
        the order of its index (the LIMIT ends the walk early), then, if the page is not
        full, the images without it (sorted by the remaining keys)."""
        assert query.lead is not None
        column, name, value_type = query.lead
        rest = query.sort[2:-1]
        rest_columns = [sql for sql, _, _ in rest]
        rest_params = [p for _, ps, _ in rest for p in ps]
        has_value = (
            "sv.organization_id = ? AND sv.source = 'user' AND sv.field = ? AND sv.type = ? "
            f"AND {column} IS NOT NULL"
        )
        lead_params = [query.organization_id, name, value_type]
        bound, bound_params = "", []
        if query.after is not None and not query.after[0] and query.after[1] is not None:
            # A sargable bound lets the index walk start at the cursor.
            bound = f" AND {column} {'<=' if query.sort[1][2] else '>='} ?"
            bound_params = [query.after[1]]
        rows: list[Row] = []
        offset = query.offset
        # A cursor past the images with the field (its "missing" key is 1) skips them.
        if query.after is None or not query.after[0]:
            # The index's order: value, then hash (equal to sourceimages.hash by the join).
            hash_key = "sv.hash" if not rest else "sourceimages.hash"
            rows = self._page(
                query,
                where,
                params,
                "sourceimage_values AS sv CROSS JOIN sourceimages "
                "ON sourceimages.organization_id = sv.organization_id "
                "AND sourceimages.hash = sv.hash",
                has_value + bound,
                [*rest_params, *lead_params, *bound_params],
                columns=["0", column, *rest_columns, hash_key],
                constant_keys=1,
            )
            if len(rows) > query.limit:
                return rows
            if rows or offset == 0:
                offset = 0
            else:
                # The offset lies beyond the images with the field: skip those.
                counted = self.db.row(
                    "SELECT COUNT(*) AS n FROM sourceimage_values AS sv CROSS JOIN "
                    "sourceimages ON sourceimages.organization_id = sv.organization_id "
                    f"AND sourceimages.hash = sv.hash WHERE {has_value} AND {where}",
                    [*lead_params, *params],
                )
                offset = max(0, offset - (int(counted["n"]) if counted else 0))
        missing = self._page(
            query,
            where,
            params,
            "sourceimages",
            f"NOT EXISTS (SELECT 1 FROM sourceimage_values AS sv WHERE {has_value} "
            "AND sv.hash = sourceimages.hash)",
            [*rest_params, *lead_params],
            columns=["1", "NULL", *rest_columns, "sourceimages.hash"],
            limit=query.limit - len(rows),
            offset=offset,
            constant_keys=2,
        )
        return [*rows, *missing]

    def _facets(
        self, facets: tuple[Field, ...], query: ImageQuery, where: str, params: list[Any]
    ) -> dict[str, list[dict[str, Any]]]:
        """The most frequent values (≤ FACET_VALUES, by count then value) of each facet
        field among the matches: from the maintained counts when every live image
        matches, else in one statement that finds the matches once (a CTE, materialized
        when several facets read it) and counts each field over them through covering
        indexes (``format``/``mimetype``: sourceimages_live_columns; user fields:
        sourceimage_values_facets), reading no image row when the filter needs none."""
        if not facets:
            return {}
        if query.unfiltered:
            return {f.key: self._maintained_facet(f, query.organization_id) for f in facets}
        arms: list[str] = []
        arm_params: list[Any] = []
        for i, fld in enumerate(facets):
            if fld.column is not None:
                # fld.column is allow-listed (parse_facets: format or mimetype).
                arms.append(
                    f"SELECT {i} AS facet, value, count FROM (SELECT m.{fld.column} AS value, "
                    f"COUNT(*) AS count FROM m GROUP BY m.{fld.column} "
                    "ORDER BY count DESC, value ASC LIMIT ?)"
                )
                arm_params.append(FACET_VALUES)
            else:
                # The literal type terms let SQLite use the partial index.
                arms.append(
                    f"SELECT {i} AS facet, value, count FROM (SELECT sv.value_text AS value, "
                    "COUNT(DISTINCT sv.hash) AS count FROM m CROSS JOIN sourceimage_values "
                    "AS sv INDEXED BY sourceimage_values_facets ON sv.organization_id = ? "
                    "AND sv.hash = m.hash AND sv.source = 'user' AND sv.field = ? "
                    "AND sv.type = ? AND sv.type IN ('str', 'array') "
                    "AND sv.value_text IS NOT NULL "
                    "GROUP BY sv.value_text ORDER BY count DESC, value ASC LIMIT ?)"
                )
                arm_params.extend([query.organization_id, fld.name, fld.type, FACET_VALUES])
        return facet_counts(
            self.db,
            "SELECT sourceimages.hash AS hash, sourceimages.format AS format, "
            f"sourceimages.mimetype AS mimetype FROM sourceimages WHERE {where}",
            arms,
            [*params, *arm_params],
            [f.key for f in facets],
        )

    def _maintained_facet(self, fld: Field, organization_id: str) -> list[dict[str, Any]]:
        """The most frequent values of ``fld`` among every live image (≤ FACET_VALUES),
        from sourceimage_facet_counts."""
        facet = fld.column if fld.column is not None else f"user:{fld.type}:{fld.name}"
        rows = self.db.rows(
            "SELECT value, count FROM sourceimage_facet_counts "
            "WHERE organization_id = ? AND facet = ? AND count > 0 "
            "ORDER BY count DESC, value ASC LIMIT ?",
            [organization_id, facet, FACET_VALUES],
        )
        return [{"value": r["value"], "count": r["count"]} for r in rows]
