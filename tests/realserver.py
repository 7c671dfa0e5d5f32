"""Start and stop a real ``cropstack serve`` process on 127.0.0.1 for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(base: str, ready: tuple[int, ...] = (200,)) -> bool:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
            return response.status in ready
    except urllib.error.HTTPError as exc:
        return exc.code in ready
    except OSError:
        return False


@contextmanager
def running_server(
    tmp: Path,
    *extra_args: str,
    env: dict[str, str] | None = None,
    workers: int = 2,
    start_timeout_s: float = 20.0,
    ready: tuple[int, ...] = (200,),
) -> Iterator[str]:
    """``cropstack serve`` on a free loopback port with data in ``tmp/data``; yields its URL.

    The code under test is this checkout's (``python -m webapp.cli`` from the repo root).
    Fails the test with the server log if it exits or ``/healthz`` does not answer one of
    ``ready`` in time (503 is a ready answer on a read-only or full data directory);
    always stops it (terminate, then kill).
    """
    port = free_port()
    log_path = tmp / "server.log"
    argv = [
        sys.executable, "-m", "webapp.cli", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--data-dir", str(tmp / "data"), "--workers", str(workers),
        "--init", *extra_args,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=REPO, env={**os.environ, **(env or {})}, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout_s
            while not _healthy(base, ready):
                if process.poll() is not None:
                    pytest.fail(f"server exited early:\n{log_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"server not healthy in time:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def descendants(root: int) -> dict[int, int]:
    """Every living descendant of process ``root``: pid -> depth (children are 1)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = {}, [(pid, 1) for pid in children.get(root, [])]
    while todo:
        pid, depth = todo.pop()
        found[pid] = depth
        todo += [(child, depth + 1) for child in children.get(pid, [])]
    return found


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of ``pid`` in kB, or None when it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    values = dict(line.split(":", 1) for line in lines if ":" in line)
    try:
        return int(values["VmRSS"].split()[0]), int(values["VmHWM"].split()[0])
    except (KeyError, ValueError):
        return None  # a zombie has no memory lines
