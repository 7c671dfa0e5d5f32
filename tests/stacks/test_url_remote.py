"""Render URLs naming a remote image, ``-{path or full URL}-`` in place of the hash."""

from __future__ import annotations

import pytest

from stacks.errors import UrlNotFound
from stacks.url import MAX_REMOTE, parse_render_path


@pytest.mark.parametrize(
    ("path", "remote", "slug", "fmt"),
    [
        # the reference's examples (rokka-api.md §1.1)
        ("somestack/-2017/06/Relax.jpg-/seo.jpg", "2017/06/Relax.jpg", "seo", "jpg"),
        ("somestack/-https://host/x.jpg-/seo.jpg", "https://host/x.jpg", "seo", "jpg"),
        ("dynamic/-https://h.example/a/b.png-.webp", "https://h.example/a/b.png", None, "webp"),
        ("s/-x-.png", "x", None, "png"),
        ("s/-photo with space.jpg-.png", "photo with space.jpg", None, "png"),
        # a path that holds dashes, and a slug after it
        ("s/-a-b/c-d.jpg-/my-slug.jpg", "a-b/c-d.jpg", "my-slug", "jpg"),
        # a hex-looking directory inside the remote URL is not the hash
        ("s/-https://h/abcdef/x.jpg-.jpg", "https://h/abcdef/x.jpg", None, "jpg"),
    ],
)
def test_remote_forms(path: str, remote: str, slug: str | None, fmt: str) -> None:
    req = parse_render_path(path)
    assert (req.remote, req.slug, req.output_format, req.hash) == (remote, slug, fmt, "")


def test_overrides_before_the_remote_image_still_apply() -> None:
    req = parse_render_path("dynamic/resize-width-100--o-dpr-2/-https://h/x.jpg-.png")
    assert req.remote == "https://h/x.jpg"
    assert [op.name for op in req.operations] == ["resize"]
    assert req.options == {"dpr": 2}


def test_aliases_are_not_remote_paths() -> None:
    for path in ("s/-_logo_-.jpg", "s/-_logo_-/-slug-.jpg"):
        req = parse_render_path(path)
        assert req.remote is None and req.hash == "-_logo_-"


@pytest.mark.parametrize(
    "path",
    [
        "s/abcdef/-slug.jpg",  # a slug that starts with a dash, after a hash
        "s/abcdef/-slug-.jpg",
    ],
)
def test_hash_urls_with_dashed_slugs_stay_hash_urls(path: str) -> None:
    req = parse_render_path(path)
    assert req.hash == "abcdef" and req.remote is None


@pytest.mark.parametrize(
    "path",
    [
        "s/-_my-alias_-.jpg",  # an (invalid) alias, not a remote path
        "s/-x.jpg",  # no closing dash
        "s/--.jpg",
        "s/-" + "a" * (MAX_REMOTE + 1) + "-.jpg",
        "s/-a\x01b-.jpg",
        "s/-https://h/../etc/passwd-.jpg",
    ],
)
def test_bad_remote_forms_are_404(path: str) -> None:
    with pytest.raises(UrlNotFound):
        parse_render_path(path)
