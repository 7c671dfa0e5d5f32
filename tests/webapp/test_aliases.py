"""Source image aliases: the API (create, get, repoint, delete, cache purge) and
``-_{name}_-`` in render URLs, on both catalog backends (tests/conftest.py BOTH_BACKENDS).

What a user checks: statuses and the error shape, the alias object, and that the render
URL shows the image the alias points to now (decoded pixels), with a cache key (ETag)
that follows the repointing and caching headers short enough for an alias.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pyvips

from tests.conftest import Account
from tests.webapp.test_catalog_contract import _backend, image
from tests.webapp.test_render import upload
from webapp.catalog import Catalog
from webapp.catalog.aliasschema import SQLITE_ALIASES
from webapp.catalog.errors import Conflict, InvalidReference, NotFound
from webapp.catalog.migrations import MIGRATIONS, applied_versions
from webapp.signing import signature

RED = (220, 20, 30)
BLUE = (20, 40, 220)


def solid(colour: tuple[int, int, int], width: int, height: int) -> bytes:
    """A PNG of one colour."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[...] = colour
    return bytes(pyvips.Image.new_from_array(pixels, interpretation="srgb").pngsave_buffer())


def colour_of(body: bytes) -> tuple[int, int, int, tuple[int, ...]]:
    """The mean colour of a rendered image and its (height, width) shape."""
    pixels = pyvips.Image.new_from_buffer(body, "").numpy()
    mean = pixels[..., :3].reshape(-1, 3).mean(axis=0)
    return int(mean[0]), int(mean[1]), int(mean[2]), pixels.shape[:2]


def near(found: tuple[int, int, int, tuple[int, ...]], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 3 for a, b in zip(found[:3], colour, strict=True))


def put_alias(account: Account, name: str, ref: str, *, overwrite: bool = False):  # noqa: ANN201
    query = "?overwrite=true" if overwrite else ""
    return account.request(
        "PUT",
        f"/sourceimages/{account.org}/alias/{name}{query}",
        data=json.dumps({"hash": ref}),
        content_type="application/json",
    )


