"""Kept decodes (engine/decoded.py): widths of one image served from one kept decode look
like each rendered on its own; the store stays within its bounds; a damaged level file
is never served; processes rendering one image at once share one decode."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import pyvips

import engine
from engine import pipeline
from engine.decoded import KeptDecodes, level_size
from engine.errors import KeptPending, SourceNeeded
from engine.geometry import Size
from engine.probe import inspect
from tests.engine.conftest import decode, jpeg, op, plan
from tests.engine.test_render import _stored_for
from tests.engine.test_shrink_on_load import _detailed

W, H = 2400, 1600
KEY = "a" * 64


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KeptDecodes:
    """The engine keeps decodes in a 64 MiB store for this test (as a render process does)."""
    store = KeptDecodes(str(tmp_path / "kept"), 64 * 2**20)
    monkeypatch.setattr(pipeline, "KEPT", store)
    return store


def _job(store: KeptDecodes, p, source: bytes, key: str = KEY, **kw) -> engine.Rendered:
    """A render as a render process runs it (webapp/renderpool.py): first without the
    source's bytes, then, on SourceNeeded, with them."""
    info = inspect(source)
    try:
        try:
            return engine.render(p, b"", info=info, source_key=key, kept_only=True, **kw)
        except SourceNeeded:
            store.end_job(keep_claim=True)
        return engine.render(p, source, info=info, source_key=key, **kw)
    finally:
        store.end_job(keep_claim=False)


def _close(a_body: bytes, b_body: bytes) -> None:
    a, b = decode(a_body).astype(int), decode(b_body).astype(int)
    assert a.shape == b.shape
    # a kept level (a 1/2 decode, box-shrunk for 1/4 and 1/8) resampled vs. each width
    # decoded at its own DCT shrink: a few levels per pixel on texture this fine
    assert np.abs(a - b).mean() < 6.5
    assert np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))).max() < 1.5


def _files(store: KeptDecodes) -> list[str]:
    return sorted(n for n in os.listdir(store.directory) if n.endswith(".v"))


@pytest.mark.parametrize("orientation", [1, 6])
def test_widths_from_kept_levels_match_their_own_renders(kept, orientation):
    source = jpeg(_stored_for(_detailed(W, H), orientation))
    for width in (200, 1000, 300, 600, 250, 1100):
        p = plan(op("resize", width=width), fmt="jpg")
        shared = _job(kept, p, source)
        alone = engine.render(p, source)  # no key: decoded for this render only
        assert (shared.width, shared.height) == (alone.width, alone.height)
        assert shared.width == width
        _close(shared.body, alone.body)
    # 200 decoded at 1/8 for itself, nothing kept; 1000 came soon after: one decode at
    # 1/2, kept with its 1/4 and 1/8 shrunk from it; the four after it were served
    assert kept.counts() == {"decodes": 2, "kept": 1, "served": 4}
    assert _files(kept) == [f"{KEY}.{s}.v" for s in (2, 4, 8)]


def test_the_first_render_of_an_image_keeps_nothing(kept):
    # (a workload of distinct images must not pay for decodes nobody reads again)
    source = jpeg(_detailed(W, H))
    _job(kept, plan(op("resize", width=200)), source)
    assert _files(kept) == []
    assert kept.counts() == {"decodes": 1, "kept": 0, "served": 0}
    _job(kept, plan(op("resize", width=250)), source)  # the second one keeps
    assert _files(kept) == [f"{KEY}.{s}.v" for s in (2, 4, 8)]
    image = pyvips.Image.new_from_file(os.path.join(kept.directory, f"{KEY}.8.v"))
    assert (image.width, image.height) == (300, 200)


def test_fill_crop_around_a_subject_area_from_kept_levels(kept):
    source = jpeg(_detailed(W, H))
    meta = {"subject_area": {"x": 1700, "y": 300, "width": 160, "height": 160}}
    for side in (120, 500, 180):
        p = plan(
            op("resize", width=side, height=side, mode="fill"),
            op("crop", width=side, height=side),
            fmt="jpg",
        )
        shared = _job(kept, p, source, dynamic_metadata=meta)
        alone = engine.render(p, source, dynamic_metadata=meta)
        assert (shared.width, shared.height) == (alone.width, alone.height) == (side, side)
        _close(shared.body, alone.body)
    assert kept.counts()["served"] >= 1


