"""Cache hits and 304s of a real ``cropstack serve`` beside static servers of the same bytes.

Run: ``.venv/bin/python -m pytest benchmarks/test_hits_bench.py -s`` (about a minute).

A real ``cropstack serve --workers 2`` gets one organization, one 1200x800 JPEG and one
rendered URL (a 300 px wide JPEG, stored in the render cache). ``wrk`` (Debian package
``wrk``) then loads, in one run and interleaved twice:

- ``hit``: ``GET`` of the render URL, answered from the render cache;
- ``304``: the same with ``If-None-Match`` of its ETag;
- ``http.server``: Python's ``python -m http.server`` serving the same bytes as a file;
- ``nginx``: nginx (Debian ``nginx-light``) serving the same file, when installed
  (``./dev bench`` installs both packages as root).

Each is ``wrk -t2 -c{C} -d{HITS_DURATION_S}s --latency`` on loopback (the load generator
shares the 2 cores with the server, as it would on one machine), at 16 connections and
at 4 (``HITS_CONNECTIONS``). Prints, per concurrency, requests/s, p50, p90 and p99 of
each round and of the best round, the ratios against each static server, the server's
CPU time per answer in each round (all its processes, from ``/proc``: less disturbed by
other load on the machine than latency), and the load average before and after
(nginx's p99 in the same run is the machine's own tail). The
issue's goal: >= 3,000 req/s, p99 <= 5 ms.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.test_load import Call, must, send, sign_up, uploaded_hash
from tests.realserver import descendants, free_port, running_server

DURATION_S = float(os.environ.get("HITS_DURATION_S", "6"))
CONNECTIONS = tuple(int(c) for c in os.environ.get("HITS_CONNECTIONS", "16,4").split(","))
ROUNDS = 2
WRK = shutil.which("wrk")
NGINX = shutil.which("nginx")


def _jpeg() -> bytes:
    import pyvips

    image = pyvips.Image.gaussnoise(1200, 800, sigma=30, mean=128)
    image = image.bandjoin([image.rot180(), image.fliphor()]).gaussblur(1.0).cast("uchar")
    return bytes(image.copy(interpretation="srgb").jpegsave_buffer(Q=85))


def wrk(url: str, *headers: str, connections: int, strict: bool = True) -> dict[str, float]:
    """requests/s (``rps``) and latency percentiles in ms (``p50``, ``p90``, ``p99``) of
    ``wrk`` against ``url``; fails on any non-2xx/3xx answer, and with ``strict`` on any
    socket error (a baseline's timeouts are only printed: Python's http.server lets a
    connection wait past wrk's 2 s now and then)."""
    argv = [WRK, "-t2", f"-c{connections}", f"-d{DURATION_S:g}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    assert "Non-2xx or 3xx" not in out, out
    assert not strict or "Socket errors" not in out, out
    if "Socket errors" in out:
        print(url, re.search(r"Socket errors:.*", out).group(0))
    found = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for percent in ("50", "90", "99"):
        value, unit = re.search(rf"{percent}%\s+([\d.]+)(us|ms|s)\b", out).groups()
        found[f"p{percent}"] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    return found


def server_cpu_s(port: int) -> float:
    """CPU seconds (user + system) used so far by the ``cropstack serve`` listening on
    ``port`` and all its processes (workers, render processes)."""
    found: dict[int, int] = {}  # pid -> parent pid, of processes serving ``port``
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if b"serve" in argv and b"--port" in argv:
            if argv[argv.index(b"--port") + 1] == str(port).encode():
                found[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    # the master: its workers (forked, the same command line) have it as their parent
    (master,) = [pid for pid, parent in found.items() if parent not in found]
    total = 0
    for pid in [master, *descendants(master)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def process(argv: list[str], port: int, cwd: Path) -> Iterator[str]:
    """``argv`` running until ``http://127.0.0.1:{port}/`` answers; yields that URL."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/x.jpg", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def nginx_conf(root: Path, port: int) -> Path:
    conf = root / "nginx.conf"
    conf.write_text(
        f"""daemon off; worker_processes 2; user root; pid {root}/nginx.pid;
error_log {root}/error.log; events {{ worker_connections 256; }}
http {{ access_log off; sendfile on; client_body_temp_path {root};
  proxy_temp_path {root}; fastcgi_temp_path {root}; uwsgi_temp_path {root};
  scgi_temp_path {root};
  types {{ image/jpeg jpg; }}
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
"""
    )
    return conf


def test_cache_hits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert WRK is not None, "wrk is not installed (./dev bench installs it: apt-get install wrk)"
    env = {"CROPSTACK_SIGNUP": "true"}
    with running_server(tmp_path, env=env) as base:
        port = int(base.rsplit(":", 1)[1])
        tenant = sign_up(port, "hits")
        image = uploaded_hash(send(port, tenant.upload("a.jpg", _jpeg()))[1])
        url = f"/hits/dynamic/resize-width-300/{image}.jpg"
        with urllib.request.urlopen(base + url) as response:
            body, etag = response.read(), response.headers["ETag"]
        must(port, Call("GET", "/healthz"))
        static = Path(tempfile.mkdtemp(dir=tmp_path))
        (static / "x.jpg").write_bytes(body)
        cases = {
            "hit": (base + url,),
            "304": (base + url, f"If-None-Match: {etag}"),
        }
        results: dict[tuple[int, str], list[dict[str, float]]] = {}
        py_port = free_port()
        servers = [("http.server", [sys.executable, "-m", "http.server", "-b", "127.0.0.1",
                                    str(py_port)], py_port)]  # fmt: skip
        if NGINX:
            ng_port = free_port()
            servers.append(("nginx", [NGINX, "-c", str(nginx_conf(static, ng_port))], ng_port))
        load_before = os.getloadavg()
        for _ in range(ROUNDS):
            for conns in CONNECTIONS:
                for name, args in cases.items():
                    used = server_cpu_s(port)
                    found = wrk(*args, connections=conns)
                    used = server_cpu_s(port) - used
                    found["cpu_us"] = used / (found["rps"] * DURATION_S) * 1e6
                    results.setdefault((conns, name), []).append(found)
                for name, argv, sport in servers:
                    with process(argv, sport, static) as sbase:
                        found = wrk(sbase + "/x.jpg", connections=conns, strict=False)
                        results.setdefault((conns, name), []).append(found)
        load_after = os.getloadavg()
    with capsys.disabled():
        print(f"\n{len(body)} byte JPEG, wrk -t2 -d{DURATION_S:g}s, {ROUNDS} rounds, load average "
              f"{load_before[0]:.2f} before, {load_after[0]:.2f} after")  # fmt: skip
        summary = {}
        for conns in CONNECTIONS:
            best = {n: max(runs, key=lambda r: r["rps"]) for (c, n), runs in results.items()
                    if c == conns}  # fmt: skip
            print(f"-c{conns}: (rounds: req/s p99 ms)")
            for name, found in best.items():
                ratios = "  ".join(
                    f"x{found['rps'] / best[s]['rps']:.2f} of {s}" for s, *_ in servers if s != name
                )
                rounds = ", ".join(f"{r['rps']:.0f} {r['p99']:.2f}" for r in results[(conns, name)])
                cpu = ""
                if "cpu_us" in found:  # the server's CPU per answer, every process of it
                    cpu = "  CPU " + "/".join(
                        f"{r['cpu_us']:.0f}" for r in results[(conns, name)]
                    ) + " µs per answer"
                print(
                    f"{name:>12}: {found['rps']:8.0f} req/s  p50 {found['p50']:6.2f}  "
                    f"p90 {found['p90']:6.2f}  p99 {found['p99']:6.2f} ms  {ratios}  "
                    f"({rounds}){cpu}"
                )
            summary[f"c{conns}"] = best
        print(json.dumps(summary))
