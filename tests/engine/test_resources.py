"""Referenced sources travel to a render process as frames of their own and come back whole."""

from __future__ import annotations

import os

import engine
from engine import worker
from engine.resources import join, split
from tests.engine.conftest import png, scene


def _resources() -> dict[str, engine.Resource]:
    image = png(scene(20, 10))
    info = engine.inspect(image)
    return {
        "abcdef": engine.Resource(image, info, {"subject_area": {"x": 1, "y": 2}}),
        "0123456789": engine.Resource(b"\x00\x01font bytes"),
    }


def test_split_then_join_gives_the_resources_back():
    resources = _resources()
    described, blobs = split(resources)
    assert all(r.data == b"" for r in described.values())
    assert join(described, blobs) == resources


def test_resources_cross_the_pipe_as_frames():
    resources = _resources()
    described, blobs = split(resources)
    read, write = os.pipe()
    try:
        worker.send_frame(write, worker.dumps("render", {"resources": described}))
        for blob in blobs:
            worker.send_frame(write, blob)
        kind, payload = worker.loads(worker.recv_frame(read))
        frames = [worker.recv_frame(read) for _ in range(worker.resource_frames(payload))]
    finally:
        os.close(read)
        os.close(write)
    assert kind == "render"
    assert join(payload["resources"], frames) == resources
