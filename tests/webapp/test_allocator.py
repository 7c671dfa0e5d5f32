"""What returns memory (webapp/allocator.py, the recycling settings): each measure shown to
do what docs/performance.md says, in a process of its own where glibc's state matters.

The sizes behind "steady state per worker" are measured in benchmarks/test_memory_bench.py;
here: a fixed mmap threshold returns freed large blocks that glibc's default keeps,
``malloc_trim`` returns them too, the render processes start with the allocator settings
and with libvips' cache off, and the recycling settings replace render processes.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import Account
from tests.webapp.images import jpeg
from webapp import create_app
from webapp.allocator import Trimmer, environment
from webapp.renderpool import pool_for

REPO = Path(__file__).resolve().parents[2]

# Frees 20 blocks of 6 MiB, each under a small block that stays: freed pages can only go
# back to the system if the blocks were mapped on their own, or by malloc_trim.
_FREE_LARGE_BLOCKS = textwrap.dedent(
    """
    import sys
    from webapp.allocator import trim, tune

    def rss_mib():
        with open("/proc/self/status") as fh:
            line = next(l for l in fh if l.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    if sys.argv[1] == "fixed":
        assert tune(0, 1024)
    first = bytearray(8 << 20)
    del first  # glibc's default: the threshold rises to 8 MiB, 6 MiB blocks come from the heap
    blocks, pins = [], []
    for _ in range(20):
        block = bytearray(6 << 20)
        for offset in range(0, len(block), 4096):
            block[offset] = 1  # every page written: resident
        blocks.append(block)
        pins.append(bytearray(2000))  # not pymalloc's (over 512 bytes): the heap's
    held = rss_mib()
    del blocks
    freed = held - rss_mib()
    trim()
    print(round(freed), round(held - rss_mib()))
    """
)


def _returned(mode: str) -> tuple[int, int]:
    """(MiB returned by freeing 120 MiB, MiB returned after malloc_trim too)."""
    done = subprocess.run(
        [sys.executable, "-c", _FREE_LARGE_BLOCKS, mode],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},  # no MALLOC_* from outside
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    freed, trimmed = done.stdout.split()
    return int(freed), int(trimmed)


def test_a_fixed_mmap_threshold_returns_freed_blocks_and_trim_returns_the_rest():
    glibc_freed, glibc_trimmed = _returned("default")
    fixed_freed, _ = _returned("fixed")
    assert glibc_freed < 20  # glibc's default keeps the 120 MiB
    assert fixed_freed > 100  # mapped on their own: unmapped at free
    assert glibc_trimmed > 100  # malloc_trim gives the kept pages back


def test_the_environment_of_exec_started_processes():
    assert environment(2, 1024) == {
        "MALLOC_ARENA_MAX": "2",
        "MALLOC_MMAP_THRESHOLD_": str(1024 * 1024),
    }
    assert environment(0, 0) == {}
    assert environment(0, 0, huge_pages=True) == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    mine = environment(0, 0, huge_pages=True, tunables="glibc.malloc.tcache_count=0")
    assert mine == {"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1"}
    assert environment(1, 10**9)["MALLOC_MMAP_THRESHOLD_"] == str(32 * 1024 * 1024)


def test_the_trimmer_waits_for_a_quiet_second():
    import time

    trimmer = Trimmer(delay_s=2.0)  # wide margins: the machine may be loaded
    for _ in range(10):  # busy: touched every 0.1 s for a second, no trim in between
        trimmer.touch()
        time.sleep(0.1)
    assert trimmer.trims == 0
    deadline = time.monotonic() + 10
    while trimmer.trims == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert trimmer.trims == 1  # once, after the quiet period
    time.sleep(2.5)
    assert trimmer.trims == 1  # nothing touched since: nothing to trim


def _app(tmp_path, size: tuple[int, int] = (300, 200), **settings: object):
    """An app of ``settings`` with one uploaded JPEG of ``size``: (app, client, its hash)."""
    app = create_app({"data_dir": str(tmp_path / "d"), **settings})
    client = app.test_client()
    account = Account(client, "acme", "admin@acme.example")
    form = {"filedata": (io.BytesIO(jpeg(*size)), "a.jpg")}
    uploaded = account.request(
        "POST", "/sourceimages/acme", data=form, content_type="multipart/form-data"
    )
    assert uploaded.status_code == 200, uploaded.get_data(as_text=True)
    return app, client, uploaded.get_json()["items"][0]["hash"]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_render_processes_start_with_the_allocator_settings_and_no_libvips_cache(tmp_path):
    app, client, image = _app(tmp_path, malloc_arena_max=3, malloc_mmap_threshold_kb=512)
    assert client.get(f"/acme/dynamic/resize-width-50/{image}.jpg").status_code == 200
    pool = pool_for(app.extensions["cropstack.settings"])
    (pid,) = pool.lanes["cheap"].pids()
    env = _environ(pid)
    assert env["MALLOC_ARENA_MAX"] == "3"
    # not the web workers' threshold: glibc's highest (libvips' buffers stay in the heap,
    # which is trimmed when the process is idle)
    assert env["MALLOC_MMAP_THRESHOLD_"] == str(32 * 1024 * 1024)
    assert env["CROPSTACK_RENDER_TRIM"] == "1"
    # libvips' operation cache is off in the render process: it would pin decoded images
    code = (
        "from engine.probe import configure; import pyvips; configure(); "
        "print(pyvips.cache_get_max(), pyvips.cache_get_max_mem())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["0", "0"], done.stderr


@pytest.mark.parametrize("trim", [True, False])
def test_an_idle_render_process_gives_its_heap_back(tmp_path, trim: bool):
    app, client, image = _app(tmp_path, (3000, 2000), malloc_trim=trim)
    pool = pool_for(app.extensions["cropstack.settings"])
    lane = pool.lanes["cheap"]
    # a full-size decode of 18 MB and a PNG encode: heap blocks under the 32 MiB threshold
    assert client.get(f"/acme/dynamic/resize-width-2900/{image}.png").status_code == 200
    (process,) = [p for p in lane._all if p.alive()]
    after_job, _ = process.memory()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and process.memory()[0] > after_job - (8 << 20):
        time.sleep(0.1)
    returned = after_job - process.memory()[0]
    if trim:
        assert returned > 8 << 20  # trimmed once idle for a second
    else:
        assert returned < 8 << 20  # nothing else gives these pages back


def _huge_page_mode() -> str:
    """The kernel's transparent huge page mode for anonymous memory (the bracketed word)."""
    text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    return text.split("[", 1)[1].split("]", 1)[0]


def _anon_huge_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0


@pytest.mark.parametrize("huge", [True, False])
def test_render_processes_ask_for_huge_pages(tmp_path, huge: bool):
    app, client, image = _app(tmp_path, (3000, 2000), malloc_huge_pages=huge)
    # an 18 MB full-size decode and a PNG encode, in the heap (under the 32 MiB threshold)
    assert client.get(f"/acme/dynamic/resize-width-2900/{image}.png").status_code == 200
    pool = pool_for(app.extensions["cropstack.settings"])
    (pid,) = pool.lanes["cheap"].pids()
    tunables = _environ(pid).get("GLIBC_TUNABLES", "")
    assert ("glibc.malloc.hugetlb=1" in tunables) is huge
    mode = _huge_page_mode()
    if mode == "madvise":  # only a process that asks gets them
        assert (_anon_huge_kib(pid) >= 2048) is huge
    elif mode == "always":
        assert _anon_huge_kib(pid) >= 2048
    else:  # never: the setting cannot change anything
        assert _anon_huge_kib(pid) == 0


@pytest.mark.parametrize(
    ("settings", "replaced"),
    [
        ({"render_max_jobs": 1, "render_nice": 9}, True),
        ({"render_recycle_mb": 1, "render_nice": 8}, True),  # every process is over 1 MiB
        ({"render_max_jobs": 0, "render_recycle_mb": 0, "render_nice": 7}, False),
    ],
)
def test_recycling_settings_replace_render_processes(tmp_path, settings, replaced: bool):
    # each case's own render_nice: a pool of its own (pools are shared by equal settings)
    app, client, image = _app(tmp_path, render_concurrency=1, **settings)
    pool = pool_for(app.extensions["cropstack.settings"])
    seen = []
    for width in (40, 41, 42):
        assert client.get(f"/acme/dynamic/resize-width-{width}/{image}.jpg").status_code == 200
        seen += pool.lanes["cheap"].pids() or ["replaced"]
    if replaced:
        assert seen == ["replaced"] * 3  # each job's process was ended after its job
    else:
        assert len(set(seen)) == 1  # one process served all three


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("render_recycle_mb", "lots"),
        ("malloc_arena_max", "two"),
        ("malloc_trim", "maybe"),
        ("malloc_huge_pages", "sometimes"),
    ],
)
def test_bad_memory_settings_are_refused_by_name(name: str, raw: str):
    from webapp.settings import load_settings

    with pytest.raises(ValueError, match=f"setting {name} "):
        load_settings({name: raw})
