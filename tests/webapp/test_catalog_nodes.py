"""The catalog parts several nodes share, on both backends (tests/conftest.py
``BOTH_BACKENDS``): purge generations and shared secrets, seen through a second backend
on the same catalog as another node sees them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from webapp.catalog import Catalog, CatalogBackend, SqliteBackend


def _backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> CatalogBackend:
    if kind == "sqlite":
        return SqliteBackend(tmp_path / "catalog.db")
    from webapp.catalog.postgres import PostgresBackend

    return PostgresBackend(request.getfixturevalue("postgres").clean_database())


@pytest.fixture
def nodes(
    catalog_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Catalog, Catalog]]:
    """Two handles on one catalog through two backends, as two nodes hold them."""
    first = _backend(catalog_backend, tmp_path, request)
    second = _backend(catalog_backend, tmp_path, request)  # the same file or database
    first.migrate()
    a, b = first.open(), second.open()
    yield a, b
    a.close(), b.close()
    first.close(), second.close()


@pytest.fixture
def org_id(nodes: tuple[Catalog, Catalog]) -> str:
    nodes[0].accounts.signup("admin@acme.example", "acme")
    found = nodes[0].accounts.org_by_name("acme")
    assert found is not None
    return found.id


def test_no_purge_no_generation(nodes: tuple[Catalog, Catalog], org_id: str) -> None:
    assert nodes[1].purges.generation(org_id, "thumb", "a" * 40) == ""


def test_each_purge_changes_the_generations_it_covers(
    nodes: tuple[Catalog, Catalog], org_id: str
) -> None:
    a, b = nodes
    image, other = "a" * 40, "b" * 40
    seen = {b.purges.generation(org_id, "thumb", image)}

    a.purges.purge_stack(org_id, "thumb")
    after_stack = b.purges.generation(org_id, "thumb", image)
    assert after_stack not in seen
    seen.add(after_stack)
    # another stack and another image are not covered by it
    assert b.purges.generation(org_id, "other", image) == ""
    assert b.purges.generation(org_id, "thumb", other) == after_stack

    a.purges.purge_stack(org_id, "thumb")  # again: a new generation, not the same one
    again = b.purges.generation(org_id, "thumb", image)
    assert again not in seen
    seen.add(again)

    a.purges.purge_image(org_id, image)
    after_image = b.purges.generation(org_id, "thumb", image)
    assert after_image not in seen
    seen.add(after_image)
    assert b.purges.generation(org_id, "other", image) != ""  # the image, through any stack
    assert b.purges.generation(org_id, "thumb", other) == again

    a.purges.purge_stack(org_id, "*")  # every stack, dynamic included
    for stack in ("thumb", "other", "dynamic"):
        assert b.purges.generation(org_id, stack, other) not in ("", again)
    assert b.purges.generation(org_id, "thumb", image) not in seen


def test_generations_are_per_organization(nodes: tuple[Catalog, Catalog], org_id: str) -> None:
    a, b = nodes
    a.accounts.signup("admin@globex.example", "globex")
    globex = a.accounts.org_by_name("globex")
    assert globex is not None
    a.purges.purge_stack(org_id, "*")
    a.purges.purge_image(org_id, "a" * 40)
    assert b.purges.generation(globex.id, "thumb", "a" * 40) == ""


def test_concurrent_purges_are_all_counted(nodes: tuple[Catalog, Catalog], org_id: str) -> None:
    a, b = nodes
    errors: list[BaseException] = []

    def purge(handle: Catalog) -> None:
        try:
            for _ in range(10):
                handle.purges.purge_stack(org_id, "thumb")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=purge, args=(h,)) for h in (a, b)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert not errors
    assert a.purges.generation(org_id, "thumb", "c" * 40) == "stack:thumb:20"


def test_a_shared_secret_is_made_once(nodes: tuple[Catalog, Catalog]) -> None:
    a, b = nodes
    assert b.secrets.get("token_secret") is None
    made = a.secrets.get_or_make("token_secret", lambda: "first")
    assert made == "first"
    # the other node reads the one stored, never its own
    assert b.secrets.get_or_make("token_secret", lambda: "second") == "first"
    assert b.secrets.get("token_secret") == "first"
    assert b.secrets.get("other") is None