def test_a_job_without_the_bytes_needs_a_kept_level(kept):
    source = jpeg(_detailed(W, H))
    info = inspect(source)
    small = plan(op("resize", width=200), fmt="jpg")
    with pytest.raises(SourceNeeded):
        engine.render(small, b"", info=info, source_key=KEY, kept_only=True)
    kept.end_job(keep_claim=False)
    _job(kept, small, source)
    served = engine.render(small, b"", info=info, source_key=KEY, kept_only=True)
    _close(served.body, engine.render(small, source).body)
    with pytest.raises(SourceNeeded):  # another image's key never serves this one
        engine.render(small, b"", info=info, source_key="b" * 64, kept_only=True)


def test_only_content_hashes_are_keys(kept):
    source = jpeg(_detailed(600, 400))
    for key in ("a" * 40, "../" + "a" * 61, "A" * 64):
        _job(kept, plan(op("resize", width=100)), source, key=key)
        _job(kept, plan(op("resize", width=300)), source, key=key)
    assert not os.path.exists(kept.directory) or _files(kept) == []


def _damage(path: str, how: str) -> None:
    data = Path(path).read_bytes()
    if how == "truncated":
        Path(path).write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        Path(path).write_bytes(b"\x00" * len(data))
    elif how == "wrong size":  # a whole libvips file, but not the size its name says
        pyvips.Image.black(10, 10, bands=3).cast("uchar").vipssave(path)
    elif how == "wrong format":  # a whole file of the right size, float pixels
        image = pyvips.Image.vipsload(path).cast("float")
        os.unlink(path)
        image.vipssave(path)


@pytest.mark.parametrize("how", ["truncated", "garbage", "wrong size", "wrong format"])
def test_a_damaged_level_is_removed_never_served(kept, how):
    source = jpeg(_detailed(W, H))
    _job(kept, plan(op("resize", width=200)), source)
    _job(kept, plan(op("resize", width=1000)), source)  # levels 1/2, 1/4, 1/8 kept
    for shrink in (2, 4, 8):
        _damage(os.path.join(kept.directory, f"{KEY}.{shrink}.v"), how)
    for shrink in (2, 4, 8):
        need = level_size(Size(W, H), shrink)
        assert kept.find(KEY, Size(W, H), need) is None
    assert _files(kept) == []
    p = plan(op("resize", width=1000), fmt="jpg")
    _close(_job(kept, p, source).body, engine.render(p, source).body)