def error_of(response, status: int) -> str:  # noqa: ANN001
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/json"
    body = response.get_json()
    assert body["error"]["code"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


def test_an_alias_through_its_whole_life(client, account):
    red = upload(account, solid(RED, 80, 40), "red.png")
    blue = upload(account, solid(BLUE, 40, 80), "blue.png")

    made = put_alias(account, "mail_logo", red["hash"])
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.headers["Content-Type"] == "application/json"
    body = made.get_json()
    assert {k: body[k] for k in ("organization", "alias", "hash")} == {
        "organization": "acme",
        "alias": "mail_logo",
        "hash": red["hash"],
    }
    got = account.request("GET", "/sourceimages/acme/alias/mail_logo")
    assert got.status_code == 200 and got.get_json() == body

    url = "/acme/dynamic/resize-width-20/-_mail_logo_-.png"
    first = client.get(url)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.mimetype == "image/png"
    rendered = colour_of(first.data)
    assert near(rendered, RED) and rendered[3] == (10, 20)
    # renders through an alias can be repointed: not cached for a year, not immutable
    assert first.headers["Cache-Control"] == "public, max-age=3600"
    by_hash = client.get(f"/acme/dynamic/resize-width-20/{red['hash']}.png")
    assert by_hash.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert by_hash.headers["ETag"] == first.headers["ETag"]  # the same render, one cache entry
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    # with an SEO slug too
    slugged = client.get("/acme/dynamic/resize-width-20/-_mail_logo_-/footer-logo.png")
    assert slugged.status_code == 200 and near(colour_of(slugged.data), RED)

    # an existing alias is not repointed without overwrite
    error_of(put_alias(account, "mail_logo", blue["hash"]), 409)
    assert near(colour_of(client.get(url).data), RED)

    moved = put_alias(account, "mail_logo", blue["short_hash"], overwrite=True)
    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert moved.get_json()["hash"] == blue["hash"]  # the short hash is stored as the full one
    assert account.request("GET", "/sourceimages/acme/alias/mail_logo").get_json()["hash"] == (
        blue["hash"]
    )
    # the render URL now shows the other image, under another ETag: a cache holding the
    # old one revalidates and gets the new image, not a 304
    second = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200
    assert second.headers["ETag"] != first.headers["ETag"]
    rendered = colour_of(second.data)
    assert near(rendered, BLUE) and rendered[3] == (40, 20)

    assert account.request("DELETE", "/sourceimages/acme/alias/mail_logo").status_code == 204
    error_of(account.request("GET", "/sourceimages/acme/alias/mail_logo"), 404)
    error_of(account.request("DELETE", "/sourceimages/acme/alias/mail_logo"), 404)
    assert "mail_logo" in error_of(client.get(url), 404)
    # the images themselves are untouched
    assert client.get(f"/acme/dynamic/noop/{blue['hash']}.png").status_code == 200


def test_alias_names(client, account):
    red = upload(account, solid(RED, 20, 20), "red.png")["hash"]
    blue = upload(account, solid(BLUE, 20, 20), "blue.png")["hash"]
    for bad in ("my-alias", "a.b", "sp%20ace", "x" * 101, "%C3%A9t%C3%A9", "nul%00x"):
        error_of(put_alias(account, bad, red), 400)
        error_of(account.request("GET", f"/sourceimages/acme/alias/{bad}"), 404)
    # names are case-sensitive and may hold digits and underscores
    assert put_alias(account, "Logo_2", red).status_code == 201
    assert put_alias(account, "logo_2", blue).status_code == 201
    assert put_alias(account, "x" * 100, red).status_code == 201
    assert near(colour_of(client.get("/acme/dynamic/noop/-_Logo_2_-.png").data), RED)
    assert near(colour_of(client.get("/acme/dynamic/noop/-_logo_2_-.png").data), BLUE)
    # render URLs with other characters do not match an alias: 404 in the error shape
    for url in (
        "/acme/dynamic/noop/-_my-alias_-.png",
        "/acme/dynamic/noop/-_Logo 2_-.png",
        "/acme/dynamic/noop/-__-.png",
        "/acme/dynamic/noop/-_unknown_-.png",
        "/acme/dynamic/noop/_Logo_2_.png",
        "/acme/dynamic/noop/-_Logo%002_-.png",
    ):
        error_of(client.get(url), 404)


def test_alias_bodies(client, account):
    red = upload(account, solid(RED, 20, 20), "red.png")
    path = "/sourceimages/acme/alias/logo"
    for body in ("", "not json", "[]", "{}", '{"hash": 5}', '{"hash": "zzzzzzzz"}',
                 '{"hash": "abc"}', '"' + red["hash"] + '"'):  # fmt: skip
        error_of(account.request("PUT", path, data=body, content_type="application/json"), 400)
    # a hash that names no image of the organization
    message = error_of(put_alias(account, "logo", "0" * 40), 400)
    assert "0" * 40 in message
    error_of(account.request("PUT", path, data="x" * 5000), 413)
    # a deleted image cannot be aliased
    assert account.request("DELETE", f"/sourceimages/acme/{red['hash']}").status_code == 204
    error_of(put_alias(account, "logo", red["hash"]), 400)
    error_of(account.request("GET", path), 404)


def test_aliases_belong_to_their_organization(client, account, other_account):
    mine = upload(account, solid(RED, 20, 20), "red.png")["hash"]
    theirs = upload(other_account, solid(BLUE, 20, 20), "blue.png")["hash"]
    assert put_alias(account, "logo", mine).status_code == 201
    # another organization's image cannot be aliased, nor another's alias be read or changed
    error_of(put_alias(account, "other", theirs), 400)
    error_of(other_account.request("GET", "/sourceimages/acme/alias/logo"), 403)
    error_of(other_account.request("DELETE", "/sourceimages/acme/alias/logo"), 403)
    error_of(
        other_account.request(
            "PUT", "/sourceimages/acme/alias/logo?overwrite=true", data=json.dumps({"hash": mine})
        ),
        403,
    )
    error_of(client.get("/sourceimages/acme/alias/logo"), 403)  # no key at all
    # the same name in another organization is another alias
    error_of(client.get("/globex/dynamic/noop/-_logo_-.png"), 404)
    assert put_alias(other_account, "logo", theirs).status_code == 201
    assert near(colour_of(client.get("/globex/dynamic/noop/-_logo_-.png").data), BLUE)
    assert near(colour_of(client.get("/acme/dynamic/noop/-_logo_-.png").data), RED)


def test_alias_of_a_deleted_then_restored_image(client, account):
    red = upload(account, solid(RED, 20, 20), "red.png")["hash"]
    assert put_alias(account, "logo", red).status_code == 201
    assert account.request("DELETE", f"/sourceimages/acme/{red}").status_code == 204
    error_of(client.get("/acme/dynamic/noop/-_logo_-.png"), 404)
    assert account.request("GET", "/sourceimages/acme/alias/logo").get_json()["hash"] == red
    assert account.request("POST", f"/sourceimages/acme/{red}/restore").status_code == 200
    assert near(colour_of(client.get("/acme/dynamic/noop/-_logo_-.png").data), RED)


def test_alias_through_a_stored_stack_and_its_cache_purge(client, account):
    red = upload(account, solid(RED, 60, 30), "red.png")["hash"]
    stack = {"operations": [{"name": "resize", "options": {"width": 30}}]}
    assert account.request("PUT", "/stacks/acme/small", data=json.dumps(stack)).status_code == 201
    assert put_alias(account, "logo", red).status_code == 201
    rendered = client.get("/acme/small/-_logo_-.jpg")
    assert rendered.status_code == 200 and rendered.mimetype == "image/jpeg"
    assert colour_of(rendered.data)[3] == (15, 30)
    iiif = client.get(f"/acme/_iiif/3/{red}/full/max/0/default.png")
    assert iiif.status_code == 200  # purged too, but an alias has no IIIF URL to list
    purged = account.request("DELETE", "/sourceimages/acme/alias/logo/cache")
    assert purged.status_code == 200 and purged.headers["Content-Type"] == "application/json"
    assert purged.get_json() == {"status": "ok", "items": ["/acme/small/-_logo_-.jpg"]}
    again = account.request("DELETE", "/sourceimages/acme/alias/logo/cache")
    assert again.get_json() == {"status": "ok", "items": []}  # nothing cached any more
    error_of(account.request("DELETE", "/sourceimages/acme/alias/nope/cache"), 404)
    error_of(account.request("DELETE", "/sourceimages/acme/alias/bad-name/cache"), 404)


def test_alias_of_a_protected_image_needs_a_signature(client, account):
    secret = upload(
        account, solid(RED, 20, 20), "secret.png", **{"options[0]": '{"protected": true}'}
    )
    assert secret["protected"] is True
    assert put_alias(account, "secret", secret["hash"]).status_code == 201
    path = "/acme/dynamic/noop/-_secret_-.png"
    error_of(client.get(path), 403)
    org = account.request("GET", "/organizations/acme").get_json()
    key = org["signing_keys"][0]["key"]
    signed = client.get(f"{path}?sig={signature(path, key)}")
    assert signed.status_code == 200, signed.get_data(as_text=True)
    assert near(colour_of(signed.data), RED)
    # a signed render of an alias is not cached longer than the alias allows
    assert signed.headers["Cache-Control"] == "public, max-age=3600"


def test_stage_organization_renders_the_aliases_of_its_fallback(client, account):
    from tests.webapp.test_render_fallback import _stage_with_fallback

    red = upload(account, solid(RED, 20, 20), "red.png")["hash"]
    assert put_alias(account, "logo", red).status_code == 201
    stage = _stage_with_fallback(account)
    assert near(colour_of(client.get(f"/{stage.org}/dynamic/noop/-_logo_-.png").data), RED)
    # the stage's own alias of the same name wins
    blue = upload(stage, solid(BLUE, 20, 20), "blue.png")["hash"]
    assert put_alias(stage, "logo", blue).status_code == 201
    assert near(colour_of(client.get(f"/{stage.org}/dynamic/noop/-_logo_-.png").data), BLUE)


def test_alias_max_age_setting(tmp_path: Path, database_url: str):
    from tests.conftest import close_app
    from webapp import create_app

    app = create_app(
        {"data_dir": str(tmp_path / "d"), "database_url": database_url, "alias_max_age": 60}
    )
    try:
        client = app.test_client()
        account = Account(client, "acme", "admin@acme.example")
        red = upload(account, solid(RED, 20, 20), "red.png")["hash"]
        assert put_alias(account, "logo", red).status_code == 201
        answer = client.get("/acme/dynamic/noop/-_logo_-.png")
        assert answer.headers["Cache-Control"] == "public, max-age=60"
    finally:
        close_app(app)


# -- the catalog contract, on each backend -------------------------------------------------


@pytest.fixture
def catalog(catalog_backend: str, tmp_path: Path, request: pytest.FixtureRequest):
    backend = _backend(catalog_backend, tmp_path, request, busy_timeout_ms=2000)
    handle = backend.open()
    yield handle
    handle.close()
    backend.close()


def test_catalog_aliases(catalog: Catalog):
    catalog.accounts.signup("admin@acme.example", "acme")
    org = catalog.accounts.org_by_name("acme")
    assert org is not None
    first, _ = catalog.images.insert(org.id, image(1))
    second, _ = catalog.images.insert(org.id, image(2))
    assert catalog.aliases.get(org.id, "logo") is None
    made = catalog.aliases.put(org.id, "logo", first.hash, overwrite=False)
    assert made.created and made.alias.hash == first.hash
    assert catalog.aliases.get(org.id, "logo") == made.alias
    assert catalog.aliases.get(org.id, "LOGO") is None  # case-sensitive
    with pytest.raises(Conflict):
        catalog.aliases.put(org.id, "logo", second.hash, overwrite=False)
    moved = catalog.aliases.put(org.id, "logo", second.hash, overwrite=True)
    assert not moved.created and catalog.aliases.get(org.id, "logo").hash == second.hash
    with pytest.raises(InvalidReference):
        catalog.aliases.put(org.id, "other", "f" * 40, overwrite=False)
    catalog.images.soft_delete(org.id, [first.hash])
    with pytest.raises(InvalidReference):
        catalog.aliases.put(org.id, "other", first.hash, overwrite=False)
    catalog.aliases.delete(org.id, "logo")
    assert catalog.aliases.get(org.id, "logo") is None
    with pytest.raises(NotFound):
        catalog.aliases.delete(org.id, "logo")
    # a failed unit of work leaves no alias behind
    with pytest.raises(RuntimeError), catalog.unit_of_work():
        catalog.aliases.put(org.id, "rolled_back", second.hash, overwrite=False)
        raise RuntimeError("abort")
    assert catalog.aliases.get(org.id, "rolled_back") is None


def test_migration_3_adds_the_aliases_table(catalog: Catalog):
    dialect = catalog._db.dialect
    assert 3 in {m.version for m in MIGRATIONS[dialect]}
    assert 3 in applied_versions(catalog._db)
    assert catalog._db.has_table("sourceimage_aliases")
    if dialect == "sqlite":
        with catalog.unit_of_work():  # idempotent, as a re-run after a crash would be
            catalog._db.run_script(SQLITE_ALIASES)


def test_render_url_grammar_reads_alias_references():
    from stacks.errors import UrlNotFound
    from stacks.url import alias_name, parse_render_path

    plain = parse_render_path("resize/-_myalias_-.jpg")
    assert (plain.stack, plain.hash, plain.slug) == ("resize", "-_myalias_-", None)
    assert alias_name(plain.hash) == "myalias"
    slugged = parse_render_path("dynamic/resize-width-10/-_My_Logo_2_-/seo-name.png")
    assert (slugged.hash, slugged.slug) == ("-_My_Logo_2_-", "seo-name")
    assert alias_name(slugged.hash) == "My_Logo_2"
    assert alias_name("abcdef") is None
    for bad in ("resize/-_my-alias_-.jpg", "resize/-_my.alias_-.jpg", "resize/-__-.jpg",
                "resize/-_" + "x" * 101 + "_-.jpg"):  # fmt: skip
        with pytest.raises(UrlNotFound):
            parse_render_path(bad)
