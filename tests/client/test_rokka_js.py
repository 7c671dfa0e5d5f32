"""The official rokka.js client (npm ``rokka`` 4.0.0) against a real ``cropstack serve``.

``rokka_suite.js`` drives the client through every method issue 5 lists and reports one
JSON step per call group; this module starts the server, runs ``node`` once per session
and turns each client method into its own test. ``./dev test`` installs the pinned
``node_modules`` first (``npm ci``); without it these tests fail with the command to run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.realserver import running_server

HERE = Path(__file__).resolve().parent
SUITE = HERE / "rokka_suite.js"
RENDER_DOMAIN = "render.test"

#: Every rokka.js method the suite must exercise (issue 5) and report as passed.
METHODS = (
    "users.create",
    "users.getId",
    "organizations.get",
    "organizations.create",
    "organizations.setOption",
    "organizations.setOptions",
    "memberships.list",
    "memberships.create",
    "memberships.get",
    "memberships.delete",
    "sourceimages.create",
    "sourceimages.createByUrl",
    "sourceimages.get",
    "sourceimages.list",
    "sourceimages.getWithBinaryHash",
    "sourceimages.download",
    "sourceimages.downloadAsBuffer",
    "sourceimages.delete",
    "sourceimages.deleteWithBinaryHash",
    "sourceimages.restore",
    "sourceimages.copy",
    "sourceimages.setSubjectArea",
    "sourceimages.removeSubjectArea",
    "sourceimages.addDynamicMetaData",
    "sourceimages.deleteDynamicMetaData",
    "sourceimages.putName",
    "sourceimages.setLocked",
    "sourceimages.setProtected",
    "sourceimages.meta.get",
    "sourceimages.meta.set",
    "sourceimages.meta.add",
    "sourceimages.meta.replace",
    "sourceimages.meta.delete",
    "stacks.create",
    "stacks.get",
    "stacks.list",
    "stacks.delete",
    "operations.list",
    "stackoptions.get",
    "render.getUrl",
    "render.signUrl",
    "utils.signUrl",
    # Beyond the list: the rest of what cropstack supports (docs/client.md).
    "memberships.createWithNewUser",
    "user.getId",
    "user.get",
    "user.listApiKeys",
    "user.addApiKey",
    "user.getCurrentApiKey",
    "user.deleteApiKey",
    "sourceimages.invalidateCache",
    "sourceimages.copyAll",
    "stacks.invalidateCache",
    "render.getUrlFromUrl",
    "render.addStackVariables",
    "render.getUrlComponents",
    "render.signUrlWithOptions",
    "request",
    # issue 13: the dashboard's token calls
    "user.getNewToken",
    "user.getToken",
    "user.isTokenExpiring",
    "user.getTokenIsValidFor",
    # issue 13: the dashboard's stats and billing
    "stats.get",
    "billing.get",
    # issue 13: aliases and albums
    "sourceimages.alias.create",
    "sourceimages.alias.get",
    "sourceimages.alias.invalidateCache",
    "sourceimages.alias.delete",
    "render.imagesByAlbum",
)

#: The whole suite (server start, ~40 client steps, renders) stays well under this.
SUITE_TIMEOUT_S = 180
SERVER_START_TIMEOUT_S = 20


def _require_client_install() -> str:
    """The ``node`` executable; fails (never skips) when node or the pinned client is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the rokka.js client suite needs Node.js (README)")
    if not (HERE / "node_modules" / "rokka" / "package.json").is_file():
        pytest.fail(
            "tests/client/node_modules is missing: run `./dev test` (it runs `npm ci` in "
            "tests/client) or `cd tests/client && npm ci`"
        )
    installed = json.loads((HERE / "node_modules" / "rokka" / "package.json").read_text())
    assert installed["version"] == "4.0.0", f"rokka {installed['version']} installed, not 4.0.0"
    return node


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``cropstack serve`` on 127.0.0.1 with a fresh data dir; yields its base URL.

    Signup is on (``--signup``): the suite starts with rokka.js ``users.create``. Private
    fetch addresses are allowed so ``createByUrl`` can fetch from the suite's own
    loopback HTTP server; ``{org}.render.test`` hosts serve ``render.getUrlFromUrl``
    (reached through a Host header).
    """
    with running_server(
        tmp_path_factory.mktemp("rokka-js"),
        "--signup",
        "--render-domain",
        RENDER_DOMAIN,
        # render counts reach GET /stats within half a second (the stats step)
        env={
            "CROPSTACK_REMOTE_FETCH_ALLOW_PRIVATE": "true",
            "CROPSTACK_STATS_FLUSH_SECONDS": "0.5",
        },
        start_timeout_s=SERVER_START_TIMEOUT_S,
    ) as base:
        yield base


@pytest.fixture(scope="module")
def report(server: str) -> dict[str, Any]:
    """Run the Node suite once against ``server``; its parsed JSON report."""
    node = _require_client_install()
    try:
        done = subprocess.run(
            [node, str(SUITE), server],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT_S,
            env={**os.environ, "ROKKA_ORG": "rokka-js-tests", "ROKKA_RENDER_DOMAIN": RENDER_DOMAIN},
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"rokka.js suite did not finish in {SUITE_TIMEOUT_S} s: {exc.stderr}")
    try:
        parsed = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"no JSON report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    parsed["exit_code"] = done.returncode
    parsed["stderr"] = done.stderr
    return parsed


@pytest.mark.server
@pytest.mark.slow
def test_suite_ran_to_the_end(report: dict[str, Any]) -> None:
    """No crash, every step recorded, and the exit status agrees with the steps."""
    assert "crash" not in report, report.get("crash")
    assert len(report["steps"]) >= 40, report["stderr"]
    failed = [f"{s['name']}: {s.get('error')}" for s in report["steps"] if not s["ok"]]
    assert failed == [], "\n".join(failed)
    assert report["ok"] is True and report["exit_code"] == 0


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_client_method(report: dict[str, Any], method: str) -> None:
    """Each rokka.js method was called in at least one step, and all those steps passed."""
    steps = [s for s in report["steps"] if method in s["methods"]]
    assert steps, f"{method} was not exercised by rokka_suite.js"
    failed = [f"{s['name']}: {s.get('error')}" for s in steps if not s["ok"]]
    assert failed == [], "\n".join(failed)
