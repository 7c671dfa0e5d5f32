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

Each is ``wrk -t2 -c16 -d{HITS_DURATION_S}s --latency`` on loopback (the load generator
shares the 2 cores with the server, as it would on one machine). Prints requests/s, p99
and the ratios against each static server. The issue's goal: >= 3,000 req/s, p99 <= 5 ms.
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
from tests.realserver import free_port, running_server

DURATION_S = float(os.environ.get("HITS_DURATION_S", "6"))
ROUNDS = 2
WRK = shutil.which("wrk")
NGINX = shutil.which("nginx")


def _jpeg() -> bytes:
    import pyvips

    image = pyvips.Image.gaussnoise(1200, 800, sigma=30, mean=128)
    image = image.bandjoin([image.rot180(), image.fliphor()]).gaussblur(1.0).cast("uchar")
    return bytes(image.copy(interpretation="srgb").jpegsave_buffer(Q=85))


def wrk(url: str, *headers: str, strict: bool = True) -> tuple[float, float]:
    """(requests/s, p99 ms) of ``wrk`` against ``url``; fails on any non-2xx/3xx answer,
    and with ``strict`` on any socket error (a baseline's timeouts are only printed:
    Python's http.server lets a connection wait past wrk's 2 s now and then)."""
    argv = [WRK, "-t2", "-c16", f"-d{DURATION_S:g}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    assert "Non-2xx or 3xx" not in out, out
    assert not strict or "Socket errors" not in out, out
    if "Socket errors" in out:
        print(url, re.search(r"Socket errors:.*", out).group(0))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out).groups()
    return rate, float(p99) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


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
        results: dict[str, list[tuple[float, float]]] = {}
        py_port = free_port()
        servers = [("http.server", [sys.executable, "-m", "http.server", "-b", "127.0.0.1",
                                    str(py_port)], py_port)]  # fmt: skip
        if NGINX:
            ng_port = free_port()
            servers.append(("nginx", [NGINX, "-c", str(nginx_conf(static, ng_port))], ng_port))
        for _ in range(ROUNDS):
            for name, args in cases.items():
                results.setdefault(name, []).append(wrk(*args))
            for name, argv, sport in servers:
                with process(argv, sport, static) as sbase:
                    results.setdefault(name, []).append(wrk(sbase + "/x.jpg", strict=False))
    best = {name: max(runs) for name, runs in results.items()}
    with capsys.disabled():
        print(f"\n{len(body)} byte JPEG, wrk -t2 -c16 -d{DURATION_S:g}s, best of {ROUNDS}")
        for name, (rate, p99) in best.items():
            ratios = "  ".join(
                f"x{rate / best[s][0]:.2f} of {s}" for s, *_ in servers if s != name
            )
            print(f"{name:>12}: {rate:8.0f} req/s  p99 {p99:6.2f} ms  {ratios}")
        print(json.dumps({k: {"rps": v[0], "p99_ms": v[1]} for k, v in best.items()}))
