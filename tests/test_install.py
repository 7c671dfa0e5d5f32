"""``pip install .`` (a wheel, not an editable install) gives a working ``cropstack``:
every file of the packages is in the wheel, and the installed copy serves, uploads and
renders from outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.realserver import REPO, free_port
from tests.webapp.images import png
from tests.webapp.livehttp import call, upload

PACKAGES = ("engine", "stacks", "webapp")


def package_files() -> set[str]:
    """Every file under the packages that a wheel must carry (Python and assets alike)."""
    found = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.add(path.relative_to(REPO).as_posix())
    return found


def build_wheel(tmp: Path) -> Path:
    """A wheel of this checkout, built from a copy (the build leaves build/ behind)."""
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", *PACKAGES):
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    out = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = out.glob("cropstack-*.whl")
    return wheel


@pytest.mark.server
@pytest.mark.slow
def test_wheel_installs_a_working_cropstack(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    inside = set(zipfile.ZipFile(wheel).namelist())
    missing = package_files() - inside
    assert not missing, f"not in the wheel: {sorted(missing)}"

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROPSTACK_")}
    env["PYTHONPATH"] = str(site)  # the installed copy, not this checkout
    command = [str(site / "bin" / "cropstack")]
    where = subprocess.run(
        [sys.executable, "-c", "import webapp, engine; print(webapp.__file__, engine.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert all(p.startswith(str(site)) for p in where.stdout.split()), where.stdout
    helped = subprocess.run([*command, "--help"], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert helped.returncode == 0 and "import" in helped.stdout

    data = elsewhere / "data"
    made = subprocess.run(
        [*command, "users", "create", "--email", "me@example.org", "--organization", "acme",
         "--data-dir", str(data)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["api_key"]
    port = free_port()
    log = (elsewhere / "server.log").open("wb")
    server = subprocess.Popen(
        [*command, "serve", "--port", str(port), "--data-dir", str(data), "--workers", "1"],
        cwd=elsewhere, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, (elsewhere / "server.log").read_text()
                assert time.monotonic() < deadline, (elsewhere / "server.log").read_text()
                time.sleep(0.2)
        image = upload(base, key, "acme", png(30, 20, seed=5))
        status, headers, body = call(base, "GET", f"/acme/dynamic/resize-width-10/{image}.png")
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert body.startswith(b"\x89PNG")
        assert call(base, "GET", "/openapi.json")[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()
