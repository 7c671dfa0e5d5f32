"""Kept decodes (engine/decoded.py): the widths of one image rendered from one decode look
like each rendered on its own, and the decode is reused only for what it can serve."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine import pipeline
from engine.decoded import DecodedSources
from engine.errors import SourceNeeded
from engine.probe import inspect
from tests.engine.conftest import decode, jpeg, op, plan
from tests.engine.test_render import _stored_for
from tests.engine.test_shrink_on_load import _detailed

W, H = 2400, 1600
KEY = "a" * 40


@pytest.fixture
def kept(monkeypatch: pytest.MonkeyPatch) -> DecodedSources:
    """The engine keeps decodes in a 64 MiB store for this test (as a render process does)."""
    store = DecodedSources(64 * 2**20)
    monkeypatch.setattr(pipeline, "DECODED", store)
    return store


def _close(a_body: bytes, b_body: bytes) -> None:
    a, b = decode(a_body).astype(int), decode(b_body).astype(int)
    assert a.shape == b.shape
    # one kept decode resampled vs. each width decoded at its own DCT shrink: a few levels
    # per pixel on texture this fine, the picture and its tones the same
    assert np.abs(a - b).mean() < 6.5
    assert np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))).max() < 1.5


@pytest.mark.parametrize("orientation", [1, 6])
def test_widths_from_one_kept_decode_match_their_own_renders(kept, orientation):
    source = jpeg(_stored_for(_detailed(W, H), orientation))
    widths = [200, 1000, 300, 600, 250]
    for width in widths:
        p = plan(op("resize", width=width))
        shared = engine.render(p, source, source_key=KEY)
        alone = engine.render(p, source)  # no key: decoded for this render only
        assert (shared.width, shared.height) == (alone.width, alone.height)
        assert shared.width == width
        _close(shared.body, alone.body)
    # 200 decoded at 1/8 and kept; 1000 needed more: decoded once at 1/2; the rest reused it
    assert kept.hits == 3
    assert kept.used == (W // 2) * (H // 2) * 3


def test_fill_crop_around_a_subject_area_from_a_kept_decode(kept):
    source = jpeg(_detailed(W, H))
    meta = {"subject_area": {"x": 1700, "y": 300, "width": 160, "height": 160}}
    for side in (120, 500, 180):
        p = plan(
            op("resize", width=side, height=side, mode="fill"),
            op("crop", width=side, height=side),
        )
        shared = engine.render(p, source, dynamic_metadata=meta, source_key=KEY)
        alone = engine.render(p, source, dynamic_metadata=meta)
        assert (shared.width, shared.height) == (alone.width, alone.height) == (side, side)
        _close(shared.body, alone.body)
    assert kept.hits >= 1


def test_another_key_or_a_larger_need_decodes_again(kept):
    source = jpeg(_detailed(W, H))
    engine.render(plan(op("resize", width=250)), source, source_key=KEY)
    engine.render(plan(op("resize", width=250)), source, source_key="b" * 40)
    assert kept.hits == 0  # another source's key never serves this one
    engine.render(plan(op("resize", width=250)), source, source_key=KEY)
    assert kept.hits == 1


def test_the_bound_holds():
    store = DecodedSources(3 * 2**20)
    small = pipeline._decode(jpeg(_detailed(600, 400))).copy_memory()  # 0.7 MB
    big = pipeline._decode(jpeg(_detailed(1200, 800))).copy_memory()  # 2.9 MB
    assert store.put("big", big) is big and not store.holds("big")  # over a third
    for key in "abcdef":
        store.put(key, small)
        assert store.used <= store.max_bytes
    assert store.holds("f") and not store.holds("a")  # least recently used out first


def test_nothing_is_kept_without_a_store():
    # outside render processes the store is off (CROPSTACK_RENDER_KEPT_MB unset)
    assert not pipeline.DECODED.enabled
    source = jpeg(_detailed(600, 400))
    out = engine.render(plan(op("resize", width=100)), source, source_key=KEY)
    assert out.width == 100 and pipeline.DECODED.used == 0


def test_a_job_without_the_source_bytes_needs_a_kept_decode(kept):
    source = jpeg(_detailed(W, H))
    small, large = plan(op("resize", width=200)), plan(op("resize", width=1000))
    with pytest.raises(SourceNeeded):
        engine.render(small, b"", info=inspect(source), source_key=KEY, kept_only=True)
    alone = engine.render(small, source)
    engine.render(small, source, source_key=KEY)
    served = engine.render(small, b"", info=inspect(source), source_key=KEY, kept_only=True)
    assert served.body == engine.render(small, source, source_key=KEY).body
    _close(served.body, alone.body)
    with pytest.raises(SourceNeeded):  # the kept 1/8 decode is too small for 1000 px
        engine.render(large, b"", info=inspect(source), source_key=KEY, kept_only=True)
