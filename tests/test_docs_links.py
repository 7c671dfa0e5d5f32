"""docs/ and the README point only at files that exist in this repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
# [text](target): a target without a scheme or an anchor-only link is a repository path.
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _relative_targets(text: str) -> list[str]:
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        if not re.fullmatch(r"[A-Za-z0-9_./#-]+", target):
            continue  # not a link: a grammar written in brackets (docs/stacks.md)
        targets.append(target.split("#", 1)[0])
    return targets


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path):
    text = page.read_text()
    missing = [t for t in _relative_targets(text) if not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_points_outside_the_repository(page: Path):
    text = page.read_text()
    assert "shared/" not in text, f"{page.name} points at ../shared, which users do not have"
    assert "../" not in "".join(_relative_targets(text))
