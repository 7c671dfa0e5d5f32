"""``GET /stats/{org}`` and ``GET /billing/{org}`` through the app (docs/stats.md), on both
catalog backends: real renders counted in memory and flushed (the worker's own flush,
forced here), storage kept by the catalog's triggers, date ranges, rights."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from tests.webapp.images import multipart, png
from webapp.catalog.errors import CatalogUnavailable
from webapp.catalog.migrations import migrate
from webapp.catalog.usage import DeliveryCount, StorageDay
from webapp.settings import load_settings
from webapp.usagecounter import UsageCounter, counter_of
from webapp.usagereport import storage_by_day

STATS_KEYS = {
    "space_in_bytes",
    "number_of_files",
    "bytes_downloaded",
    "bytes_downloaded_external",
    "number_of_renders",
    "number_of_renders_from_cache",
}


@pytest.fixture(autouse=True)
def _flush_only_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """The apps of these tests flush when a test says so (``flush``), never on their own
    in between (set before the ``app`` fixture makes the app)."""
    monkeypatch.setenv("CROPSTACK_STATS_FLUSH_SECONDS", "3600")


def today() -> date:
    return datetime.now(UTC).date()


def stamp(day: date) -> str:
    return f"{day.isoformat()}T00:00:00+00:00"


def upload(member, data: bytes) -> dict[str, Any]:  # noqa: ANN001
    response = member.request("POST", f"/sourceimages/{member.org}", data=multipart(data))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"][0]


def flush(app: Flask) -> None:
    """What a worker's flusher thread does every stats_flush_seconds."""
    counter = counter_of(app)
    assert counter is not None
    counter.flush()
    assert counter.pending() == 0