def _keep_image(store: KeptDecodes, key: str, source: bytes, width: int) -> None:
    """Two renders of ``key`` in a row: its decode for ``width`` is kept."""
    _job(store, plan(op("resize", width=width // 2)), source, key=key)
    _job(store, plan(op("resize", width=width)), source, key=key)


def test_the_bound_holds_least_recently_used_first(tmp_path, monkeypatch):
    store = KeptDecodes(str(tmp_path / "kept"), 3 * 2**20)
    monkeypatch.setattr(pipeline, "KEPT", store)
    source = jpeg(_detailed(1200, 800))  # levels 600x400 + 300x200 + 150x100: ~1 MB
    keys = [f"{i:064x}" for i in range(8)]
    for i, key in enumerate(keys):
        _keep_image(store, key, source, 600)
        used, _ = store.usage()
        assert used <= store.max_bytes
        if i >= 2:
            # kept in use: a find touches it, so the older ones go first
            assert store.find(keys[1], Size(1200, 800), Size(600, 400)) is not None
    names = _files(store)
    assert any(n.startswith(keys[1]) for n in names)
    assert any(n.startswith(keys[-1]) for n in names)
    assert not any(n.startswith(keys[0]) for n in names)


def test_the_file_count_bound_holds(tmp_path, monkeypatch):
    store = KeptDecodes(str(tmp_path / "kept"), 64 * 2**20, max_files=5)
    monkeypatch.setattr(pipeline, "KEPT", store)
    source = jpeg(_detailed(1200, 800))
    for i in range(4):
        _keep_image(store, f"{i:064x}", source, 600)
        assert store.usage()[1] <= 5


def test_an_image_too_large_for_the_bound_is_never_kept(tmp_path, monkeypatch):
    # levels of a 1/2 decode of 2400x1600: 2.9 + 0.7 + 0.2 MB, over a third of 8 MiB
    store = KeptDecodes(str(tmp_path / "kept"), 8 * 2**20)
    monkeypatch.setattr(pipeline, "KEPT", store)
    source = jpeg(_detailed(W, H))
    _job(store, plan(op("resize", width=1000)), source)
    _job(store, plan(op("resize", width=1100)), source)
    assert store.usage() == (0, 0)
    assert store.counts()["served"] == 0


def test_stale_temporary_files_go_and_fresh_ones_count(tmp_path, monkeypatch):
    store = KeptDecodes(str(tmp_path / "kept"), 4 * 2**20)
    monkeypatch.setattr(pipeline, "KEPT", store)
    os.makedirs(store.directory)
    # a writer killed long ago, and one writing now that reserved 3 MiB
    stale = os.path.join(store.directory, f".tmp-1-500000-{'c' * 64}.2.v")
    fresh = os.path.join(store.directory, f".tmp-2-{3 * 2**20}-{'d' * 64}.2.v")
    for path in (stale, fresh):
        Path(path).write_bytes(b"x" * 1000)
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    source = jpeg(_detailed(1200, 800))
    _keep_image(store, KEY, source, 600)  # ~1 MB: fits beside the reservation only
    assert not os.path.exists(stale) and os.path.exists(fresh)
    used, _ = store.usage()
    assert used + 3 * 2**20 - 4096 <= store.max_bytes
    assert _files(store)  # it fit


def _render_in_process(directory: str, width: int, source: bytes, barrier) -> None:
    import engine as child_engine
    from engine import pipeline as child_pipeline

    child_engine.configure(concurrency=1)
    store = KeptDecodes(directory, 64 * 2**20)
    child_pipeline.KEPT = store
    barrier.wait()
    _job(store, plan(op("resize", width=width), fmt="jpg"), source)


def test_processes_rendering_one_image_at_once_share_one_decode(tmp_path):
    directory = str(tmp_path / "kept")
    source = jpeg(_detailed(W, H))
    widths = (200, 300, 450, 600, 800, 1000)
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(len(widths))
    children = [
        spawn.Process(target=_render_in_process, args=(directory, w, source, barrier))
        for w in widths
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    counts = KeptDecodes(directory, 1).counts()
    # Without kept decodes: 6 decodes. The first render seen decodes for itself unless
    # another one claims the image before its bytes come (here they come at once); the
    # next one decodes wide and the rest wait for it: at most 2, whatever the timing.
    assert counts["decodes"] <= 2
    assert counts["decodes"] + counts["served"] == len(widths)


def test_a_waiting_render_takes_its_own_level_not_the_wide_one_published_first(kept):
    # The claimed decode's wide level is published the moment it is whole, its smaller
    # levels after it: a render waiting for the claim takes the level it would have
    # decoded itself (less to resample), once the claim is over any level that serves.
    source = jpeg(_detailed(W, H))
    _keep_image(kept, KEY, source, 1000)
    size, small = Size(W, H), Size(200, 133)
    os.remove(os.path.join(kept.directory, f"{KEY}.8.v"))
    os.remove(os.path.join(kept.directory, f"{KEY}.4.v"))
    assert kept.find(KEY, size, small, ideal=True) is None
    wide = kept.find(KEY, size, small)
    assert wide is not None and (wide.width, wide.height) == (1200, 800)
    assert kept.find(KEY, size, Size(1000, 667), ideal=True) is not None


def test_a_deferred_render_gives_way_while_another_process_decodes(tmp_path, monkeypatch):
    # A render its web worker can wait for (``defer``) answers KeptPending rather than
    # holding its render process while another process makes the level it needs; the web
    # worker waits for that level (``wait``) and sends the job again, which it then serves.
    directory = str(tmp_path / "kept")
    claimer, waiter = (KeptDecodes(directory, 64 * 2**20) for _ in range(2))
    source = jpeg(_detailed(W, H))
    info = inspect(source)
    wide, narrow = plan(op("resize", width=1000), fmt="jpg"), plan(op("resize", width=300))
    monkeypatch.setattr(pipeline, "KEPT", claimer)
    _job(claimer, narrow, source)  # seen: the next render of the image claims it
    with pytest.raises(SourceNeeded):
        engine.render(wide, b"", info=info, source_key=KEY, kept_only=True)
    assert claimer.claimed(KEY) == 2
    waiter.defer = True
    monkeypatch.setattr(pipeline, "KEPT", waiter)
    with pytest.raises(KeptPending) as pending:
        engine.render(narrow, b"", info=info, source_key=KEY, kept_only=True)
    assert pending.value.level == 8  # 300 px wide: the 1/8 level (300x200) serves it
    monkeypatch.setattr(pipeline, "KEPT", claimer)
    decoding = threading.Thread(target=engine.render, args=(wide, source),
                                kwargs={"info": info, "source_key": KEY})  # fmt: skip
    started = time.monotonic()
    decoding.start()
    waiter.wait(KEY, 8)
    assert time.monotonic() - started < 4  # woken by the level, not by the 5 s bound
    assert os.path.exists(os.path.join(directory, f"{KEY}.8.v"))
    decoding.join()
    waiter.defer = False
    monkeypatch.setattr(pipeline, "KEPT", waiter)
    served = engine.render(narrow, b"", info=info, source_key=KEY, kept_only=True)
    _close(served.body, engine.render(narrow, source).body)


def test_a_waiting_web_worker_goes_on_when_the_claim_ends_without_a_level(tmp_path):
    directory = str(tmp_path / "kept")
    claimer, waiter = (KeptDecodes(directory, 64 * 2**20) for _ in range(2))
    size, need = Size(W, H), Size(300, 200)
    assert claimer.prepare(KEY, size, need, 2) is None  # seen
    claimer.end_job(keep_claim=False)
    assert claimer.prepare(KEY, size, need, 2) is None and claimer.claimed(KEY) == 2
    threading.Timer(0.3, claimer.end_job, kwargs={"keep_claim": False}).start()
    started = time.monotonic()
    waiter.wait(KEY, 8)  # the claim's render failed: nothing will be kept
    assert 0.25 < time.monotonic() - started < 4


def test_waiting_web_workers_sleep_until_the_claim_ends(tmp_path):
    # Two renders of one image wait in their web workers (KeptPending) while a claim is
    # live: each is woken by the directory (engine/dirwatch.py), a few times, not every
    # 2 ms (the polling before: ~250 times in 0.5 s), and the two do not wake each other
    # by reading the table of claims.
    directory = str(tmp_path / "kept")
    claimer = KeptDecodes(directory, 64 * 2**20)
    size, need = Size(W, H), Size(300, 200)
    assert claimer.prepare(KEY, size, need, 2) is None  # seen
    claimer.end_job(keep_claim=False)
    assert claimer.prepare(KEY, size, need, 2) is None and claimer.claimed(KEY) == 2
    waited: list[tuple[float, int]] = []  # (when it returned, its voluntary switches)

    def switches() -> int:
        status = Path(f"/proc/self/task/{threading.get_native_id()}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("voluntary_ctxt_switches"))
        return int(line.split()[1])

    def wait(level: int) -> None:
        before = switches()
        KeptDecodes(directory, 64 * 2**20).wait(KEY, level)
        waited.append((time.monotonic(), switches() - before))

    waiters = [threading.Thread(target=wait, args=(level,)) for level in (4, 8)]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.5)
    ended = time.monotonic()
    claimer.end_job(keep_claim=False)
    for waiter in waiters:
        waiter.join()
    assert len(waited) == 2
    for returned, switched in waited:
        assert ended <= returned < ended + 4  # until the claim ended, not the 5 s bound
        assert switched < 50
