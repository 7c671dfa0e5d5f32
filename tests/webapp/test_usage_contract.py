"""The usage group of the catalog contract (``Catalog.usage``, migration 4), on every
backend (tests/conftest.py ``BOTH_BACKENDS``): deliveries added (never overwritten) by
concurrent writers, storage kept by the triggers on every image write, day ranges."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from tests.webapp.test_catalog_contract import backend, catalog, image, org  # noqa: F401
from webapp.catalog import Catalog, CatalogBackend
from webapp.catalog.records import Organization
from webapp.catalog.usage import DeliveryCount, StorageDay


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def delivery(org_id: str, day: str, renders: int = 1, hits: int = 0, size: int = 10):
    return DeliveryCount(
        organization_id=org_id, day=day, renders=renders, cache_hits=hits, bytes=size
    )


def storage_now(catalog: Catalog, org_id: str) -> tuple[int, int]:  # noqa: F811
    """(bytes, files) held now: today's row, else the latest before it, else nothing."""
    rows = catalog.usage.storage(org_id, today(), today())
    if not rows:
        return 0, 0
    assert rows[-1].day <= today()
    return rows[-1].bytes, rows[-1].files


def test_deliveries_add_up_and_ranges_are_inclusive(catalog: Catalog, org: Organization):  # noqa: F811
    usage = catalog.usage
    usage.add_deliveries([delivery(org.id, "2026-01-01", 2, 1, 100)])
    usage.add_deliveries(
        [delivery(org.id, "2026-01-01", 3, 2, 50), delivery(org.id, "2026-01-03", 1, 0, 7)]
    )
    usage.add_deliveries([delivery("another-org", "2026-01-02", 9, 9, 9)])
    assert usage.deliveries([org.id], "2026-01-01", "2026-01-03") == [
        delivery(org.id, "2026-01-01", 5, 3, 150),
        delivery(org.id, "2026-01-03", 1, 0, 7),
    ]
    assert usage.deliveries([org.id], "2026-01-02", "2026-01-03") == [
        delivery(org.id, "2026-01-03", 1, 0, 7)
    ]
    both = usage.deliveries([org.id, "another-org"], "2026-01-01", "2026-12-31")
    assert {(d.organization_id, d.day, d.renders) for d in both} == {
        (org.id, "2026-01-01", 5),
        (org.id, "2026-01-03", 1),
        ("another-org", "2026-01-02", 9),
    }
    assert usage.deliveries([], "2026-01-01", "2026-12-31") == []


def test_concurrent_flushes_add_up(backend: CatalogBackend, org: Organization):  # noqa: F811
    """Eight workers flush ten times each at once: every count arrives."""

    def flush() -> None:
        for _ in range(10):
            handle = backend.open()
            try:
                handle.usage.add_deliveries([delivery(org.id, "2026-02-01", 1, 1, 3)])
            finally:
                handle.close()

    threads = [threading.Thread(target=flush) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handle = backend.open()
    try:
        assert handle.usage.deliveries([org.id], "2026-02-01", "2026-02-01") == [
            delivery(org.id, "2026-02-01", 80, 80, 240)
        ]
    finally:
        handle.close()


def test_storage_follows_every_image_write(catalog: Catalog, org: Organization):  # noqa: F811
    images = catalog.images
    assert storage_now(catalog, org.id) == (0, 0)  # a new organization has no row yet
    first, _ = images.insert(org.id, image(1))  # size 101
    assert [r.day for r in catalog.usage.storage(org.id, today(), today())] == [today()]
    second, _ = images.insert(org.id, image(2))  # size 102
    assert storage_now(catalog, org.id) == (203, 2)
    images.insert(org.id, image(1))  # the same image again: nothing new
    assert storage_now(catalog, org.id) == (203, 2)
    assert images.soft_delete(org.id, [first.hash]) == 1
    assert storage_now(catalog, org.id) == (102, 1)
    images.restore(org.id, first.hash)
    assert storage_now(catalog, org.id) == (203, 2)
    images.soft_delete(org.id, [first.hash])
    images.revive(org.id, image(1, name="again.png"))
    assert storage_now(catalog, org.id) == (203, 2)
    images.soft_delete(org.id, [second.hash])
    assert images.purge_expired("9999-01-01T00:00:00+00:00") == 1  # already not counted
    assert storage_now(catalog, org.id) == (101, 1)
    owner = catalog.accounts.memberships(org.id)[0].user_id
    other = catalog.accounts.create_org(
        "other", display_name="o", billing_email="o@o.example", master_organization=None,
        admin_user_id=owner,
    )  # fmt: skip
    assert images.copy_to(first, other.id, overwrite=False) == "created"
    assert images.copy_to(first, other.id, overwrite=True) == "overwritten"
    assert storage_now(catalog, other.id) == (101, 1)
    assert storage_now(catalog, org.id) == (101, 1)


def test_storage_rows_of_a_range_come_with_the_row_before(catalog: Catalog, org: Organization):  # noqa: F811
    with catalog.unit_of_work():
        for day, size in (("2026-01-01", 10), ("2026-01-05", 50), ("2026-01-09", 90)):
            catalog._db.execute(
                "INSERT INTO usage_storage (organization_id, day, bytes, files) "
                "VALUES (?, ?, ?, ?)",
                (org.id, day, size, 1),
            )
    rows = catalog.usage.storage(org.id, "2026-01-03", "2026-01-09")
    assert rows == [
        StorageDay(organization_id=org.id, day="2026-01-01", bytes=10, files=1),
        StorageDay(organization_id=org.id, day="2026-01-05", bytes=50, files=1),
        StorageDay(organization_id=org.id, day="2026-01-09", bytes=90, files=1),
    ]
    inside = catalog.usage.storage(org.id, "2026-01-06", "2026-01-08")
    assert [r.day for r in inside] == ["2026-01-05"]  # no row inside: just the one before
    # a new image today starts from the latest row (2026-01-09, 90 bytes)
    catalog.images.insert(org.id, image(5))  # size 105
    assert storage_now(catalog, org.id) == (195, 2)


def test_counting_since_and_billed_organizations(catalog: Catalog, org: Organization):  # noqa: F811
    assert catalog.usage.counting_since() == today()
    owner = catalog.accounts.memberships(org.id)[0].user_id
    for name, master in (("acme-stage", "acme"), ("zeta", None)):
        catalog.accounts.create_org(
            name, display_name=name, billing_email="b@acme.example", master_organization=master,
            admin_user_id=owner,
        )  # fmt: skip
    assert [o.name for o in catalog.usage.billed_with("acme")] == ["acme", "acme-stage"]
    assert [o.name for o in catalog.usage.billed_with("acme-stage")] == ["acme-stage"]
    assert catalog.usage.billed_with("nobody") == []
