"""The render cache: keys, purges, path safety, the bound, LRU and concurrency."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import threading
import time

import pytest

from tests.webapp.storagefaults import inject_disk_full
from webapp.rendercache import BLOCK, CacheKey, RenderCache, footprint


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


# -- the bound, LRU eviction and concurrency ------------------------------------------------


def _body(i: int, size: int) -> bytes:
    return (f"{i}:".encode() * size)[:size]


def _entries_bytes(root) -> int:
    """Accounted bytes of the finished entries on disk (temporary files left out); the
    tree may change while it is walked (os.walk skips vanished directories)."""
    total = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            if directory == str(root) or name.startswith("."):
                continue
            try:
                total += footprint(os.stat(os.path.join(directory, name)).st_size)
            except FileNotFoundError:
                continue
    return total


def test_many_distinct_entries_stay_under_the_bound(tmp_path):
    bound = 100 * 1024
    cache = RenderCache(tmp_path, max_bytes=bound)
    stored = 0
    for i in range(200):  # 200 x 8 KiB = 1.6 MiB written into a 100 KiB cache
        stored += cache.put(_key(plan=f"p{i}", image=f"{i % 7:040x}"), _body(i, 8000))
        assert _entries_bytes(tmp_path) <= bound
    assert stored > 150  # evictions made room; only a few puts met a running eviction
    assert cache.usage() <= bound
    assert cache.get(_key(plan="p199", image=f"{199 % 7:040x}")) == _body(199, 8000)


def test_least_recently_read_entries_are_evicted_first(tmp_path):
    cache = RenderCache(tmp_path, max_bytes=40 * BLOCK)  # 40 one-block entries fill it
    keys = [_key(plan=f"old{i}") for i in range(40)]
    for i, key in enumerate(keys):
        assert cache.put(key, _body(i, 100))
    # Age them: entry i was last used 1000 - i seconds ago (the first is the oldest).
    now = time.time()
    for i, key in enumerate(keys):
        os.utime(cache._path(key), (now - 1000 + i, now - 1000 + i))
    assert cache.get(keys[0]) == _body(0, 100)  # a read makes the oldest the newest
    for i in range(20):  # half the bound again: the oldest half must go
        assert cache.put(_key(plan=f"new{i}"), _body(i, 100))
    assert cache.get(keys[0]) == _body(0, 100), "the recently read entry was evicted"
    assert cache.get(keys[1]) is None, "an unread older entry should have gone first"
    assert cache.usage() <= cache.max_bytes


def test_entries_too_large_for_the_bound_and_a_zero_bound(tmp_path):
    cache = RenderCache(tmp_path / "a", max_bytes=100 * BLOCK)
    assert not cache.put(_key(), b"x" * (11 * BLOCK))  # over a tenth of the bound
    assert cache.put(_key(), b"x" * (10 * BLOCK))
    off = RenderCache(tmp_path / "b", max_bytes=0)
    assert not off.put(_key(), b"x")
    assert off.get(_key()) is None


def test_existing_entries_count_when_the_counter_is_new(tmp_path):
    big = RenderCache(tmp_path, max_bytes=1 << 30)
    for i in range(50):
        big.put(_key(plan=f"p{i}"), _body(i, 8000))
    (tmp_path / ".usage").unlink()  # e.g. an older version's cache, or the file removed
    small = RenderCache(tmp_path, max_bytes=100 * 1024)
    assert small.put(_key(plan="new"), b"n" * 100)
    assert small.usage() <= 100 * 1024


def test_stale_temporary_files_are_removed_by_an_eviction(tmp_path):
    cache = RenderCache(tmp_path, max_bytes=20 * BLOCK)
    cache.put(_key(), b"a")
    stale = cache._path(_key()).with_name(f".{'b' * 64}.jpg.0123456789ab.{BLOCK}.tmp")
    stale.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    for i in range(60):
        cache.put(_key(plan=f"p{i}"), _body(i, 3000))
    assert not stale.exists()


def _writer(root: str, bound: int, worker: int, count: int) -> None:
    """One process of the concurrency test: writes, reads and purges its own entries."""
    rng = random.Random(worker)
    cache = RenderCache(root, max_bytes=bound)
    for i in range(count):
        image = f"{rng.randrange(12):040x}"
        key = CacheKey.build(
            org_id="org1", stack=f"s{rng.randrange(3)}", image_hash=image,
            plan=f"w{worker}-{i}", ext="png",
        )  # fmt: skip
        body = _body(i, rng.randrange(2000, 9000))
        if cache.put(key, body):
            got = cache.get(key)
            assert got in (None, body)  # evicted meanwhile, or whole: never partial
        if rng.random() < 0.02:
            cache.purge_image("org1", image)
        if rng.random() < 0.01:
            cache.purge_stack("org1", "s0")


def test_several_processes_write_read_evict_and_purge_at_once(tmp_path):
    bound = 200 * 1024
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_writer, args=(str(tmp_path), bound, n, 250)) for n in range(4)
    ]
    for process in workers:
        process.start()
    peak = 0
    while any(p.is_alive() for p in workers):
        peak = max(peak, _entries_bytes(tmp_path))
        time.sleep(0.01)
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    # A walk is not a snapshot: an entry counted early may be evicted before one written
    # later is counted, so samples taken during the run get a little slack. The state
    # after the run is exact.
    assert peak <= bound * 1.1
    assert _entries_bytes(tmp_path) <= bound
    assert RenderCache(tmp_path, max_bytes=bound).usage() <= bound
    assert _entries_bytes(tmp_path) > 0


def test_threads_share_one_cache(tmp_path):
    bound = 120 * 1024
    cache = RenderCache(tmp_path, max_bytes=bound)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(120):
                key = _key(plan=f"t{n}-{i}", image=f"{i % 5:040x}")
                body = _body(i, 5000 + n)
                if cache.put(key, body):
                    assert cache.get(key) in (None, body)
        except BaseException as exc:  # surfaced below; a thread cannot fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.usage() <= bound


def test_a_failed_write_is_not_raised_and_pauses_writes(tmp_path, monkeypatch, caplog):
    cache = RenderCache(tmp_path, max_bytes=1 << 20)
    assert cache.put(_key(plan="before"), b"kept")
    inject_disk_full(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="webapp.rendercache"):
        assert not cache.put(_key(plan="during"), b"x" * 100)
    assert "disk full" in caplog.text
    monkeypatch.undo()
    assert not cache.put(_key(plan="paused"), b"y")  # paused for PAUSE_S after a failure
    assert cache.get(_key(plan="before")) == b"kept"
    assert not [p for p in tmp_path.rglob(".*.tmp")]  # no temporary file left behind
