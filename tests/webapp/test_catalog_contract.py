"""The catalog contract: one suite, run against every backend (SQLite and a real
PostgreSQL, see tests/conftest.py ``BOTH_BACKENDS``), through the interface routes use.

What a backend must do: records in, records out; the rules (limits, last admin, locks,
basestacks) enforced inside the transaction that writes, also under concurrent writers;
a unit of work that commits all or nothing; busy writers answered ``CatalogBusy``;
migrations that apply once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from webapp.catalog import Catalog, CatalogBackend, SqliteBackend
from webapp.catalog.errors import (
    CatalogBusy,
    Conflict,
    ImageLocked,
    InvalidReference,
    NotFound,
    Refused,
)
from webapp.catalog.migrations import MIGRATIONS, applied_versions
from webapp.catalog.records import NewImage, Organization, SourceImage
from webapp.search import parse_search


def _backend(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, **kw: int
) -> CatalogBackend:
    if kind == "sqlite":
        made: CatalogBackend = SqliteBackend(tmp_path / "catalog.db", **kw)
    else:
        from webapp.catalog.postgres import PostgresBackend

        made = PostgresBackend(request.getfixturevalue("postgres").clean_database(), **kw)
    made.migrate()
    return made


def _same_catalog(
    backend: CatalogBackend, *, busy_timeout_ms: int, pool_size: int = 8
) -> CatalogBackend:
    """Another backend on the catalog of ``backend``, with another busy timeout (and,
    on PostgreSQL, pool size)."""
    if isinstance(backend, SqliteBackend):
        return SqliteBackend(backend.path, busy_timeout_ms=busy_timeout_ms)
    from webapp.catalog.postgres import PostgresBackend

    assert isinstance(backend, PostgresBackend)
    return PostgresBackend(backend.url, busy_timeout_ms=busy_timeout_ms, pool_size=pool_size)


@pytest.fixture
def backend(catalog_backend: str, tmp_path: Path, request: pytest.FixtureRequest):
    made = _backend(catalog_backend, tmp_path, request, busy_timeout_ms=2000)
    yield made
    made.close()


@pytest.fixture
def catalog(backend: CatalogBackend) -> Iterator[Catalog]:
    handle = backend.open()
    yield handle
    handle.close()


@pytest.fixture
def org(catalog: Catalog) -> Organization:
    catalog.accounts.signup("admin@acme.example", "acme")
    found = catalog.accounts.org_by_name("acme")
    assert found is not None
    return found


def image(n: int, **changes: object) -> NewImage:
    values: dict[str, object] = {
        "hash": f"{n:040x}",
        "binary_hash": f"{n:040x}",
        "blob_key": f"{n:064x}",
        "name": f"image-{n}.png",
        "format": "png",
        "mimetype": "image/png",
        "size": 100 + n,
        "width": 10,
        "height": 20,
        "user_metadata": {},
        "dynamic_metadata": {},
        "static_metadata": {},
        "opaque": True,
        "animated": False,
        "protected": False,
    }
    values.update(changes)
    return NewImage(**values)  # type: ignore[arg-type]


# -- migrations ---------------------------------------------------------------------------


def test_migrations_apply_once(backend: CatalogBackend, catalog: Catalog):
    assert backend.migrate() == []
    latest = {m.version for m in MIGRATIONS[catalog._db.dialect]}
    assert applied_versions(catalog._db) == latest


# -- accounts -----------------------------------------------------------------------------


def test_signup_makes_an_admin_and_names_are_unique(catalog: Catalog, org: Organization):
    assert org.name == "acme" and org.master_organization == "acme"
    assert len(org.signing_keys) == 1 and len(org.signing_keys[0].key) == 64
    members = catalog.accounts.memberships(org.id)
    assert [m.roles for m in members] == [("admin",)]
    owner = members[0].user_id
    assert [k.id for k in catalog.accounts.keys_of(owner)]
    with pytest.raises(Conflict):
        catalog.accounts.signup("other@acme.example", "acme")
    with pytest.raises(Conflict):
        catalog.accounts.create_org(
            "acme", display_name="x", billing_email="x@x.example", master_organization=None,
            admin_user_id=owner,
        )  # fmt: skip


def test_keys_limit_and_current_key(catalog: Catalog, org: Organization):
    owner = catalog.accounts.memberships(org.id)[0].user_id
    made = [catalog.accounts.add_key(owner, f"k{i}") for i in range(4)]
    assert [k.comment for k in catalog.accounts.keys_of(owner)][1:] == ["k0", "k1", "k2", "k3"]
    with pytest.raises(Conflict):
        catalog.accounts.add_key(owner, "sixth")
    with pytest.raises(Conflict):
        catalog.accounts.delete_key(owner, made[0].id, current_key_id=made[0].id)
    assert catalog.accounts.delete_key(owner, made[0].id, current_key_id=made[1].id)
    assert not catalog.accounts.delete_key(owner, made[0].id, current_key_id=made[1].id)
    from webapp.auth import hash_key

    found = catalog.accounts.key_by_hash(hash_key(made[1].api_key))
    assert found is not None and found.user_id == owner and found.id == made[1].id


def test_last_admin_stays(catalog: Catalog, org: Organization):
    admin = catalog.accounts.memberships(org.id)[0].user_id
    with pytest.raises(Conflict):
        catalog.accounts.put_membership(org.id, admin, ["read"], None, acting_user_id=admin)
    with pytest.raises(Conflict):
        catalog.accounts.delete_membership(org.id, admin)
    with pytest.raises(NotFound):
        catalog.accounts.delete_membership(org.id, "no-such-user")
    with pytest.raises(NotFound):
        catalog.accounts.put_membership(
            org.id, "no-such-user", ["read"], None, acting_user_id=admin
        )
    second = catalog.accounts.create_member_user(org.id, "b@acme.example", ["admin"], "two")
    assert second.membership.comment == "two" and second.api_key
    outcome, membership = catalog.accounts.put_membership(
        org.id, admin, ["read"], None, acting_user_id=admin
    )
    assert outcome == "updated" and membership is not None and membership.roles == ("read",)
    assert catalog.accounts.put_membership(org.id, admin, ["read"], None, acting_user_id=admin) == (
        "unchanged",
        None,
    )


def test_options_and_signing_keys(catalog: Catalog, org: Organization):
    updated = catalog.accounts.set_options(org.id, {"a": 1, "b": True})
    assert updated.options == {"a": 1, "b": True}
    assert catalog.accounts.set_options(org.id, {"a": None}).options == {"b": True}
    keys = org.signing_keys
    for _ in range(4):
        keys = catalog.accounts.add_signing_key(org.id)
    assert len(keys) == 5 and keys[-1] == org.signing_keys[0]
    with pytest.raises(Conflict):
        catalog.accounts.add_signing_key(org.id)
    assert catalog.accounts.drop_signing_keys(org.id, 1) == keys[:1]
    found = catalog.accounts.membership_of("acme", catalog.accounts.memberships(org.id)[0].user_id)
    assert found is not None and found[0].signing_keys == keys[:1] and found[1] == ("admin",)


def test_provision_seeds_a_member(catalog: Catalog):
    made = catalog.accounts.provision("fresh", "u@fresh.example", ["read"], "s" * 64)
    assert catalog.accounts.memberships(made.organization_id)[0].roles == ("read",)
    again = catalog.accounts.provision("fresh", "v@fresh.example", ["write"], "t" * 64)
    assert again.organization_id == made.organization_id


# -- images -------------------------------------------------------------------------------


def test_insert_is_idempotent_and_short_hashes_extend(catalog: Catalog, org: Organization):
    first, created = catalog.images.insert(org.id, image(0xABCDEF12))
    assert created and isinstance(first, SourceImage) and first.short_hash == first.hash[:6]
    again, created = catalog.images.insert(org.id, image(0xABCDEF12, name="other.png"))
    assert not created and again == first
    twin_hash = first.hash[:8] + "9" + "0" * 31
    twin, _ = catalog.images.insert(org.id, image(1, hash=twin_hash))
    assert twin.short_hash == twin_hash[:9]
    assert catalog.images.find(org.id, first.short_hash) == first
    assert catalog.images.find(org.id, first.hash[:7]) is None  # ambiguous
    assert catalog.images.find(org.id, twin_hash[:9]) == twin
    assert catalog.images.get_exact(org.id, "f" * 40) is None


def test_locks_are_checked_where_they_write(catalog: Catalog, org: Organization):
    one, _ = catalog.images.insert(org.id, image(1), locked=True)
    two, _ = catalog.images.insert(org.id, image(2))
    with pytest.raises(ImageLocked):
        catalog.images.soft_delete(org.id, [two.hash, one.hash])
    assert catalog.images.get_exact(org.id, two.hash).deleted_at is None  # nothing deleted
    with pytest.raises(ImageLocked):
        catalog.images.update(org.id, one.hash, unless_locked=True, user_metadata={"a": "b"})
    unlocked = catalog.images.update(org.id, one.hash, locked=False)
    assert not unlocked.locked
    changed = catalog.images.update(org.id, one.hash, unless_locked=True, user_metadata={"a": "b"})
    assert changed.user_metadata == {"a": "b"}


def test_delete_restore_revive_purge(catalog: Catalog, org: Organization):
    first, _ = catalog.images.insert(org.id, image(3, user_metadata={"k": "v"}))
    assert catalog.images.soft_delete(org.id, [first.hash]) == 1
    assert catalog.images.find(org.id, first.hash) is None
    assert catalog.images.find(org.id, first.hash, deleted_since="2000-01-01") is not None
    assert catalog.images.live_by_binary_hash(org.id, first.binary_hash) == []
    assert catalog.images.blob_referenced(first.blob_key)  # deleted rows still need it
    restored = catalog.images.restore(org.id, first.hash)
    assert restored.deleted_at is None and restored.user_metadata == {"k": "v"}
    catalog.images.soft_delete(org.id, [first.hash])
    revived = catalog.images.revive(org.id, image(3, name="new.png"))
    assert revived.deleted_at is None and revived.name == "new.png" and revived.user_metadata == {}
    catalog.images.soft_delete(org.id, [first.hash])
    assert catalog.images.purge_expired("9999-01-01T00:00:00+00:00") == 1
    assert catalog.images.get_exact(org.id, first.hash) is None
    assert not catalog.images.blob_referenced(first.blob_key)


def test_copy_outcomes(catalog: Catalog, org: Organization):
    owner = catalog.accounts.memberships(org.id)[0].user_id
    other = catalog.accounts.create_org(
        "other", display_name="o", billing_email="o@o.example", master_organization=None,
        admin_user_id=owner,
    )  # fmt: skip
    source, _ = catalog.images.insert(org.id, image(4, user_metadata={"x": "1"}))
    assert catalog.images.copy_to(source, other.id, overwrite=False) == "created"
    assert catalog.images.copy_to(source, other.id, overwrite=False) == "exists"
    assert catalog.images.copy_to(source, other.id, overwrite=True) == "overwritten"
    catalog.images.update(other.id, source.hash, locked=True)
    with pytest.raises(ImageLocked):
        catalog.images.copy_to(source, other.id, overwrite=True)
    copied = catalog.images.get_exact(other.id, source.hash)
    assert copied.user_metadata == {"x": "1"} and copied.created == source.created


def test_unit_of_work_commits_all_or_nothing(backend: CatalogBackend, catalog: Catalog, org):
    with pytest.raises(RuntimeError):
        with catalog.unit_of_work():
            catalog.images.insert(org.id, image(5))
            catalog.stacks.put(
                org.id, "s", {"operations": [], "stack_options": {}}, overwrite=False
            )
            raise RuntimeError("abandon")
    other = backend.open()
    try:
        assert other.images.get_exact(org.id, image(5).hash) is None
        assert other.stacks.get(org.id, "s") is None
        with catalog.unit_of_work():
            catalog.images.insert(org.id, image(5))
            catalog.images.soft_delete(org.id, [image(5).hash])
        assert other.images.get_exact(org.id, image(5).hash).deleted_at is not None
    finally:
        other.close()


# -- stacks -------------------------------------------------------------------------------

PLAIN = {"operations": [{"name": "resize", "options": {"width": 10}}], "stack_options": {}}


def test_stack_rules(catalog: Catalog, org: Organization):
    made = catalog.stacks.put(org.id, "base", PLAIN, overwrite=False)
    assert made.created and made.stack.definition == PLAIN
    with pytest.raises(Conflict):
        catalog.stacks.put(org.id, "base", PLAIN, overwrite=False)
    derived = {**PLAIN, "stack_options": {"basestack": "base"}}
    with pytest.raises(InvalidReference) as missing:
        catalog.stacks.put(org.id, "child", {**PLAIN, "stack_options": {"basestack": "nope"}},
                           overwrite=False)  # fmt: skip
    assert missing.value.parameter == "basestack"
    assert catalog.stacks.put(org.id, "child", derived, overwrite=False).created
    assert catalog.stacks.names_using_basestack(org.id, "base") == ["child"]
    with pytest.raises(Conflict):
        catalog.stacks.delete(org.id, "base")
    protected = {**PLAIN, "stack_options": {"protected": True}}
    with pytest.raises(Refused):
        catalog.stacks.put(org.id, "base", protected, overwrite=True)
    assert not catalog.stacks.put(org.id, "base", PLAIN, overwrite=True).created
    catalog.stacks.delete(org.id, "child")
    catalog.stacks.delete(org.id, "base")
    with pytest.raises(NotFound):
        catalog.stacks.delete(org.id, "base")
    assert catalog.stacks.names(org.id) == []


def test_old_preview_stacks_are_purged(catalog: Catalog, org: Organization):
    """rokka deletes ``_preview*`` stacks a few days after they were saved; only those, only
    old ones, and never one another stack still builds on."""
    from webapp.catalog import now_iso

    for name in ("_preview", "_preview_hero", "_previewing", "xpreview", "real"):
        catalog.stacks.put(org.id, name, PLAIN, overwrite=False)
    built_on = {**PLAIN, "stack_options": {"basestack": "_preview_hero"}}
    catalog.stacks.put(org.id, "child", built_on, overwrite=False)
    # nothing was saved before 2000
    assert catalog.stacks.purge_previews("2000-01-01T00:00:00+00:00") == 0
    # all were saved before a time in the future: the unused previews go
    assert catalog.stacks.purge_previews("2999-01-01T00:00:00+00:00") == 2
    assert catalog.stacks.names(org.id) == ["_preview_hero", "child", "real", "xpreview"]
    # the age counts from the last save
    catalog.stacks.put(org.id, "_preview", PLAIN, overwrite=False)
    saved = catalog.stacks.get(org.id, "_preview").created
    assert catalog.stacks.purge_previews(saved) == 0
    assert saved <= now_iso()


def test_basestack_cannot_vanish_under_a_concurrent_save(backend: CatalogBackend, org):
    """Saving a stack on a basestack and deleting that basestack, at once from two
    handles, never leaves a stack whose basestack is gone."""
    setup = backend.open()
    try:
        for round_ in range(6):
            setup.stacks.put(org.id, "base", PLAIN, overwrite=True)
            errors: list[BaseException] = []

            def save(n: int = round_, errors: list[BaseException] = errors) -> None:
                handle = backend.open()
                try:
                    child = {**PLAIN, "stack_options": {"basestack": "base"}}
                    handle.stacks.put(org.id, f"child{n}", child, overwrite=False)
                except InvalidReference as exc:
                    errors.append(exc)
                finally:
                    handle.close()

            def delete(errors: list[BaseException] = errors) -> None:
                handle = backend.open()
                try:
                    handle.stacks.delete(org.id, "base")
                except Conflict as exc:
                    errors.append(exc)
                finally:
                    handle.close()

            threads = [threading.Thread(target=save), threading.Thread(target=delete)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(errors) == 1  # exactly one of the two lost
            names = setup.stacks.names(org.id)
            for name in names:
                basestack = (
                    setup.stacks.get(org.id, name).definition["stack_options"].get("basestack")
                )
                assert basestack is None or basestack in names
            for name in names:
                if name.startswith("child"):
                    setup.stacks.delete(org.id, name)
    finally:
        setup.close()


# -- concurrency --------------------------------------------------------------------------


def test_concurrent_writers_keep_the_key_limit(backend: CatalogBackend, org: Organization):
    """Ten handles on ten threads add keys for one user at once: exactly the limit's
    worth succeed (the count and the insert are one transaction)."""
    setup = backend.open()
    owner = setup.accounts.memberships(org.id)[0].user_id
    setup.close()
    outcomes: list[str] = []
    lock = threading.Lock()

    def add() -> None:
        handle = backend.open()
        try:
            handle.accounts.add_key(owner, None)
            result = "ok"
        except Conflict:
            result = "conflict"
        finally:
            handle.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=add) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 6 + ["ok"] * 4  # 1 signup key + 4


def test_a_held_write_lock_makes_other_writers_busy(backend: CatalogBackend, org):
    slow = _same_catalog(backend, busy_timeout_ms=300)
    holder, waiter = slow.open(), slow.open()
    try:
        with holder.unit_of_work():
            holder.images.insert(org.id, image(6))
            with pytest.raises(CatalogBusy):
                waiter.images.insert(org.id, image(7))
            # Reads do not wait for the writer, and do not see its uncommitted row.
            assert waiter.images.get_exact(org.id, image(6).hash) is None
        assert waiter.images.get_exact(org.id, image(6).hash) is not None
    finally:
        holder.close()
        waiter.close()
        slow.close()


def test_open_handles_hold_no_connection(backend: CatalogBackend, org: Organization):
    """Handles kept open (a request that renders for seconds keeps its handle) do not
    hold database connections: with a pool of one, many open handles that have read
    still let another handle read and write."""
    small = _same_catalog(backend, busy_timeout_ms=1000, pool_size=1)
    idle = [small.open() for _ in range(3)]
    try:
        for handle in idle:
            assert handle.accounts.org_by_name("acme") is not None
        worker = small.open()
        worker.images.insert(org.id, image(8))
        assert worker.images.get_exact(org.id, image(8).hash) is not None
        worker.close()
    finally:
        for handle in idle:
            handle.close()
        small.close()


# -- search -------------------------------------------------------------------------------


def test_search_filters_words_facets_and_cursors(catalog: Catalog, org: Organization):
    labels = ["lake", "city", "lake"]
    for n in range(1, 4):
        catalog.images.insert(
            org.id,
            image(
                n,
                name=f"Quiet Lakes {n}.png" if n != 2 else "busy street.png",
                user_metadata={"array:labels": [labels[n - 1]], "int:n": n},
                dynamic_metadata={"subject_area": {"x": n, "y": 0, "width": 5, "height": 5}},
            ),
        )
    catalog.images.soft_delete(org.id, [image(3).hash])

    def search(*params: tuple[str, str]):
        return catalog.image_search.search(
            parse_search(list(params)), org.id, restore_cutoff="2000-01-01T00:00:00+00:00"
        )

    assert search(("name_text", "lake")).total == 1  # stemmed, live only
    assert search(("name_text", "quie*")).total == 1
    assert search(("user:int:n", "[2,}"), ("deleted", "true")).total == 1
    assert search(("dynamic:int:subject_area:x", "2")).total == 1
    faceted = search(("facets", "user:array:labels,format"), ("limit", "0"))
    assert faceted.total == 2
    assert faceted.facets == {
        "user:array:labels": [{"value": "city", "count": 1}, {"value": "lake", "count": 1}],
        "format": [{"value": "png", "count": 2}],
    }
    first = search(("sort", "user:int:n desc"), ("limit", "1"))
    assert [i.hash for i in first.images] == [image(2).hash] and first.more
    from webapp.search import encode_cursor

    cursor = encode_cursor("user:int:n:desc", first.keys[-1])
    rest = search(("sort", "user:int:n desc"), ("limit", "1"), ("offset", cursor))
    assert [i.hash for i in rest.images] == [image(1).hash] and not rest.more


def test_unfiltered_totals_and_facets_follow_every_write(catalog: Catalog, org: Organization):
    """Unfiltered searches answer totals and facets from maintained counts; after every
    kind of write they equal what counting the images (a filter every image passes) says."""
    owner = catalog.accounts.memberships(org.id)[0].user_id
    other = catalog.accounts.create_org(
        "counted", display_name="c", billing_email="c@c.example", master_organization=None,
        admin_user_id=owner,
    )  # fmt: skip
    images = catalog.images
    steps = [
        lambda: images.insert(org.id, image(11, user_metadata={"color": "red"})),
        lambda: images.insert(
            org.id,
            image(
                12,
                format="jpg",
                mimetype="image/jpeg",
                user_metadata={"array:labels": ["a", "b", "a"]},
            ),
        ),  # fmt: skip
        lambda: images.insert(org.id, image(13, user_metadata={"color": "red", "int:n": 3})),
        lambda: images.update(org.id, image(11).hash, user_metadata={"color": "blue"}),
        lambda: images.soft_delete(org.id, [image(13).hash]),
        lambda: images.restore(org.id, image(13).hash),
        lambda: images.soft_delete(org.id, [image(12).hash]),
        lambda: images.revive(org.id, image(12, user_metadata={"array:labels": ["c"]})),
        lambda: images.copy_to(images.get_exact(org.id, image(11).hash), other.id, overwrite=False),
        lambda: images.soft_delete(org.id, [image(11).hash]),
        lambda: images.purge_expired("9999-01-01T00:00:00+00:00"),
    ]
    facets = ("facets", "user:str:color,user:array:labels,format,mimetype")

    def answer(*params: tuple[str, str]) -> tuple[int, dict]:
        page = catalog.image_search.search(
            parse_search([facets, ("limit", "0"), *params]), org.id, restore_cutoff="2000"
        )
        return page.total, page.facets

    for step in steps:
        step()
        assert answer() == answer(("size", "[0,}"))
    total, counted = answer()
    assert total == 2
    assert counted["user:array:labels"] == [{"value": "c", "count": 1}]
    assert counted["user:str:color"] == [{"value": "red", "count": 1}]
