"""Steady-state memory of every server process after a mixed workload, with each measure
that returns memory switched on one after another, in one run.

Run: ``flock /work/notes/bench.lock .venv/bin/python -m pytest benchmarks/test_memory_bench.py -s``
(about 5 minutes; ``MEMORY_VARIANTS`` picks variants by name, comma-separated).

Each variant is a fresh ``cropstack serve --workers 2`` (render cache off, so every render
runs) that gets the same workload from 2 client threads, ``MEMORY_ROUNDS`` (default 2)
times over, shuffled:

- 10 renders of 24 MP JPEGs (6000x4000, 6.3 MB) to JPEG, 300-1900 px wide;
- 5 renders of a 2400x1600 PNG (11 MB) to PNG, 600-1600 px;
- 4 renders of a 30-frame 320x320 animated GIF to 160 px GIF;
- 5 renders of the 24 MP JPEGs to AVIF, 500-1000 px;
- 6 uploads: three distinct 24 MP JPEGs and three distinct 11 MB PNGs;

then nothing for ``SETTLE_S`` seconds, then ``STEADY_S`` seconds of samples. Every web
worker and render process is sampled every 0.25 s from /proc: RSS (VmRSS), and at the end
PSS and USS (private pages) from /proc/<pid>/smaps_rollup. Printed per process: peak
(VmHWM, which also catches a process recycled mid-run) and steady state (median of the
last samples); per web worker: alone, and with its render processes (RSS sum and PSS
sum: the render processes share libvips' and Python's pages, which RSS counts in each).

The variants (environment of the server; docs/settings.md):

- ``glibc``: nothing returns memory: glibc's default arenas and mmap threshold, no trim,
  render processes never recycled for their size. (main before this change was this plus
  2 arenas in the render processes only, and recycling at 256 MiB: the master's
  ``MALLOC_ARENA_MAX`` was set after it started, so neither it nor its forked web workers
  ever read it);
- ``recycle``: ``glibc`` + render processes replaced when above 128 MiB after a job;
- ``arenas``: 2 arenas in every process (``malloc_arena_max``, set with mallopt in the
  master before the fork, and in the render processes' environment);
- ``mmap``: ``arenas`` + a fixed 1 MiB mmap threshold (``malloc_mmap_threshold_kb``);
- ``default``: ``mmap`` + ``malloc_trim`` + recycling at 256 MiB: the shipped defaults.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from benchmarks.test_load import Call, send, sign_up, uploaded_hash
from tests.realserver import descendants, memory_kb, running_server

SETTLE_S = float(os.environ.get("MEMORY_SETTLE_S", "3"))
STEADY_S = float(os.environ.get("MEMORY_STEADY_S", "3"))
SAMPLE_S = 0.25
ROUNDS = int(os.environ.get("MEMORY_ROUNDS", "2"))
OFF = {
    "CROPSTACK_MALLOC_ARENA_MAX": "0",
    "CROPSTACK_MALLOC_MMAP_THRESHOLD_KB": "0",
    "CROPSTACK_MALLOC_TRIM": "false",
    "CROPSTACK_RENDER_RECYCLE_MB": "0",
}
VARIANTS: dict[str, dict[str, str]] = {
    "glibc": OFF,
    "recycle": {**OFF, "CROPSTACK_RENDER_RECYCLE_MB": "128"},
    "arenas": {**OFF, "CROPSTACK_MALLOC_ARENA_MAX": "2"},
    "mmap": {
        **OFF,
        "CROPSTACK_MALLOC_ARENA_MAX": "2",
        "CROPSTACK_MALLOC_MMAP_THRESHOLD_KB": "1024",
    },
    "default": {},
}


def _sources() -> dict[str, Any]:
    import pyvips

    from benchmarks.test_w1_bench import sources

    jpegs = [data for data, *_ in sources(5)]
    noise = pyvips.Image.gaussnoise(2400, 1600, sigma=30, mean=128)
    pngs = []
    for i in range(4):
        image = noise.bandjoin([noise.rot180(), noise.fliphor()]).linear([1, 1, 1], [i, 0, -i])
        pngs.append(bytes(image.cast("uchar").copy(interpretation="srgb").pngsave_buffer()))
    frames = [
        (pyvips.Image.black(320, 320, bands=3) + [i * 8 % 256, 128, 255 - i * 8 % 256])
        .draw_circle([255, 255, 255], 160 + i * 4, 160, 40, fill=True)
        .cast("uchar")
        for i in range(30)
    ]
    animation = pyvips.Image.arrayjoin(frames, across=1).copy(interpretation="srgb")
    animation = animation.copy()
    animation.set_type(pyvips.GValue.gint_type, "page-height", 320)
    animation.set_type(pyvips.GValue.array_int_type, "delay", [80] * 30)
    gif = bytes(animation.gifsave_buffer())
    return {"jpegs": jpegs, "pngs": pngs, "gif": gif}


def _workload(port: int, made: dict[str, Any], org: str) -> list[Call]:
    """The calls of one variant (sources uploaded first, outside the measured calls)."""
    tenant = sign_up(port, org)

    def upload(name: str, data: bytes) -> str:
        status, answer, _ = send(port, tenant.upload(name, data))
        assert status == 200, answer[:300]
        return uploaded_hash(answer)

    jpg = [upload(f"j{i}.jpg", made["jpegs"][i]) for i in range(2)]
    png = upload("p.png", made["pngs"][0])
    gif = upload("a.gif", made["gif"])
    calls = []
    for r in range(ROUNDS):  # each round other widths: every render is new
        calls += [tenant.get(f"/{org}/dynamic/resize-width-{300 + i * 160 + r}/{jpg[i % 2]}.jpg")
                  for i in range(10)]  # fmt: skip
        calls += [tenant.get(f"/{org}/dynamic/resize-width-{600 + i * 250 + r}/{png}.png")
                  for i in range(5)]  # fmt: skip
        calls += [tenant.get(f"/{org}/dynamic/resize-width-{160 - i - 4 * r}/{gif}.gif")
                  for i in range(4)]  # fmt: skip
        calls += [tenant.get(f"/{org}/dynamic/resize-width-{500 + i * 125 + r}/{jpg[i % 2]}.avif")
                  for i in range(5)]  # fmt: skip
        # the same files again in a later round: checked and stored again (same hash)
        calls += [tenant.upload(f"u{i}.jpg", made["jpegs"][2 + i]) for i in range(3)]
        calls += [tenant.upload(f"u{i}.png", made["pngs"][1 + i]) for i in range(3)]
    random.Random(14).shuffle(calls)
    return calls


def _rollup(pid: int) -> dict[str, int]:
    """Rss, Pss and USS (private clean + dirty) in kB from /proc/<pid>/smaps_rollup."""
    found = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                found[parts[0][:-1]] = int(parts[1])
    except OSError:
        return {}
    return {
        "rss": found.get("Rss", 0),
        "pss": found.get("Pss", 0),
        "uss": found.get("Private_Clean", 0) + found.get("Private_Dirty", 0),
    }


class Sampler:
    """RSS of every process of the server tree over time."""

    def __init__(self) -> None:
        self.rss: dict[int, list[tuple[float, int]]] = {}
        self.peak: dict[int, int] = {}
        self.depth: dict[int, int] = {}
        self.parent: dict[int, int] = {}

    def sample(self) -> None:
        now = time.monotonic()
        for pid, depth in descendants(os.getpid()).items():
            kb = memory_kb(pid)
            if kb is None:
                continue
            if pid not in self.depth:
                self.depth[pid] = depth
                stat = Path(f"/proc/{pid}/stat").read_text()
                self.parent[pid] = int(stat[stat.rindex(")") + 2 :].split()[1])
            self.rss.setdefault(pid, []).append((now, kb[0]))
            self.peak[pid] = max(self.peak.get(pid, 0), kb[1])


def _run_variant(name: str, env: dict[str, str], made: dict[str, Any], tmp: Path) -> dict:
    server_env = {
        "CROPSTACK_SIGNUP": "true",
        "CROPSTACK_RENDER_CACHE": "false",
        "CROPSTACK_ACCESS_LOG": "false",
        **env,
    }
    sampler = Sampler()
    (tmp / name).mkdir()
    with running_server(tmp / name, env=server_env, workers=2) as base:
        port = int(base.rsplit(":", 1)[1])
        calls = _workload(port, made, name)
        statuses: list[Any] = []
        started = time.monotonic()
        with ThreadPoolExecutor(2) as clients:
            futures = [clients.submit(send, port, call) for call in calls]
            while not all(f.done() for f in futures):
                sampler.sample()
                time.sleep(SAMPLE_S)
            statuses = [f.result()[0] for f in futures]
        busy_s = time.monotonic() - started
        quiet_from = time.monotonic() + SETTLE_S
        while time.monotonic() < quiet_from + STEADY_S:
            sampler.sample()
            time.sleep(SAMPLE_S)
        rollups = {pid: _rollup(pid) for pid in sampler.depth}
    return {
        "name": name,
        "statuses": statuses,
        "busy_s": busy_s,
        "quiet_from": quiet_from,
        "sampler": sampler,
        "rollups": rollups,
    }


def _report(result: dict) -> list[str]:
    sampler: Sampler = result["sampler"]
    quiet_from = result["quiet_from"]

    def steady(pid: int) -> int | None:
        values = [kb for t, kb in sampler.rss.get(pid, []) if t >= quiet_from]
        return int(statistics.median(values)) if values else None

    mib = 1024
    lines = [
        f"\n== {result['name']}: {len(result['statuses'])} requests in {result['busy_s']:.1f} s, "
        f"statuses {sorted(set(map(str, result['statuses'])))}",
        "  process                     pid   peak MiB  steady RSS  steady PSS  steady USS",
    ]
    workers = sorted(pid for pid, d in sampler.depth.items() if d == 2)
    worst: dict[str, float] = {}
    for worker in workers:
        children = sorted(
            p for p, d in sampler.depth.items() if d == 3 and sampler.parent[p] == worker
        )
        rows = [("web worker", worker)] + [("  render process", p) for p in children]
        total_rss = total_pss = 0
        for role, pid in rows:
            level = steady(pid)
            roll = result["rollups"].get(pid) or {}
            if level is not None:
                total_rss += level
                total_pss += roll.get("pss", 0)
            shown = f"{level / mib:10.1f}" if level is not None else "  (ended)"
            pss = f"{roll['pss'] / mib:10.1f}" if roll else "         -"
            uss = f"{roll['uss'] / mib:10.1f}" if roll else "         -"
            lines.append(
                f"  {role:<24} {pid:>7} {sampler.peak[pid] / mib:9.1f} {shown:>11} "
                f"{pss:>11} {uss:>11}"
            )
        alone = steady(worker) or 0
        lines.append(
            f"  worker {worker}: alone {alone / mib:.1f} MiB RSS; with its render processes "
            f"{total_rss / mib:.1f} MiB RSS, {total_pss / mib:.1f} MiB PSS; "
            f"{len(children)} render processes started"
        )
        worst["alone"] = max(worst.get("alone", 0), alone / mib)
        worst["rss"] = max(worst.get("rss", 0), total_rss / mib)
        worst["pss"] = max(worst.get("pss", 0), total_pss / mib)
        worst["started"] = worst.get("started", 0) + len(children)
    lines.append(
        f"  SUMMARY {result['name']}: largest web worker {worst['alone']:.0f} MiB; largest "
        f"worker + render processes {worst['rss']:.0f} MiB RSS / {worst['pss']:.0f} MiB PSS; "
        f"{worst['started']} render processes started"
    )
    return lines


@pytest.fixture(scope="module")
def made() -> dict[str, Any]:
    return _sources()


def test_memory(made: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chosen = os.environ.get("MEMORY_VARIANTS", ",".join(VARIANTS)).split(",")
    results = []
    for name in chosen:
        results.append(_run_variant(name, VARIANTS[name], made, tmp_path))
    load = os.getloadavg()
    with capsys.disabled():
        print(f"\nmemory after a mixed workload; settle {SETTLE_S:g} s, steady {STEADY_S:g} s; "
              f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        for result in results:
            print("\n".join(_report(result)))
    for result in results:
        assert all(status == 200 for status in result["statuses"]), result["statuses"]