def stats(member, query: str = "") -> dict[str, Any]:  # noqa: ANN001
    response = member.request("GET", f"/stats/{member.org}{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert set(body) == STATS_KEYS
    return body


def values(series: list[dict[str, Any]]) -> dict[str, int]:
    return {point["timestamp"][:10]: point["value"] for point in series}


def assert_error(response, status: int) -> str:  # noqa: ANN001
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == status
    return error["message"]


def test_renders_cache_hits_and_bytes_are_counted(app: Flask, client, acme) -> None:  # noqa: ANN001
    image = upload(acme, png(64, 48, seed=1))["hash"]
    small = f"/acme/dynamic/resize-width-16/{image}.png"
    large = f"/acme/dynamic/resize-width-40/{image}.jpg"
    sent = 0
    for url in (small, small, small, large):  # a miss, then two hits; another miss
        answer = client.get(url)
        assert answer.status_code == 200
        sent += len(answer.data)
    # Not deliveries: HEAD, a 304, a 404, a render of an unknown organization.
    assert client.head(small).status_code == 200
    etag = answer.headers["ETag"]
    assert client.get(large, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(f"/acme/dynamic/resize-width-16/{'0' * 40}.png").status_code == 404
    assert client.get(f"/nobody/dynamic/resize-width-16/{image}.png").status_code == 404
    assert counter_of(app).pending() == 4
    flush(app)
    body = stats(acme)
    day = today().isoformat()
    assert values(body["number_of_renders"]) == {day: 4}
    assert values(body["number_of_renders_from_cache"]) == {day: 2}
    assert values(body["bytes_downloaded"]) == {day: sent}
    assert body["bytes_downloaded"][0]["unit"] == "Bytes"
    assert body["bytes_downloaded_external"] == []
    # counted in memory until the next flush
    assert client.get(small).status_code == 200
    assert values(stats(acme)["number_of_renders"]) == {day: 4}
    flush(app)
    assert values(stats(acme)["number_of_renders"]) == {day: 5}


def test_the_original_through_source_file_is_counted_with_its_size(app, client, acme):  # noqa: ANN001
    data = png(30, 20, seed=2)
    image = upload(acme, data)["hash"]
    stack = {"operations": [], "options": {"source_file": True}}
    assert acme.request("PUT", "/stacks/acme/orig", json=stack).status_code == 201
    answer = client.get(f"/acme/orig/{image}.png")
    assert answer.status_code == 200 and answer.data == data
    flush(app)
    body = stats(acme)
    assert values(body["bytes_downloaded"]) == {today().isoformat(): len(data)}
    assert values(body["number_of_renders_from_cache"]) == {today().isoformat(): 0}


def test_storage_follows_uploads_deletes_and_restores(acme, globex) -> None:  # noqa: ANN001
    day = today().isoformat()
    empty = stats(acme)
    assert values(empty["space_in_bytes"]) == {day: 0}  # the org is new: only today is known
    assert values(empty["number_of_files"]) == {day: 0}
    first = upload(acme, png(40, 30, seed=3))
    second = upload(acme, png(50, 30, seed=4))
    upload(globex, png(60, 30, seed=5))  # another organization's: not counted here
    assert values(stats(acme)["space_in_bytes"]) == {day: first["size"] + second["size"]}
    assert values(stats(acme)["number_of_files"]) == {day: 2}
    assert acme.request("DELETE", f"/sourceimages/acme/{first['hash']}").status_code == 204
    assert values(stats(acme)["space_in_bytes"]) == {day: second["size"]}
    assert values(stats(acme)["number_of_files"]) == {day: 1}
    assert acme.request("POST", f"/sourceimages/acme/{first['hash']}/restore").status_code == 200
    assert values(stats(acme)["space_in_bytes"]) == {day: first["size"] + second["size"]}
    assert stats(acme)["space_in_bytes"][0]["unit"] == "Bytes"
    upload(acme, png(40, 30, seed=3))  # the same bytes again: the existing image, no new file
    assert values(stats(acme)["number_of_files"]) == {day: 2}


def test_counts_of_several_workers_add_up(app: Flask, acme) -> None:  # noqa: ANN001
    """Two workers (two counters on one catalog) flush counts of the same day: the catalog
    adds them (never overwrites), whichever flushes first."""
    backend = app.extensions["cropstack.catalog"]
    workers = [UsageCounter(backend.open, 3600), UsageCounter(backend.open, 3600)]
    for n, worker in enumerate(workers):
        for _ in range(n + 2):
            worker.count(acme.org_id, 1000, cached=bool(n))
    assert [worker.flush() for worker in workers] == [2, 3]
    workers[0].count(acme.org_id, 7, cached=False)
    for worker in workers:
        worker.close()  # a stopping worker writes what is left
    body = stats(acme)
    day = today().isoformat()
    assert values(body["number_of_renders"]) == {day: 6}
    assert values(body["number_of_renders_from_cache"]) == {day: 3}
    assert values(body["bytes_downloaded"]) == {day: 5007}


def test_a_refused_flush_keeps_its_counts(app: Flask, acme) -> None:  # noqa: ANN001
    """Fault injection at the catalog: while it is unreachable the counts stay in memory;
    the next flush that reaches it writes them all."""
    backend = app.extensions["cropstack.catalog"]
    reachable = False

    def open_catalog():  # noqa: ANN202
        if not reachable:
            raise CatalogUnavailable("connection refused")
        return backend.open()

    worker = UsageCounter(open_catalog, 3600)
    worker.count(acme.org_id, 100, cached=False)
    assert worker.flush() == 0
    worker.count(acme.org_id, 50, cached=True)
    assert worker.pending() == 2
    reachable = True
    assert worker.flush() == 2
    worker.close()
    assert values(stats(acme)["bytes_downloaded"]) == {today().isoformat(): 150}


def add_past_deliveries(app: Flask, org_id: str, days_ago: list[int]) -> None:
    """Deliveries of earlier days, as a flush on those days would have written them."""
    catalog = app.extensions["cropstack.catalog"].open()
    try:
        catalog.usage.add_deliveries(
            [
                DeliveryCount(
                    organization_id=org_id,
                    day=(today() - timedelta(days=n)).isoformat(),
                    renders=n + 1,
                    cache_hits=0,
                    bytes=1000 + n,
                )
                for n in days_ago
            ]
        )
    finally:
        catalog.close()


def test_default_range_is_the_30_days_before_today_and_today(app: Flask, acme) -> None:  # noqa: ANN001
    add_past_deliveries(app, acme.org_id, [0, 1, 30, 31])
    body = stats(acme)
    shown = values(body["bytes_downloaded"])
    assert set(shown) == {(today() - timedelta(days=n)).isoformat() for n in (0, 1, 30)}
    assert shown[(today() - timedelta(days=30)).isoformat()] == 1030
    # newest first, as rokka answers
    assert [p["timestamp"] for p in body["bytes_downloaded"]] == [
        stamp(today() - timedelta(days=n)) for n in (0, 1, 30)
    ]
    # rokka.js sends ?from&to without values when no range is given
    assert stats(acme, "?from&to") == body


def test_from_and_to_are_inclusive(app: Flask, acme) -> None:  # noqa: ANN001
    add_past_deliveries(app, acme.org_id, [2, 3, 4, 5, 6])
    first, last = today() - timedelta(days=5), today() - timedelta(days=3)
    body = stats(acme, f"?from={first}&to={last}")
    assert values(body["number_of_renders"]) == {
        (today() - timedelta(days=n)).isoformat(): n + 1 for n in (3, 4, 5)
    }
    one_day = stats(acme, f"?from={last}&to={last}")
    assert values(one_day["bytes_downloaded"]) == {last.isoformat(): 1003}
    # storage is known from the organization's creation (today) on
    assert one_day["space_in_bytes"] == []
    only_from = stats(acme, f"?from={today() - timedelta(days=2)}")
    assert set(values(only_from["bytes_downloaded"])) == {(today() - timedelta(days=2)).isoformat()}
    # without leading zeros, as rokka's dashboard writes the first of a month
    loose = first.strftime("%Y-%-m-%-d")
    assert stats(acme, f"?from={loose}&to={last}") == body


@pytest.mark.parametrize(
    "query",
    [
        "?from=yesterday",
        "?to=2026-13-01",
        "?from=2026-02-30",
        "?from=20261101",
        "?from=2026-11-01T00:00:00",
        "?to=0000-01-01",
        "?from=9999-12-31&to=9999-12-31",
        "?from=2026-11-02&to=2026-11-01",
        "?from=2020-01-01&to=2026-01-01",
        "?from=%00",
    ],
)
def test_bad_dates_are_400(acme, query: str) -> None:  # noqa: ANN001
    message = assert_error(acme.request("GET", f"/stats/acme{query}"), 400)
    assert "from" in message or "to" in message or "range" in message
    assert_error(acme.request("GET", f"/billing/acme{query}"), 400)


def test_rights(client, acme, member) -> None:  # noqa: ANN001
    for path in ("/stats/acme", "/billing/acme"):
        missing = client.get(path)
        assert_error(missing, 403)
        assert missing.get_json()["error"]["invalid_authentication"] is True
        assert_error(client.get(path, headers={"Api-Key": "x" * 64}), 403)
        assert_error(client.get(path, headers={"Authorization": "Bearer not.a.jwt"}), 401)
    for roles, may_stats, may_billing in [
        (["admin"], True, True),
        (["write"], True, True),
        (["read"], True, False),
        (["billing:read"], False, True),
        (["upload"], False, False),
        (["sourceimages:read"], False, False),
    ]:
        who = member("acme", roles)
        got = who.request("GET", "/stats/acme")
        assert got.status_code == (200 if may_stats else 403), roles
        got = who.request("GET", "/billing/acme")
        assert got.status_code == (200 if may_billing else 403), roles
    outsider = member("globex")
    assert_error(outsider.request("GET", "/stats/acme"), 403)
    assert_error(outsider.request("GET", "/billing/acme"), 403)
    assert_error(acme.request("GET", "/stats/no-such-org"), 403)


def test_a_token_reads_stats(acme) -> None:  # noqa: ANN001
    """The dashboard's way: a JWT from /user/apikeys/token, then the token alone."""
    token = acme.request("GET", "/user/apikeys/token").get_json()["token"]
    answer = acme.client.get("/stats/acme", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert set(answer.get_json()) == STATS_KEYS


def test_billing_months_with_sub_organizations(app: Flask, client, acme, member) -> None:  # noqa: ANN001
    image = upload(acme, png(40, 30, seed=6))
    made = acme.request(
        "PUT",
        "/organizations/acme-stage",
        json={
            "billing_email": "b@acme.example",
            "display_name": "Stage",
            "master_organization": "acme",
        },
    )
    assert made.status_code == 200, made.get_data(as_text=True)
    stage_id = made.get_json()["id"]
    for url in (f"/acme/dynamic/resize-width-10/{image['hash']}.png",) * 2:
        assert client.get(url).status_code == 200
    flush(app)
    add_past_deliveries(app, stage_id, [0])  # 1 render, 1000 bytes, today
    month = today().strftime("%Y-%m")
    # rokka's dashboard asks with the first of the month as from and to
    query = f"?from={today().strftime('%Y-%-m')}-1&to={today().strftime('%Y-%-m')}-1"
    response = acme.request("GET", f"/billing/acme{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert list(body) == ["acme"] and list(body["acme"]) == [month]
    overview = body["acme"][month]
    assert overview["from"] == today().replace(day=1).isoformat()
    assert overview["to"][:7] == month and overview["to"] >= today().isoformat()
    assert set(overview["organizations"]) == {"acme", "acme-stage"}
    acme_usage = overview["organizations"]["acme"]
    assert acme_usage["rendering_transactions"] == {
        "total": {"units_consumed": 2, "unit": "renders"}
    }
    delivered = values(stats(acme)["bytes_downloaded"])[today().isoformat()]
    assert acme_usage["traffic"]["total"] == {"units_consumed": delivered, "unit": "bytes"}
    # storage: the bytes held, averaged over the month's known days (all today here)
    assert acme_usage["storage"]["total"] == {"units_consumed": image["size"], "unit": "bytes"}
    assert acme_usage["traffic_external"]["total"]["units_consumed"] == 0
    combined = overview["combined"]
    assert combined["rendering_transactions"]["total"]["units_consumed"] == 3
    assert combined["traffic"]["total"]["units_consumed"] == delivered + 1000
    assert combined["storage"]["total"]["units_consumed"] == image["size"]
    # no prices: a self-hosted service has no price list
    assert "price" not in response.get_data(as_text=True)
    # the sub organization's own billing shows only itself
    own = acme.request("GET", "/billing/acme-stage").get_json()
    assert set(own["acme-stage"][month]["organizations"]) == {"acme-stage"}
    # by default: this month; a range of months gives one entry per month
    assert list(acme.request("GET", "/billing/acme").get_json()["acme"]) == [month]
    spread = acme.request("GET", "/billing/acme?from=2025-11-15&to=2026-02-01").get_json()
    assert list(spread["acme"]) == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert spread["acme"]["2026-02"]["to"] == "2026-02-28"
    assert_error(acme.request("GET", "/billing/acme?from=2020-01-01&to=2026-01-01"), 400)


def test_images_stored_before_counting_began_are_the_first_days_storage(app: Flask, acme) -> None:  # noqa: ANN001
    """Migration 4 starts each organization's storage from the images it holds."""
    image = upload(acme, png(40, 30, seed=7))
    catalog = app.extensions["cropstack.catalog"].open()
    try:
        with catalog.unit_of_work():
            db = catalog._db
            db.execute("DELETE FROM usage_storage")  # as in a catalog from before version 4
            db.execute("DELETE FROM schema_migrations WHERE version = 4")
        assert migrate(catalog._db) == [4]
    finally:
        catalog.close()
    assert values(stats(acme)["space_in_bytes"]) == {today().isoformat(): image["size"]}
    assert values(stats(acme)["number_of_files"]) == {today().isoformat(): 1}


def test_storage_carries_forward_over_days_without_a_change() -> None:
    def row(day: str, size: int) -> StorageDay:
        return StorageDay(organization_id="o", day=day, bytes=size, files=size // 10)

    rows = [row("2026-01-01", 100), row("2026-01-03", 300)]
    days = [date(2026, 1, d) for d in range(1, 6)]
    held = storage_by_day(rows, days, known_since=date(2026, 1, 2), today=date(2026, 1, 4))
    # day 1: before counting; day 5: after today: both unknown, left out
    assert {d.day: (r.bytes if r else None) for d, r in held.items()} == {
        2: 100,
        3: 300,
        4: 300,
    }
    before_any = storage_by_day([row("2026-01-03", 5)], days, date(2026, 1, 1), date(2026, 1, 5))
    assert before_any[date(2026, 1, 2)] is None and before_any[date(2026, 1, 3)].bytes == 5


@pytest.mark.parametrize("raw", ["0", "0.05", "3601", "nan", "inf", "soon", ""])
def test_a_bad_flush_interval_is_refused_by_name(raw: str) -> None:
    with pytest.raises(ValueError, match="stats_flush_seconds"):
        load_settings({"stats_flush_seconds": raw})
    assert load_settings({"stats_flush_seconds": "0.5"}).stats_flush_seconds == 0.5
