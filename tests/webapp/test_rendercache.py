"""The render cache: keys, purges, and path safety."""

from __future__ import annotations

import pytest

from webapp.rendercache import CacheKey, RenderCache


def _key(stack: str = "thumb", image: str = "a" * 40, plan: str = "p1") -> CacheKey:
    return CacheKey.build(org_id="org1", stack=stack, image_hash=image, plan=plan, ext="jpg")


def test_roundtrip_and_plan_changes_key(tmp_path):
    cache = RenderCache(tmp_path)
    cache.put(_key(), b"one")
    assert cache.get(_key()) == b"one"
    assert cache.get(_key(plan="p2")) is None
    assert _key().etag != _key(plan="p2").etag


def test_purge_stack_and_image(tmp_path):
    cache = RenderCache(tmp_path)
    cache.put(_key("thumb", "a" * 40), b"1")
    cache.put(_key("thumb", "b" * 40), b"2")
    cache.put(_key("big", "a" * 40), b"3")
    cache.purge_image("org1", "a" * 40)
    assert cache.get(_key("thumb", "a" * 40)) is None
    assert cache.get(_key("big", "a" * 40)) is None
    assert cache.get(_key("thumb", "b" * 40)) == b"2"
    cache.purge_stack("org1", "thumb")
    assert cache.get(_key("thumb", "b" * 40)) is None


@pytest.mark.parametrize("stack", ["..", "a/b", ""])
def test_unsafe_parts_rejected(tmp_path, stack):
    with pytest.raises(ValueError):
        RenderCache(tmp_path).put(_key(stack=stack), b"x")
