"""The answers of ``GET /stats/{org}`` and ``GET /billing/{org}`` from usage rows.

Pure functions over the catalog's usage records (``webapp.catalog.usage``): date ranges
from the query, rokka's stats series, and the billing overview of a master organization.
Days are UTC calendar days. See docs/stats.md for every field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from webapp.catalog.usage import DeliveryCount, StorageDay

#: Days ``from`` defaults to before ``to`` (rokka: "the past 30 days").
DEFAULT_DAYS_BACK = 30
#: Longest stats range, days (two years): bounds the answer's size.
MAX_STATS_DAYS = 731
#: Most calendar months one billing answer covers.
MAX_BILLING_MONTHS = 24
#: Years a date may name (far from ``date``'s limits, so ranges never overflow).
MIN_YEAR, MAX_YEAR = 1970, 9000

# rokka writes leading zeros; its dashboard asks billing for "2026-11-1": both are taken.
_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")


class RangeError(ValueError):
    """A ``from``/``to`` query the routes answer with 400 (the message says why)."""


@dataclass(frozen=True, slots=True)
class DayRange:
    """Days ``first`` to ``last``, both included."""

    first: date
    last: date

    def days(self) -> list[date]:
        """Every day of the range, oldest first."""
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def parse_day(raw: str, name: str) -> date:
    """The date ``YYYY-MM-DD`` (leading zeros optional) in ``raw``; RangeError if not."""
    found = _DATE.fullmatch(raw.strip())
    if found is None:
        raise RangeError(f"{name} must be a date as YYYY-MM-DD, not {raw[:40]!r}")
    year, month, day = (int(part) for part in found.groups())
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise RangeError(f"{name} must be a date from {MIN_YEAR} to {MAX_YEAR}")
    try:
        return date(year, month, day)
    except ValueError:
        raise RangeError(f"{name} is not a calendar date: {raw[:40]!r}") from None


def _optional_day(raw: str | None, name: str) -> date | None:
    # rokka.js sends `?from&to` (no values) when no range is given: as if absent.
    return None if raw is None or not raw.strip() else parse_day(raw, name)


def stats_range(raw_from: str | None, raw_to: str | None, today: date) -> DayRange:
    """The days of a stats query: ``to`` (default today) and ``from`` (default 30 days
    before ``to``), both included; RangeError when ``from`` is after ``to`` or the range
    is longer than MAX_STATS_DAYS."""
    last = _optional_day(raw_to, "to") or today
    first = _optional_day(raw_from, "from") or last - timedelta(days=DEFAULT_DAYS_BACK)
    if first > last:
        raise RangeError("from must not be after to")
    if (last - first).days + 1 > MAX_STATS_DAYS:
        raise RangeError(f"the range may cover at most {MAX_STATS_DAYS} days")
    return DayRange(first, last)


def billing_months(raw_from: str | None, raw_to: str | None, today: date) -> list[DayRange]:
    """The calendar months a billing query covers: from the month of ``from`` to the
    month of ``to`` (both default to this month), each from its first to its last day;
    RangeError when ``from`` is after ``to`` or past MAX_BILLING_MONTHS months."""
    last = _optional_day(raw_to, "to") or today
    first = _optional_day(raw_from, "from") or last
    if first > last:
        raise RangeError("from must not be after to")
    months: list[DayRange] = []
    start = first.replace(day=1)
    while start <= last:
        following = (start + timedelta(days=32)).replace(day=1)
        months.append(DayRange(start, following - timedelta(days=1)))
        if len(months) > MAX_BILLING_MONTHS:
            raise RangeError(f"a billing query may cover at most {MAX_BILLING_MONTHS} months")
        start = following
    return months


def storage_by_day(
    rows: Sequence[StorageDay], days: Sequence[date], known_since: date, today: date
) -> dict[date, StorageDay | None]:
    """Each of ``days`` from ``known_since`` to ``today`` with the storage that held at its
    end: the latest row on or before it (rows oldest first), None when the organization
    had no row yet (it held nothing). Days outside that span are left out (unknown)."""
    found: dict[date, StorageDay | None] = {}
    current: StorageDay | None = None
    index = 0
    for day in days:
        while index < len(rows) and date.fromisoformat(rows[index].day) <= day:
            current = rows[index]
            index += 1
        if known_since <= day <= today:
            found[day] = current
    return found


def _point(day: date | str, value: int, unit: str | None) -> dict[str, Any]:
    stamp = day if isinstance(day, str) else day.isoformat()
    return {"timestamp": f"{stamp}T00:00:00+00:00", "value": value, "unit": unit}


def stats_answer(
    span: DayRange,
    deliveries: Sequence[DeliveryCount],
    storage: Sequence[StorageDay],
    *,
    known_since: date,
    today: date,
) -> dict[str, Any]:
    """rokka's stats body, newest day first as rokka answers: ``space_in_bytes`` and
    ``number_of_files`` for every known day, ``bytes_downloaded`` for days with
    deliveries, ``bytes_downloaded_external`` empty; plus cropstack's
    ``number_of_renders`` and ``number_of_renders_from_cache``."""
    held = storage_by_day(storage, span.days(), known_since, today)
    newest_first = sorted(held, reverse=True)
    delivered = sorted(deliveries, key=lambda d: d.day, reverse=True)
    return {
        "space_in_bytes": [
            _point(d, held[d].bytes if held[d] else 0, "Bytes") for d in newest_first
        ],
        "number_of_files": [_point(d, held[d].files if held[d] else 0, None) for d in newest_first],
        "bytes_downloaded": [_point(d.day, d.bytes, "Bytes") for d in delivered],
        # rokka's traffic of external (remote) origins; cropstack tells no such traffic apart
        "bytes_downloaded_external": [],
        "number_of_renders": [_point(d.day, d.renders, None) for d in delivered],
        "number_of_renders_from_cache": [_point(d.day, d.cache_hits, None) for d in delivered],
    }


@dataclass(frozen=True, slots=True)
class OrgUsage:
    """One billed organization's rows over the billing months."""

    name: str
    deliveries: Sequence[DeliveryCount]
    storage: Sequence[StorageDay]
    known_since: date


