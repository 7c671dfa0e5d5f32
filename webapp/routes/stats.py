"""``GET /stats/{org}`` and ``GET /billing/{org}``: what an organization stored and what
its render URLs delivered, per UTC day (docs/stats.md).

Stats need a role that reads the organization (admin, write, read); billing needs admin,
write or ``billing:read``, as rokka documents. Figures come from the catalog's usage
tables (``webapp.catalog.usage``); the answers are built by ``webapp.usagereport``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import Blueprint, Response, request

from webapp.app import catalog
from webapp.auth import require
from webapp.errors import bad_request, json_response
from webapp.usagereport import (
    OrgUsage,
    RangeError,
    billing_answer,
    billing_months,
    stats_answer,
    stats_range,
)

bp = Blueprint("stats", __name__)


def _today() -> date:
    return datetime.now(UTC).date()


def _known_since(created: str, counting_since: str | None, today: date) -> date:
    """The first day whose storage is known: the later of the organization's creation
    and the start of counting (migration 4); days before it are left out."""
    start = date.fromisoformat(created[:10])
    if counting_since is not None:
        start = max(start, date.fromisoformat(counting_since))
    return min(start, today)


@bp.get("/stats/<org>")
def stats(org: str) -> Response:
    """200 rokka's stats of ``org`` for ``from``..``to`` (inclusive, ``YYYY-MM-DD``,
    default the 30 days before today and today); 400 bad dates, 403 no read role."""
    organization = require(org, "org:read")
    today = _today()
    try:
        span = stats_range(request.args.get("from"), request.args.get("to"), today)
    except RangeError as exc:
        raise bad_request(str(exc)) from None
    first, last = span.first.isoformat(), span.last.isoformat()
    usage = catalog().usage
    body = stats_answer(
        span,
        usage.deliveries([organization.id], first, last),
        usage.storage(organization.id, first, last),
        known_since=_known_since(organization.created, usage.counting_since(), today),
        today=today,
    )
    return json_response(body)


@bp.get("/billing/<org>")
def billing(org: str) -> Response:
    """200 the usage of ``org`` and its sub organizations per calendar month (the months
    of ``from`` to ``to``, default this month), without prices; 400 bad dates, 403
    without admin, write or billing:read."""
    require(org, "billing:read")
    today = _today()
    try:
        months = billing_months(request.args.get("from"), request.args.get("to"), today)
    except RangeError as exc:
        raise bad_request(str(exc)) from None
    first, last = months[0].first.isoformat(), months[-1].last.isoformat()
    usage = catalog().usage
    billed = usage.billed_with(org)
    counting_since = usage.counting_since()
    delivered = usage.deliveries([o.id for o in billed], first, last)
    orgs = [
        OrgUsage(
            name=o.name,
            deliveries=[d for d in delivered if d.organization_id == o.id],
            storage=usage.storage(o.id, first, last),
            known_since=_known_since(o.created, counting_since, today),
        )
        for o in billed
    ]
    return json_response(billing_answer(org, months, orgs, today))
