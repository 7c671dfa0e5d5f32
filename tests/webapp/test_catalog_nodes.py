"""The catalog parts several nodes share, on both backends (tests/conftest.py
``BOTH_BACKENDS``): purge generations, shared secrets and blob deletions, seen through a
second backend on the same catalog as another node sees them; and an upload that meets a
collection deleting its blob."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Account
from webapp.app import catalog
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


# -- blob deletions ---------------------------------------------------------------------------


def test_a_blob_a_row_references_is_never_marked(
    nodes: tuple[Catalog, Catalog], org_id: str
) -> None:
    from tests.webapp.test_catalog_contract import image

    a, b = nodes
    a.images.insert(org_id, image(7))
    key = image(7).blob_key
    assert not b.blob_deletions.begin(key)
    assert a.blob_deletions.in_progress([key]) == []
    a.images.soft_delete(org_id, [image(7).hash])  # restorable: still referenced
    assert not b.blob_deletions.begin(key)


def test_a_mark_is_seen_by_every_node_until_it_ends(nodes: tuple[Catalog, Catalog]) -> None:
    a, b = nodes
    key, other = "1" * 64, "2" * 64
    assert a.blob_deletions.begin(key)
    assert b.blob_deletions.in_progress([other, key]) == [key]
    a.blob_deletions.end(key)
    assert b.blob_deletions.in_progress([other, key]) == []


def test_marks_of_a_killed_collection_go_stale(
    nodes: tuple[Catalog, Catalog], monkeypatch: pytest.MonkeyPatch
) -> None:
    import webapp.catalog.blobdeletions as marks

    a, b = nodes
    key = "3" * 64
    assert a.blob_deletions.begin(key)
    later = time.time() + marks.STALE_S + 1
    monkeypatch.setattr(marks.time, "time", lambda: later)
    assert b.blob_deletions.in_progress([key]) == []
    assert b.blob_deletions.clear_stale() == 1
    monkeypatch.undo()
    assert a.blob_deletions.in_progress([key]) == []


def test_an_upload_waits_for_the_delete_of_its_blob_and_writes_it_again(
    app: Flask, client: FlaskClient, account: Account
) -> None:
    """An upload that commits while a collection deletes its blob (marked in the
    catalog) commits only after the delete, with its original written again."""
    from tests.webapp.images import png

    data = png(40, 30, seed=11)
    key = hashlib.sha256(data).hexdigest()
    store = app.extensions["cropstack.blobs"]
    store.put(data)
    with app.app_context():
        assert catalog().blob_deletions.begin(key)
    answers: list[Any] = []
    upload = threading.Thread(
        target=lambda: answers.append(
            account.request(
                "POST", "/sourceimages/acme", data={"filedata": (io.BytesIO(data), "x.png")}
            )
        )
    )
    upload.start()
    time.sleep(1.0)
    assert upload.is_alive()  # waiting for the collection
    assert store.delete(key)  # the collection's delete
    with app.app_context():
        catalog().blob_deletions.end(key)
    upload.join(30)
    assert answers and answers[0].status_code == 200, answers
    image_hash = answers[0].get_json()["items"][0]["hash"]
    assert store.get(key) == data
    rendered = client.get(f"/acme/dynamic/noop/{image_hash}.png")
    assert rendered.status_code == 200
