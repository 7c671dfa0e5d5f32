"""Peer image servers on loopback for side-by-side benchmarks: thumbor and ipx.

Both are installed apart from the project by ``./dev bench`` (the ``install_peers`` step of
the ``dev`` script), never into ``.venv``:

- thumbor 7.8 from PyPI in its own virtual environment,
  ``benchmarks/peer-servers/thumbor/.venv`` (pins: ``thumbor/requirements.txt``), with
  Debian's ``gifsicle`` as its GIF engine (``USE_GIFSICLE_ENGINE``); its file loader reads
  the images of a directory, no storage and no result storage (every request renders);
- ipx 3 from npm (sharp, libvips) in ``benchmarks/peer-servers/ipx`` (``package.json`` and
  its lock file), served by ``ipx/serve.mjs`` from a directory.

Each context manager starts its server on a free port of 127.0.0.1 in a process group of
its own, waits until it answers, yields its base URL, and stops the whole group (thumbor
forks one process per core it is given).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.realserver import free_port

PEERS = Path(__file__).resolve().parent / "peer-servers"
THUMBOR = PEERS / "thumbor" / ".venv" / "bin" / "thumbor"
IPX = PEERS / "ipx"
START_TIMEOUT_S = 30.0


class PeerMissing(RuntimeError):
    """A peer is not installed here: ``./dev bench`` installs them."""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer: the server is up
    except OSError:
        return False


@contextmanager
def _running(
    argv: list[str], probe: str, log_path: Path, cwd: Path | None = None
) -> Iterator[None]:
    """Run ``argv`` in its own process group until the block ends; ``probe`` is a URL that
    answers once the server is up."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _answers(probe):
                if process.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited early:\n{log_path.read_text()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not answer in time:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield
        finally:
            # the group is the one this call started (start_new_session): the server and
            # its forks, nothing else
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


@contextmanager
def thumbor(images: Path, work: Path, processes: int = 2) -> Iterator[str]:
    """thumbor serving the files of ``images`` at ``{base}/unsafe/...``, with ``processes``
    forked processes (one per core) and gifsicle for GIFs; yields the base URL."""
    if not THUMBOR.exists():
        raise PeerMissing(f"{THUMBOR} is missing: run ./dev bench once (it installs thumbor)")
    gifsicle = shutil.which("gifsicle")
    if gifsicle is None:
        raise PeerMissing("gifsicle is missing: run ./dev bench once (apt-get install gifsicle)")
    conf = work / "thumbor.conf"
    conf.write_text(
        "\n".join(
            [
                "LOADER = 'thumbor.loaders.file_loader'",
                f"FILE_LOADER_ROOT_PATH = {str(images)!r}",
                "STORAGE = 'thumbor.storages.no_storage'",
                "RESULT_STORAGE = None",
                "USE_GIFSICLE_ENGINE = True",
                "ALLOW_UNSAFE_URL = True",
                "QUALITY = 80",
                "MAX_WIDTH = 0",
                "MAX_HEIGHT = 0",
                "",
            ]
        )
    )
    port = free_port()
    argv = [
        str(THUMBOR), "--ip", "127.0.0.1", "--port", str(port), "--conf", str(conf),
        "--processes", str(processes), "--log-level", "warning",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with _running(argv, f"{base}/healthcheck", work / "thumbor.log"):
        yield base


@contextmanager
def ipx(images: Path, work: Path) -> Iterator[str]:
    """ipx serving the files of ``images`` at ``{base}/{modifiers}/{file}``; yields the
    base URL."""
    if not (IPX / "node_modules" / "ipx").exists():
        raise PeerMissing(f"{IPX}/node_modules is missing: run ./dev bench once (npm ci)")
    node = shutil.which("node")
    if node is None:
        raise PeerMissing("node is missing (ipx runs on Node.js)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [node, "serve.mjs", str(images), str(port)]
    with _running(argv, f"{base}/_/missing.png", work / "ipx.log", cwd=IPX):
        yield base
