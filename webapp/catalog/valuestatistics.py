"""Schema version 9 (PostgreSQL): statistics on how the search index's columns go together
(issue 14, docs/search.md "On PostgreSQL").

A filter on one metadata value (``user:array:labels=river``) reads the rows of
``sourceimage_values`` with one organization, source, field, type and value. PostgreSQL
estimates that row count by multiplying each column's own selectivity, as if the five
were independent; they are not (a field has one type and a handful of values, an
organization's rows are most of the table), so at 100,000 images it expected 183 rows for
a label nearly 10,000 images carry. With so few expected, it read every match and sorted
them for the first page (33-66 ms), where walking the images newest first and probing
each for the value stops after ~900 (8 ms). Extended statistics (most common value
combinations, functional dependencies) over the five columns give it the real count.

SQLite plans this query well without them (~10 ms): PostgreSQL's only, like 5 and 8.
"""

from __future__ import annotations

PG_VALUE_STATISTICS = """
CREATE STATISTICS IF NOT EXISTS sourceimage_values_together (mcv, dependencies)
    ON organization_id, source, field, type, value_text FROM sourceimage_values;
ANALYZE sourceimage_values;
"""