def _position(units: int, unit: str) -> dict[str, Any]:
    # The dashboard's position shape, without prices: cropstack has no price list.
    return {"total": {"units_consumed": units, "unit": unit}}


def _month_positions(org: OrgUsage, month: DayRange, today: date) -> dict[str, int]:
    first, last = month.first.isoformat(), month.last.isoformat()
    inside = [d for d in org.deliveries if first <= d.day <= last]
    held = storage_by_day(org.storage, month.days(), org.known_since, today)
    stored = [row.bytes if row else 0 for row in held.values()]
    return {
        "storage": round(sum(stored) / len(stored)) if stored else 0,
        "traffic": sum(d.bytes for d in inside),
        "traffic_external": 0,
        "rendering_transactions": sum(d.renders for d in inside),
    }


_UNITS = {
    "storage": "bytes",
    "traffic": "bytes",
    "traffic_external": "bytes",
    "rendering_transactions": "renders",
}


def billing_answer(
    master: str, months: Sequence[DayRange], orgs: Sequence[OrgUsage], today: date
) -> dict[str, Any]:
    """The billing overview in the shape rokka's dashboard reads, without prices:
    ``{master: {"YYYY-MM": {"from", "to", "organizations": {name: positions},
    "combined": positions}}}``. Positions: ``storage`` (average bytes held over the
    month's known days up to today), ``traffic`` (bytes delivered), ``traffic_external``
    (0), ``rendering_transactions`` (render answers), each ``{"total": {"units_consumed",
    "unit"}}``."""
    answer: dict[str, Any] = {}
    for month in months:
        per_org = {org.name: _month_positions(org, month, today) for org in orgs}
        combined = {k: sum(figures[k] for figures in per_org.values()) for k in _UNITS}
        answer[month.first.strftime("%Y-%m")] = {
            "from": month.first.isoformat(),
            "to": month.last.isoformat(),
            "organizations": {
                name: {k: _position(v, _UNITS[k]) for k, v in figures.items()}
                for name, figures in per_org.items()
            },
            "combined": {k: _position(v, _UNITS[k]) for k, v in combined.items()},
        }
    return {master: answer}
