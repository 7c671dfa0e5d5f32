"""Search over source images on PostgreSQL: a validated ``Search`` (webapp/search.py) as
SQL over ``sourceimages`` and the index ``sourceimage_values`` (pgschema.py).

The same answers as SQLite's (docs/search.md): filters, AND/OR, sort keys ending in the
hash, offset and keyset paging, facets. Values only ever reach SQL as bound parameters;
field names only through the allow-lists of webapp/search.py. PostgreSQL plans each
query itself over the per-column partial indexes (live images), the value indexes and
the GIN index of the words (``to_tsquery`` under the ``cropstack_words`` configuration).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from webapp.catalog.database import Database
from webapp.catalog.images import SELECT_COLUMNS, image_record
from webapp.catalog.postgres import julian_day
from webapp.catalog.records import SearchPage
from webapp.search import FACET_VALUES, Condition, Field, Search, SearchError, SortKey

_TOP_CHAR = "\U0010ffff"
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


def _condition(cond: Condition, organization_id: str) -> tuple[str, list[Any]]:
    fld = cond.field
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
        if search.conditions:
            parts = []
            for cond in search.conditions:
                sql, values = _condition(cond, organization_id)
                parts.append(f"({sql})")
                params.extend(values)
            clauses.append("(" + (" OR " if search.any_of else " AND ").join(parts) + ")")
        where = " AND ".join(clauses)
        sort: list[tuple[str, bool]] = []
        joins, join_params = "", []
        for n, key in enumerate(search.sort):
            keys, join, params_of_join = _sort_keys(key, n)
            sort.extend(keys)
            joins += join
            join_params.extend(params_of_join)
        sort.append(("s.hash", sort[-1][1]))
        if search.after is not None and len(search.after) != len(sort):
            raise SearchError("offset: the cursor belongs to another sort order")
        # Every live image of the organization: totals and facets from the counts the
        # trigger keeps (pgschema.py), not from counting the images.
        unfiltered = not search.conditions and binary_hash is None and not search.deleted
        if unfiltered:
            counted = self.db.row(
                "SELECT COALESCE(SUM(count), 0) AS n FROM sourceimage_facet_counts "
                "WHERE organization_id = ? AND facet = 'format'",
                (organization_id,),
            )
        else:
            counted = self.db.row(
                f"SELECT COUNT(*) AS n FROM sourceimages AS s WHERE {where}", params
            )
        total = int(counted["n"]) if counted else 0
        facets = {
            f.key: self._counted_facet(f, organization_id)
            if unfiltered
            else self._facet(f, organization_id, where, params)
            for f in search.facets
        }
        if search.limit == 0:
            return SearchPage(total, [], [], total > 0, facets)
        rows = self._page(search, sort, joins, [*join_params, *params], where)
        more = len(rows) > search.limit
        rows = rows[: search.limit]
        keys = [tuple(_plain(r[f"_k{i}"]) for i in range(len(sort))) for r in rows]
        return SearchPage(total, [image_record(r) for r in rows], keys, more, facets)

    def _page(
        self,
        search: Search,
        sort: list[tuple[str, bool]],
        joins: str,
        params: list[Any],
        where: str,
    ) -> list[Any]:
        """``limit + 1`` images after the offset or keyset, in sort order, with ``_kN``."""
        selected = ", ".join(f"{sql} AS _k{i}" for i, (sql, _) in enumerate(sort))
        order = ", ".join(f"_k{i} {'DESC' if desc else 'ASC'}" for i, (_, desc) in enumerate(sort))
        keyset, keyset_params = "TRUE", []
        if search.after is not None:
            alternatives = []
            for i, (_, descending) in enumerate(sort):
                terms = [f"_k{j} IS NOT DISTINCT FROM ?" for j in range(i)]
                terms.append(f"_k{i} {'<' if descending else '>'} ?")
                keyset_params.extend([*search.after[:i], search.after[i]])
                alternatives.append("(" + " AND ".join(terms) + ")")
            keyset = "(" + " OR ".join(alternatives) + ")"
        return self.db.rows(
            f"SELECT * FROM (SELECT {SELECT_COLUMNS.replace('sourceimages.', 's.')}, "
            f"{selected} FROM sourceimages AS s{joins} WHERE {where}) AS page WHERE {keyset} "
            f"ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, *keyset_params, search.limit + 1, search.offset],
        )

    def _counted_facet(self, fld: Field, organization_id: str) -> list[dict[str, Any]]:
        """The most frequent values of ``fld`` among all live images, from the counts."""
        facet = fld.column if fld.column is not None else f"user:{fld.type}:{fld.name}"
        rows = self.db.rows(
            "SELECT value, count FROM sourceimage_facet_counts WHERE organization_id = ? "
            "AND facet = ? AND count > 0 ORDER BY count DESC, value ASC LIMIT ?",
            (organization_id, facet, FACET_VALUES),
        )
        return [{"value": r["value"], "count": int(r["count"])} for r in rows]

    def _facet(
        self, fld: Field, organization_id: str, where: str, params: list[Any]
    ) -> list[dict[str, Any]]:
        """The most frequent values of ``fld`` among the matches (≤ FACET_VALUES)."""
        if fld.column is not None:
            rows = self.db.rows(
                f"SELECT s.{fld.column} AS value, COUNT(*) AS count FROM sourceimages AS s "
                f"WHERE {where} GROUP BY s.{fld.column} ORDER BY count DESC, value ASC LIMIT ?",
                [*params, FACET_VALUES],
            )
        else:
            rows = self.db.rows(
                "SELECT sv.value_text AS value, COUNT(DISTINCT sv.hash) AS count "
                "FROM sourceimage_values AS sv WHERE sv.organization_id = ? "
                "AND sv.source = 'user' AND sv.field = ? AND sv.type = ? "
                "AND sv.value_text IS NOT NULL "
                f"AND sv.hash IN (SELECT s.hash FROM sourceimages AS s WHERE {where}) "
                "GROUP BY sv.value_text ORDER BY count DESC, value ASC LIMIT ?",
                [organization_id, fld.name, fld.type, *params, FACET_VALUES],
            )
        return [{"value": r["value"], "count": int(r["count"])} for r in rows]
